"""The exceptions the Google client libraries raise when a call fails or credentials are missing."""

from __future__ import annotations


def google_errors() -> tuple[type[Exception], ...]:
    """The API's errors and the authentication errors, to catch in one ``except``."""
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions

    return (exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError)
