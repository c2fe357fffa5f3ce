"""Options and error handling shared by the command modules."""

from __future__ import annotations

import sys
from pathlib import Path

import click

REGISTRY_DIR_OPTION = click.option(
    "--registry-dir",
    type=click.Path(path_type=Path),
    default=Path("registry"),
    show_default=True,
    envvar="ADAPTUNE_REGISTRY_DIR",
    help="Model registry directory (env ADAPTUNE_REGISTRY_DIR).",
)


def fail(message: str) -> None:
    """Print ``message`` as an error and exit 2 (no traceback)."""
    click.echo(f"adaptune: error: {message}", err=True)
    sys.exit(2)
