"""Options of the Vertex AI commands, the settings they resolve to, and a prepared job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adaptune.cli.backends import BACKENDS, backend_option, compiled_for_backend
from adaptune.cli.options import EXPERIMENT, apply_options, compiled_option
from adaptune.cli.params import parameter_options, resolve_parameters
from adaptune.errors import UserError

# Every command's: where the settings come from and which project and region.
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
vertex_options = apply_options(VERTEX_OPTIONS)

pipeline_root_option = click.option(
    "--pipeline-root", help="gs:// directory for artifacts [$ADAPTUNE_PIPELINE_ROOT]."
)
kms_key_option = click.option("--kms-key", help="Cloud KMS key for CMEK encryption.")
labels_option = click.option(
    "--label", "labels", multiple=True, help="Extra label KEY=VALUE (repeatable)."
)

# What submitting a pipeline job takes (`vertex submit`, `vertex schedule create`).
JOB_OPTIONS = [
    *VERTEX_OPTIONS,
    pipeline_root_option,
    click.option("--service-account", help="Service account the job runs as."),
    click.option("--network", help="VPC network, projects/NUMBER/global/networks/NAME."),
    kms_key_option,
    click.option(
        "--experiment",
        help=f"{EXPERIMENT} Records the run in it, in Vertex AI Experiments "
        "[$ADAPTUNE_EXPERIMENT].",
    ),
    click.option(
        "--cache/--no-cache",
        "enable_caching",
        default=None,
        help="Cache every task / no task (overrides each task's compiled setting; default: the "
        "compiled settings, which never cache validation, evaluation, the gate or registration).",
    ),
    labels_option,
    parameter_options,
    click.option(
        "--run-id", help="Run id, also the job id (default: a new adaptune-YYYYMMDD-HHMMSS-xxxxxx)."
    ),
    compiled_option(" (ignored with --profile)"),
    backend_option,
    click.option("--profile", help="Compile with this profile instead (e.g. vertex-gpu)."),
    click.option("--image", help="Component image for --profile (default: the profile's)."),
    click.option(
        "--accelerator",
        help="With --profile vertex-gpu: the tuning CustomJob's accelerator, L4x1 (default), "
        "L4x4, A100-80GBx1 or H100x8.",
    ),
]
job_options = apply_options(JOB_OPTIONS)

SETTING_FLAGS = (
    "project",
    "location",
    "api_endpoint",
    "pipeline_root",
    "service_account",
    "network",
    "kms_key",
    "experiment",
    "enable_caching",
    "labels",
)


def vertex_settings(options: dict[str, Any]) -> Any:
    """``VertexSettings`` from a command's options, ``ADAPTUNE_*`` variables and its file.

    Flags beat variables, which beat the ``--vertex-config`` file; a setting the command has
    no flag for comes from the variables or the file.

    Raises:
        UserError: On a missing or invalid setting.
    """
    from adaptune.vertex.settings import resolve_settings

    flags = {name: options.get(name) for name in SETTING_FLAGS}
    if flags["labels"] is not None:
        flags["labels"] = ",".join(flags["labels"]) or None
    return resolve_settings(flags, config_path=options.get("vertex_config"))


def pipeline_template(
    compiled: Path,
    profile: str | None,
    image: str | None,
    out_dir: Path,
    backend: str = "local",
    accelerator: str | None = None,
) -> Path:
    """The compiled pipeline to submit: ``compiled``, or the backend's compiled with ``profile``."""
    if (image or accelerator) and not profile:
        raise UserError("--image and --accelerator need --profile")
    if not profile:
        if not compiled.is_file():
            raise UserError(f"compiled pipeline not found: {compiled} (run: make compile)")
        return compiled
    from pipelines.compile import compile_all
    from pipelines.profiles import get_profile

    try:
        chosen = get_profile(profile, image, accelerator=accelerator)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    written = {path.name: path for path in compile_all(out_dir, chosen)}
    return written[BACKENDS[backend]]


def prepare(options: dict[str, Any], out_dir: Path, credentials: Any = None) -> tuple[Any, Any]:
    """The settings and the prepared pipeline job (inputs planned, nothing uploaded yet).

    Args:
        options: The command's options (``job_options``).
        out_dir: Where a ``--profile`` compiles the pipeline.
        credentials: Credentials for the SDK (default: Application Default Credentials).
    """
    from adaptune.run_ids import check_run_id, new_run_id
    from adaptune.vertex.jobs import init_vertex
    from adaptune.vertex.submission import prepare_job

    settings = vertex_settings(options)
    init_vertex(settings, credentials)  # before the job is built: its client takes the endpoint
    backend = options.get("backend") or "local"
    compiled = compiled_for_backend(backend, options["compiled"])
    template = pipeline_template(
        compiled,
        options["profile"],
        options["image"],
        out_dir,
        backend,
        options.get("accelerator"),
    )
    if backend == "vertex_gemini":  # the tuning job runs where the pipeline job does
        where = (
            ("vertex_gemini.project", settings.project),
            ("vertex_gemini.location", settings.location),
        )
        options = {**options, "assignments": (*where, *(options.get("assignments") or ()))}
    params = resolve_parameters(template, options, local=False)
    run_id = check_run_id(options["run_id"]) if options["run_id"] else new_run_id()
    return settings, prepare_job(settings, template, params, run_id, credentials)
