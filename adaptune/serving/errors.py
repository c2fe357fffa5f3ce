"""Error responses in the shape Google APIs (and so Vertex AI clients) use.

``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``: a client written for a
Vertex AI endpoint reads our refusals the way it reads Vertex AI's.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


MAX_MESSAGE = 2000
"""Longest error message, in characters (a message may quote the request)."""


def one_line(message: str) -> str:
    """``message`` safe to send: one line, valid UTF-8, at most ``MAX_MESSAGE`` characters.

    A message can quote what the client sent (a field name, a reference), which may hold line
    breaks or lone surrogates that UTF-8 cannot encode; those are escaped.
    """
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def error_body(code: int, message: str) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {
        "error": {"code": code, "message": one_line(message), "status": STATUS_NAMES.get(code, "")}
    }


def error_response(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error response with ``code`` and ``message``."""
    return JSONResponse(error_body(code, message), status_code=code, headers=headers)


def describe_errors(errors: list[dict[str, Any]]) -> str:
    """Validation errors as one line each: where (``instances.0.prompt``) and what."""
    lines = []
    for error in errors[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{where or 'body'}: {message}")
    return "; ".join(lines)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal and failure with an error body; 400 for a malformed request."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = f"invalid request: {describe_errors(list(exc.errors()))}"
        content_type = request.headers.get("content-type", "")
        if content_type and "json" not in content_type:
            message += f" (the body was sent as {content_type}; send JSON, as application/json)"
        return error_response(400, message)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
