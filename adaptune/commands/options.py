"""Options shared by the command modules."""

from __future__ import annotations

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
