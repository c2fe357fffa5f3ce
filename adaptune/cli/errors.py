"""How every command reports what went wrong: one line on stderr and exit status 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from adaptune.errors import UserError

Func = TypeVar("Func", bound=Callable[..., Any])

# Modules whose errors mean Google Cloud refused a call (or found no credentials), and the
# class in each. They are looked up in sys.modules when something goes wrong: an error of a
# module that was never imported cannot have been raised, so no command imports them.
GOOGLE_ERRORS = (
    ("google.api_core.exceptions", "GoogleAPIError"),
    ("google.auth.exceptions", "GoogleAuthError"),
)


def fail(message: str) -> NoReturn:
    """Print ``adaptune: error: MESSAGE`` on stderr and exit with status 2."""
    click.echo(f"adaptune: error: {message}", err=True)
    sys.exit(2)


def google_errors() -> tuple[type[BaseException], ...]:
    """The Google client libraries' error classes, of the libraries imported so far."""
    found = []
    for module_name, class_name in GOOGLE_ERRORS:
        module = sys.modules.get(module_name)
        error = getattr(module, class_name, None) if module is not None else None
        if isinstance(error, type):
            found.append(error)
    return tuple(found)


def reports_errors(func: Func) -> Func:
    """Make a command report a ``UserError`` or a Google Cloud error as one line, exit 2.

    Put it directly above the command's ``def``, under the click decorators.
    """

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            fail(str(exc))
        except Exception as exc:
            if isinstance(exc, google_errors()):
                fail(f"Google Cloud refused the request: {exc}")
            raise

    return command  # type: ignore[return-value]
