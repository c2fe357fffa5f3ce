"""The Models pages: models, a model's versions, two versions side by side, promote, roll back.

Promote and roll back make the registry calls ``adaptune promote`` / ``rollback`` make.

A name in a URL is checked as the registry checks names and must be a model the registry
lists (else 404), so no URL reaches outside the registry directory. A corrupt index or
version is shown as ``adaptune models list`` reports it: its path and the reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from adaptune.errors import UserError
from adaptune.registry import (
    check_model_name,
    list_models,
    promote,
    resolve_version,
    rollback,
    survey_model,
)
from adaptune.registry.pending_release import read_pending_release
from adaptune.studio.outcomes import Outcome, Outcomes
from adaptune.studio.rendering import render
from adaptune.studio.version_facts import version_facts

router = APIRouter()


def _outcomes(request: Request) -> Outcomes:
    state = request.app.state
    if not hasattr(state, "model_outcomes"):
        state.model_outcomes = Outcomes()
    return state.model_outcomes


def known_model(request: Request, name: str) -> str:
    """``name`` if the studio's registry lists it; 404 otherwise (a malformed name too)."""
    registry_dir = request.app.state.settings.registry_dir
    try:
        check_model_name(name)
    except UserError:
        raise HTTPException(404, "no such model (not a valid model name)") from None
    if name not in list_models(registry_dir):
        raise HTTPException(404, f"no model {name!r} in the registry {registry_dir}")
    return name


def release_warning(request: Request, name: str) -> str:
    """The line ``models list`` warns with about the model's interrupted release ("" if none)."""
    try:
        record = read_pending_release(request.app.state.settings.registry_dir, name)
    except UserError as exc:
        return str(exc)
    return record.warning() if record is not None and record.interrupted() else ""


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    """Every model: production version, versions, problems."""
    registry_dir = request.app.state.settings.registry_dir
    rows = []
    for name in list_models(registry_dir):
        survey = survey_model(registry_dir, name)
        rows.append(
            {
                "name": name,
                "production": survey.aliases.get("production"),
                "previous": survey.aliases.get("previous"),
                "versions": [v.version for v in survey.versions],
                "problems": survey.problems,
                "warning": release_warning(request, name),
            }
        )
    return render(
        request, "models.html", title="Models", models=rows, registry_dir=str(registry_dir)
    )


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str, outcome: str | None = None) -> HTMLResponse:
    """One model's versions, their aliases and facts; promote, roll back, compare."""
    known_model(request, name)
    survey = survey_model(request.app.state.settings.registry_dir, name)
    versions = [version_facts(v, survey.aliases) for v in survey.versions]
    return render(
        request,
        "model.html",
        title=f"Model {name}",
        name=name,
        production=survey.aliases.get("production"),
        previous=survey.aliases.get("previous"),
        versions=versions,
        problems=survey.problems,
        warning=release_warning(request, name),
        outcome=_outcomes(request).take(outcome),
    )


@router.get("/models/{name}/compare", response_class=HTMLResponse)
def compare_page(request: Request, name: str, a: str = "", b: str = "") -> HTMLResponse:
    """Two versions' settings and metrics side by side."""
    known_model(request, name)
    registry_dir = request.app.state.settings.registry_dir
    survey = survey_model(registry_dir, name)
    try:
        pair = [resolve_version(registry_dir, name, ref) for ref in (a, b)]
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    facts = [version_facts(v, survey.aliases) for v in pair]
    metric_names = list(dict.fromkeys(k for f in facts for k, _ in f["metrics"]))
    setting_names = list(dict.fromkeys(k for f in facts for k, _ in f["settings"]))
    return render(
        request,
        "compare.html",
        title=f"{name}: v{facts[0]['number']} and v{facts[1]['number']}",
        name=name,
        pair=facts,
        metrics=[(m, [dict(f["metrics"]).get(m, "") for f in facts]) for m in metric_names],
        settings=[(s, [dict(f["settings"]).get(s, "") for f in facts]) for s in setting_names],
    )


def _done(request: Request, name: str, outcome: Outcome) -> RedirectResponse:
    key = _outcomes(request).keep(outcome)
    return RedirectResponse(f"/models/{name}?outcome={key}", status_code=303)


def _aliases_text(name: str, aliases: dict[str, int], notes: list[str]) -> str:
    """What ``adaptune promote`` prints, and the notes it warns with."""
    text = f"{name}: production → v{aliases['production']}" + (
        f", previous → v{aliases['previous']}" if "previous" in aliases else ""
    )
    return " ".join([text, *notes])


@router.post("/models/{name}/promote")
def promote_version(
    request: Request, name: str, version: Annotated[str, Form()] = ""
) -> RedirectResponse:
    """Promote ``version`` (``N`` or ``vN``) as ``adaptune promote NAME@vN`` does (no force)."""
    known_model(request, name)
    notes: list[str] = []
    try:
        if not version:
            raise UserError(f"say which version to promote: {name}@vN")
        aliases = promote(
            request.app.state.settings.registry_dir, name, version, on_note=notes.append
        )
    except UserError as exc:
        return _done(request, name, Outcome(False, str(exc)))
    return _done(request, name, Outcome(True, _aliases_text(name, aliases, notes)))


@router.post("/models/{name}/rollback")
def rollback_model(request: Request, name: str) -> RedirectResponse:
    """Serve the previous version again, as ``adaptune rollback NAME`` does (no force)."""
    known_model(request, name)
    notes: list[str] = []
    try:
        aliases = rollback(request.app.state.settings.registry_dir, name, on_note=notes.append)
    except UserError as exc:
        return _done(request, name, Outcome(False, str(exc)))
    return _done(request, name, Outcome(True, _aliases_text(name, aliases, notes)))
