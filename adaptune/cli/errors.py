"""How every command reports what went wrong: one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import click

from adaptune.errors import UserError
from adaptune.vertex.google_errors import imported_google_errors

Func = TypeVar("Func", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    """Print ``adaptune: error: MESSAGE`` on stderr and exit with status 2."""
    click.echo(f"adaptune: error: {message}", err=True)
    sys.exit(2)


class CommandGroup(click.Group):
    """The ``adaptune`` group: a usage error (a bad flag value, an unknown option) is one line.

    ``adaptune: error: Invalid value for '--adapter': not valid JSON: ... (see 'adaptune run
    --help')``, exit 2, as every other refusal; click's own form takes three lines.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:  # noqa: D102
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:  # noqa: D102
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        fail(f"{message}{where}")
    except ValueError as exc:
        # What the OS says of a path holding NUL (click stats path options as it parses them).
        if str(exc) != "embedded null byte":
            raise
        fail("a path given contains a NUL character (\\x00)")


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
