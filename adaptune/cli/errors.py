"""How every command reports what went wrong: one line on stderr and exit status 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from adaptune.errors import UserError
from adaptune.vertex.google_errors import imported_google_errors

Func = TypeVar("Func", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    """Print ``adaptune: error: MESSAGE`` on stderr and exit with status 2."""
    click.echo(f"adaptune: error: {message}", err=True)
    sys.exit(2)


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
            if isinstance(exc, imported_google_errors()):
                fail(f"Google Cloud refused the request: {exc}")
            raise

    return command  # type: ignore[return-value]
