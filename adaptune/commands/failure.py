"""How a command reports a user error: one line on stderr and exit status 2, no traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(message: str) -> NoReturn:
    """Print ``adaptune: error: MESSAGE`` on stderr and exit with status 2."""
    click.echo(f"adaptune: error: {message}", err=True)
    sys.exit(2)
