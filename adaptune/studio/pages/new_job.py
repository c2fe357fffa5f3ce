"""The "New tuning job" page: the form, "Check data" (the validation report) and "Start"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from adaptune.errors import UserError
from adaptune.run_ids import new_run_id
from adaptune.studio.job_form import (
    BASE_MODELS,
    FIELDS,
    METHOD_NAMES,
    SETTINGS,
    check_data,
    form_defaults,
    job_config,
    job_parameters,
)
from adaptune.studio.queue import job_queue
from adaptune.studio.rendering import render
from adaptune.studio.uploads import save_upload

router = APIRouter()
TITLE = "New tuning job"
UPLOAD_FIELD = "upload"
VALUE_FIELDS = ("base_model", "method", *(f.name for f in (*FIELDS, *SETTINGS)))


def _page(
    request: Request,
    values: dict[str, str],
    error: str | None = None,
    report: Any = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "new_job.html",
        status_code,
        title=TITLE,
        values=values,
        fields=FIELDS,
        settings_fields=SETTINGS,
        base_models=BASE_MODELS,
        methods=METHOD_NAMES,
        error=error,
        report=report,
    )


@router.get("/jobs/new")
def new_job(request: Request) -> Response:
    """The empty form, filled with the compiled pipeline's defaults."""
    try:
        values = form_defaults(request.app.state.settings)
    except UserError as exc:
        return _page(request, dict.fromkeys(VALUE_FIELDS, ""), str(exc))
    return _page(request, values)


@router.post("/jobs/new")
async def submit_job(request: Request) -> Response:
    """Check data: show the validation report. Start: queue the job and open its run page."""
    settings = request.app.state.settings
    form = await request.form()
    values = {
        name: value if isinstance(value := form.get(name, ""), str) else "" for name in VALUE_FIELDS
    }
    action = form.get("action")
    upload = form.get(UPLOAD_FIELD)
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            path = await run_in_threadpool(
                save_upload, upload.file, upload.filename, settings.uploads_dir
            )
            values["train_data"] = str(path)
        params = await run_in_threadpool(job_parameters, settings, values)
        if action == "start":
            run_id = new_run_id()
            job_queue(request.app).enqueue(run_id, job_config(params, values))
            return RedirectResponse(f"/runs/{run_id}", status_code=303)
        report = await run_in_threadpool(check_data, params)
    except UserError as exc:
        return _page(request, values, str(exc), status_code=400)
    error = None
    if not report.passed:
        problems = sum(report.problem_counts.values())
        error = f"the data would fail validation ({problems} problems): see the report below"
    return _page(request, values, error, report=report)
