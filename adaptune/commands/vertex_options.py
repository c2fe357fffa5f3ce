"""Click options every Vertex AI command takes, and the settings they resolve to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

VERTEX_OPTIONS = [
    click.option(
        "--vertex-config",
        type=click.Path(path_type=Path),
        help="YAML file of Vertex settings (see configs/vertex.example.yaml); "
        "default: $ADAPTUNE_VERTEX_CONFIG.",
    ),
    click.option("--project", help="Google Cloud project id [$ADAPTUNE_PROJECT]."),
    click.option("--location", help="Vertex AI region [$ADAPTUNE_LOCATION]."),
    click.option(
        "--api-endpoint", help="Vertex API endpoint [$ADAPTUNE_API_ENDPOINT].", hidden=True
    ),
]


def apply_options(options: list[Any]) -> Any:
    """A decorator adding ``options`` to a command, in the order listed."""

    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def vertex_settings(flags: dict[str, Any], config: Path | None) -> Any:
    """``VertexSettings`` from flags (None: not given), ``ADAPTUNE_*`` variables and ``config``.

    Raises:
        UserError: On a missing or invalid setting.
    """
    from adaptune.vertex.settings import resolve_settings

    if flags.get("labels") is not None:
        flags = {**flags, "labels": ",".join(flags["labels"]) or None}
    return resolve_settings(flags, config_path=config)
