"""The Runs page, a run's page (DAG, tasks, loss curve, reports, gate, error), and cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup

from adaptune.errors import UserError
from adaptune.run_ids import check_run_id
from adaptune.studio.queue import job_queue
from adaptune.studio.rendering import environment, render
from adaptune.studio.run_view import RunView, find_report, load_view, run_rows

router = APIRouter()
POLL_MS = 2000
REPORT_HEADERS = {
    # A report is the run's own HTML: shown sandboxed, no script, nothing fetched.
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
    "style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def _checked(run_id: str) -> str:
    try:
        return check_run_id(run_id)
    except UserError:
        raise HTTPException(404, "no such run: not a run id") from None


def _fragment(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def _rows(request: Request) -> list[Any]:
    queue = job_queue(request.app)
    queue.advance()
    try:
        return run_rows(request.app.state.settings, queue)
    except UserError as exc:
        raise HTTPException(503, str(exc)) from None


@router.get("/runs")
def runs(request: Request) -> Response:
    """Every run and queued job, newest first; the table refreshes itself."""
    return render(request, "runs.html", title="Runs", rows=_rows(request), poll_ms=POLL_MS)


@router.get("/runs.json")
def runs_json(request: Request) -> JSONResponse:
    """The Runs table as JSON, with its rows as HTML (what the page's script puts in place)."""
    rows = _rows(request)
    return JSONResponse(
        {"runs": [row.__dict__ for row in rows], "html": _fragment("runs_rows.html", rows=rows)}
    )


def _view(request: Request, run_id: str) -> RunView:
    queue = job_queue(request.app)
    queue.advance()
    try:
        view = load_view(request.app.state.settings, queue, _checked(run_id))
    except UserError as exc:
        raise HTTPException(503, str(exc)) from None
    if view is None:
        raise HTTPException(404, f"no run {run_id}")
    return view


def _live(request: Request, view: RunView) -> str:
    return _fragment(
        "run_live.html",
        run=view,
        dag=Markup(view.dag),  # graphs.svg escapes every label itself
        runs_dir=str(request.app.state.settings.runs_dir),
    )


@router.get("/runs/{run_id}.json")
def run_json(request: Request, run_id: str) -> JSONResponse:
    """The run as JSON, with the page's live part as HTML."""
    view = _view(request, run_id)
    return JSONResponse(view.to_json() | {"final": view.final, "html": _live(request, view)})


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str) -> Response:
    """The run: status, DAG, tasks, loss curve, reports, gate, error, version, cancel."""
    view = _view(request, run_id)
    return render(
        request,
        "run.html",
        title=f"Run {view.run_id}",
        run=view,
        live=Markup(_live(request, view)),
        poll_ms=POLL_MS,
    )


@router.get("/runs/{run_id}/reports/{kind}")
def report(request: Request, run_id: str, kind: str) -> Response:
    """A report the run wrote (validation, training, evaluation), from its own directory only."""
    path = find_report(request.app.state.settings, job_queue(request.app), _checked(run_id), kind)
    if path is None:
        raise HTTPException(404, f"run {run_id} has no {kind} report")
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)


@router.post("/runs/{run_id}/cancel")
def cancel(request: Request, run_id: str) -> Response:
    """Cancel the studio's job for this run (queued: never starts; running: its process ends)."""
    queue = job_queue(request.app)
    run_id = _checked(run_id)
    if queue.get(run_id) is None:
        raise HTTPException(404, f"run {run_id} was not started by this studio: nothing to cancel")
    try:
        queue.cancel(run_id)
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    return RedirectResponse(f"/runs/{run_id}", status_code=303)
