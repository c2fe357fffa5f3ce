"""The exceptions the Google client libraries raise when a call fails or credentials are missing."""

from __future__ import annotations

import importlib
import sys

GOOGLE_ERRORS = (
    ("google.api_core.exceptions", "GoogleAPIError"),
    ("google.auth.exceptions", "GoogleAuthError"),
)
"""Module and class of each: the API's errors and the authentication errors."""


def google_errors() -> tuple[type[Exception], ...]:
    """The error classes, to catch in one ``except`` (imports the libraries)."""
    return tuple(getattr(importlib.import_module(m), c) for m, c in GOOGLE_ERRORS)


def imported_google_errors() -> tuple[type[BaseException], ...]:
    """The error classes of the libraries imported so far; imports nothing.

    An error of a module that was never imported cannot have been raised, so a caller that
    reports errors need not import the Google libraries to recognise theirs.
    """
    found = []
    for module_name, class_name in GOOGLE_ERRORS:
        module = sys.modules.get(module_name)
        error = getattr(module, class_name, None) if module is not None else None
        if isinstance(error, type):
            found.append(error)
    return tuple(found)
