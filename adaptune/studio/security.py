"""The studio's two checks: the bearer token (when one is set) and the CSRF token.

The CSRF token is random per studio process and embedded in every page (a ``<meta>`` tag and
each form's hidden ``csrf_token`` field); a cross-site page cannot read it, so a request that
changes state (POST) without it is refused with 403. Comparisons are constant-time.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from adaptune.studio.uploads import MAX_UPLOAD_BYTES

TOKEN_COOKIE = "adaptune_token"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = MAX_UPLOAD_BYTES + (1 << 20)
"""A form body over this (an upload plus the other fields) is refused before it is read."""


def same(given: str | None, expected: str) -> bool:
    """Whether ``given`` equals ``expected``, compared in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_token(request: Request, token: str | None) -> None:
    """Refuse (401) a request without the studio's bearer token, when it has one."""
    if token is None:
        return
    header = request.headers.get("authorization", "")
    given = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else None
    if same(given, token) or same(request.cookies.get(TOKEN_COOKIE), token):
        return
    raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})


async def check_csrf(request: Request, csrf_token: str) -> None:
    """Refuse (403) a state-changing request without the page's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FORM_BYTES:
            raise HTTPException(413, f"the form is over {MAX_FORM_BYTES >> 20} MiB")
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not same(given, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
