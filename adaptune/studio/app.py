"""The studio's FastAPI app: the pages' routers behind the token and CSRF checks.

``create_app(settings)`` is what ``adaptune studio`` serves (tests call it too). Every request
passes ``security.check_token`` (when a token is set) and every POST ``security.check_csrf``.
The pages live in ``pages/``, one module per page; static files (CSS, JavaScript) in
``static/``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from adaptune.studio.pages import ROUTERS
from adaptune.studio.rendering import render
from adaptune.studio.security import TOKEN_COOKIE, check_csrf, check_token, same
from adaptune.studio.settings import StudioSettings


def create_app(settings: StudioSettings) -> FastAPI:
    """The studio app for these directories.

    Args:
        settings: What the studio reads and writes, its token and CSRF token.
    """

    async def guard(request: Request) -> None:
        if request.url.path != "/login":
            check_token(request, settings.token)
        await check_csrf(request, settings.csrf_token)

    app = FastAPI(
        title="adaptune studio",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(guard)],
    )
    app.state.settings = settings
    app.mount(
        "/static",
        StaticFiles(directory=str(files("adaptune.studio") / "static")),
        name="static",
    )

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/runs", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login(token: str = "") -> Response:
        """Set the token cookie from ``/login?token=...`` (a browser cannot send a header)."""
        if settings.token is None:
            return RedirectResponse("/runs", status_code=303)
        if not same(token, settings.token):
            raise HTTPException(401, "wrong token")
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if "text/html" in request.headers.get("accept", ""):
            response = render(
                request, "error.html", exc.status_code, title="Error", message=exc.detail
            )
            if headers:
                response.headers.update(headers)
            return response
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    for router in ROUTERS:
        app.include_router(router)
    return app
