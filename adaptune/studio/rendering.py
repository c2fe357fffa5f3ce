"""Pages from the package's Jinja2 templates, every value escaped (autoescape on)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

NAV = (
    ("/jobs/new", "New tuning job"),
    ("/runs", "Runs"),
    ("/models", "Models"),
    ("/try", "Try it"),
    ("/lineage", "Lineage"),
)


@cache
def environment() -> Environment:
    """The template environment: autoescaped HTML, undefined names are errors."""
    return Environment(
        loader=PackageLoader("adaptune.studio", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template rendered with the layout's context (navigation, CSRF token, title)."""
    settings = request.app.state.settings
    page = (
        environment()
        .get_template(template)
        .render(
            nav=NAV,
            path=request.url.path,
            csrf_token=settings.csrf_token,
            **context,
        )
    )
    return HTMLResponse(page, status_code=status_code)
