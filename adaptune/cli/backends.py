"""``--backend``: which tuning backend, and so which compiled pipeline, a command runs.

``local`` (the default) tunes an adapter here or on the pipeline's workers
(``compiled/adapter_tuning.yaml``); ``vertex_gemini`` tunes a Gemini model with Vertex AI's
managed tuning (``compiled/gemini_tuning.yaml``). ``adaptune run``, ``vertex submit`` and
``vertex schedule create`` take it alike; ``--compiled`` still names another file of the
backend's pipeline.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml
from click.core import ParameterSource

from adaptune.cli.options import DEFAULT_COMPILED
from adaptune.errors import UserError

BACKENDS = {"local": "adapter_tuning.yaml", "vertex_gemini": "gemini_tuning.yaml"}
"""Each backend's compiled pipeline, by file name in ``compiled/``."""
PIPELINE_NAMES = {"local": "adapter-tuning", "vertex_gemini": "gemini-tuning"}
DEFAULT_BACKEND = "local"

backend_option = click.option(
    "--backend",
    type=click.Choice(sorted(BACKENDS)),
    default=DEFAULT_BACKEND,
    show_default=True,
    help="Tuning backend: local (an adapter, tuned by the pipeline's own step) or "
    "vertex_gemini (Gemini, tuned by Vertex AI's managed tuning; settings in vertex_gemini: "
    "--set vertex_gemini.base_model=gemini-2.5-flash). Selects the compiled pipeline.",
)


def pipeline_name(compiled: Path) -> str | None:
    """The ``pipelineInfo.name`` of a compiled pipeline (None when it cannot be read)."""
    try:
        spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None  # the parameter resolution reports the file
    info = spec.get("pipelineInfo") if isinstance(spec, dict) else None
    return info.get("name") if isinstance(info, dict) else None


def compiled_for_backend(backend: str, compiled: Path) -> Path:
    """The compiled pipeline a command runs: the backend's, unless ``--compiled`` names one.

    Raises:
        UserError: If ``--compiled`` names a pipeline of another backend.
    """
    ctx = click.get_current_context(silent=True)
    given = ctx is not None and ctx.get_parameter_source("compiled") not in (
        None,
        ParameterSource.DEFAULT,
    )
    if not given and Path(compiled) == DEFAULT_COMPILED:
        return DEFAULT_COMPILED.parent / BACKENDS[backend]
    name = pipeline_name(Path(compiled))
    if name is not None and name in PIPELINE_NAMES.values() and name != PIPELINE_NAMES[backend]:
        raise UserError(
            f"--compiled {compiled} is the {name} pipeline, not the {backend} backend's "
            f"({PIPELINE_NAMES[backend]}): give --backend to match, or another file"
        )
    return Path(compiled)
