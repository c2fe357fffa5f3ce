"""The ``adaptune`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from adaptune import __version__
from adaptune.commands import serving
from adaptune.commands.failure import fail as _fail
from adaptune.commands.models import models, models_promote, models_rollback
from adaptune.commands.options import REGISTRY_DIR_OPTION
from adaptune.commands.vertex_deploy import deploy_vertex
from adaptune.commands.vertex_options import VERTEX_OPTIONS
from adaptune.commands.vertex_options import apply_options as _options
from adaptune.commands.vertex_options import vertex_settings as _settings
from adaptune.data.settings import FORMATS
from adaptune.errors import UserError
from adaptune.vertex.google_errors import google_errors as _google_errors

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMPILED = REPO_ROOT / "compiled" / "adapter_tuning.yaml"


def _json_option(name: str, text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UserError(f"{name} must be a JSON object")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adaptune")
def main() -> None:
    """Tune LLM adapters with one compiled Kubeflow pipeline, locally or on Vertex AI."""


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="YAML file of pipeline parameters (flags override it).",
)
@click.option("--train-data", help="Training data: a file, glob or gs:// URI (any data format).")
@click.option("--eval-data", help="Eval data; omit to hold out data.eval_fraction of train.")
@click.option("--base-model", help="builtin:tiny-gpt2, builtin:tiny-t5 or a checkpoint dir.")
@click.option("--prompt-template", help="Template with {input_text} where the input goes.")
@click.option("--train-steps", type=int, help="Optimizer steps (training.steps).")
@click.option("--learning-rate", type=float, help="Peak learning rate.")
@click.option("--batch-size", type=int, help="Examples per step.")
@click.option("--seed", type=int, help="Random seed.")
@click.option(
    "--adapter",
    "adapter_json",
    help='Adapter method and settings as JSON, e.g. \'{"method": "lora", "r": 16}\'.',
)
@click.option(
    "--training",
    "training_json",
    help='Training settings as JSON, e.g. \'{"steps": 0, "epochs": 3}\'.',
)
@click.option("--data", "data_json", help='Data settings as JSON, e.g. \'{"format": "csv"}\'.')
@click.option("--gate-metric", help="exact_match, rouge_l, bleu or chrf.")
@click.option("--threshold", type=float, help="Tuned score needed to deploy.")
@click.option("--min-improvement", type=float, help="Tuned minus base needed to deploy.")
@click.option(
    "--tolerance", type=float, help="How far below the production version tuned may score."
)
@click.option("--model-name", help="Registry model name.")
@click.option("--registry-dir", help="Registry directory.")
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where run directories are created.",
)
@click.option(
    "--compiled",
    type=click.Path(path_type=Path),
    default=DEFAULT_COMPILED,
    show_default=True,
    help="Compiled pipeline YAML to execute.",
)
@click.option("--experiment", help="Record the run in this experiment (a lineage context).")
@click.option(
    "--if-changed",
    is_flag=True,
    help="Do nothing (exit 0) when data content and parameters equal the last successful run's.",
)
def run(
    config_path: Path | None,
    adapter_json: str | None,
    training_json: str | None,
    train_steps: int | None,
    learning_rate: float | None,
    batch_size: int | None,
    data_json: str | None,
    gate_metric: str | None,
    threshold: float | None,
    min_improvement: float | None,
    tolerance: float | None,
    runs_dir: Path,
    compiled: Path,
    if_changed: bool,
    experiment: str | None,
    **flags: Any,
) -> None:
    """Run the compiled pipeline locally with kfp.local and print a summary."""
    from adaptune.runner.params import declared_parameters, load_config, resolve_params

    try:
        if not compiled.is_file():
            raise UserError(f"compiled pipeline not found: {compiled} (run: make compile)")
        config = load_config(config_path) if config_path else {}
        base_dir = config_path.resolve().parent if config_path else Path.cwd()
        overrides: dict[str, Any] = dict(flags)
        overrides["adapter"] = _json_option("--adapter", adapter_json)
        training = _json_option("--training", training_json) or {}
        for key, value in (
            ("steps", train_steps),
            ("learning_rate", learning_rate),
            ("batch_size", batch_size),
        ):
            if value is not None:
                training[key] = value
        overrides["training"] = training or None
        overrides["data"] = _json_option("--data", data_json)
        gate = {
            "metric": gate_metric,
            "threshold": threshold,
            "min_improvement": min_improvement,
            "tolerance": tolerance,
        }
        overrides["gate"] = {k: v for k, v in gate.items() if v is not None} or None
        params = resolve_params(declared_parameters(compiled), config, overrides, base_dir)
    except UserError as exc:
        _fail(str(exc))
    _run_and_summarise(compiled, params, runs_dir, if_changed, experiment)


def _run_and_summarise(
    compiled: Path,
    params: dict[str, Any],
    runs_dir: Path,
    if_changed: bool,
    experiment: str | None = None,
) -> dict[str, Any]:
    from adaptune.runner.run import run_local, unchanged_since
    from adaptune.runner.summary import print_summary

    if if_changed:
        last = unchanged_since(compiled, params, runs_dir)
        if last:
            click.echo(
                f"unchanged since run {last} (same data content and parameters): nothing to do"
            )
            sys.exit(0)
    result = run_local(compiled, params, runs_dir, experiment)
    print_summary(result.summary)
    if not result.succeeded:
        sys.exit(1)
    return result.manifest


@main.command("export-merged")
@click.argument("adapter_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--base-model", required=True, help="The base model the adapter was trained on.")
def export_merged_command(adapter_dir: Path, out_dir: Path, base_model: str) -> None:
    """Merge an adapter into its base model and save a plain Hugging Face checkpoint."""
    from adaptune.atomic import staged_directory
    from adaptune.base_models import load_base_model
    from adaptune.tuning.loading import export_merged

    try:
        base = load_base_model(base_model)
        with staged_directory(out_dir) as staging:
            export_merged(base.model, adapter_dir, staging)
            base.tokenizer.save_pretrained(staging)
    except UserError as exc:
        _fail(str(exc))
    click.echo(f"wrote {out_dir}")


def _store(runs_dir: Path):
    from adaptune.lineage.store import MetadataStore

    return MetadataStore(runs_dir)


RUNS_DIR_OPTION = click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where runs and metadata.sqlite live.",
)


@main.group()
def runs() -> None:
    """List, show and compare local runs."""


@runs.command("list")
@RUNS_DIR_OPTION
@click.option("--experiment", help="Only the runs recorded in this experiment.")
def runs_list(runs_dir: Path, experiment: str | None) -> None:
    """Every run, newest first."""
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("run", "status", "started", "model", "tuned", "gate", "version"):
        table.add_column(column)
    store = _store(runs_dir)
    keep = set(store.runs_in("experiment", experiment)) if experiment else None
    for r in store.runs():
        if keep is not None and r["run_id"] not in keep:
            continue
        metrics = (r.get("metrics") or {}).get("tuned") or {}
        gate = r.get("gate") or {}
        registry = r.get("registry") or {}
        table.add_row(
            r["run_id"],
            r.get("status", ""),
            (r.get("start_time") or "")[:19],
            r.get("model_name") or "",
            f"{metrics.get('exact_match', float('nan')):.4f}" if metrics else "",
            {True: "passed", False: "failed"}.get(gate.get("passed"), ""),
            registry.get("model_ref") or "",
        )
    Console(width=max(160, Console().width)).print(table)


def _manifest(runs_dir: Path, run_id: str) -> dict[str, Any]:
    path = runs_dir / run_id / "manifest.json"
    if not path.is_file():
        _fail(f"no manifest for run {run_id!r} in {runs_dir}")
    return json.loads(path.read_text(encoding="utf-8"))


@runs.command("show")
@click.argument("run_id")
@RUNS_DIR_OPTION
def runs_show(run_id: str, runs_dir: Path) -> None:
    """A run's manifest and its tasks."""
    manifest = _manifest(runs_dir, run_id)
    record = _store(runs_dir).run(run_id) or {}
    click.echo(
        json.dumps(
            {
                **manifest,
                "status": record.get("status", manifest.get("status")),
                "tasks": [
                    {k: e[k] for k in ("type", "status", "start_time", "end_time")}
                    for e in _store(runs_dir).executions(run_id)
                ],
            },
            indent=2,
            default=str,
        )
    )


@runs.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@RUNS_DIR_OPTION
def runs_compare(run_a: str, run_b: str, runs_dir: Path) -> None:
    """Parameters, data hashes and metrics that differ between two runs."""
    from rich.console import Console
    from rich.table import Table

    from adaptune.lineage.query import compare_runs

    rows = compare_runs(_manifest(runs_dir, run_a), _manifest(runs_dir, run_b))
    if not rows:
        click.echo("no differences in parameters, data or metrics")
        return
    table = Table()
    table.add_column("field")
    table.add_column(run_a)
    table.add_column(run_b)
    for key, a, b in rows:
        table.add_row(key, str(a), str(b))
    Console(width=max(160, Console().width)).print(table)


@main.command()
@click.argument("run_id")
@RUNS_DIR_OPTION
def reproduce(run_id: str, runs_dir: Path) -> None:
    """Rerun a run from its manifest and check the adapter's sha256 matches."""
    manifest = _manifest(runs_dir, run_id)
    compiled = Path(manifest["compiled_spec"]["path"])
    from adaptune.hashing import sha256_file

    if not compiled.is_file() or sha256_file(compiled) != manifest["compiled_spec"]["sha256"]:
        click.echo("warning: the compiled pipeline changed since the run", err=True)
    params = {k: v for k, v in manifest["params"].items() if k != "run_id"}
    for key, digest in (manifest.get("data_sha256") or {}).items():
        if digest and (not Path(params[key]).is_file() or sha256_file(Path(params[key])) != digest):
            _fail(f"{key} {params[key]} is missing or its content changed since run {run_id}")
    new = _run_and_summarise(compiled, params, runs_dir, if_changed=False)
    expected, got = manifest.get("adapter_sha256"), new.get("adapter_sha256")
    if expected and expected == got:
        click.echo(f"reproduced: adapter sha256 {got} matches run {run_id}")
        return
    click.echo(
        f"NOT reproduced: adapter sha256 {got} differs from run {run_id}'s {expected}", err=True
    )
    sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--eval-data", "eval_paths", multiple=True, help="Eval data (path, glob or gs://).")
@click.option(
    "--format",
    "data_format",
    type=click.Choice(FORMATS),
    help="Data format (default: detected per file).",
)
@click.option(
    "--base-model",
    default="builtin:tiny-gpt2",
    show_default=True,
    help="Model whose tokenizer counts tokens.",
)
@click.option("--data", "data_json", help="Data settings as JSON, e.g. '{\"max_examples\": 1000}'.")
@click.option(
    "--html", "html_path", type=click.Path(path_type=Path), help="Also write the report as HTML."
)
def validate(
    paths: tuple[str, ...],
    eval_paths: tuple[str, ...],
    data_format: str | None,
    base_model: str,
    data_json: str | None,
    html_path: Path | None,
) -> None:
    """Check data files (paths, globs, gs:// URIs) as the pipeline would, and print the report.

    Exits 1 when the data would fail the pipeline, 2 on bad options.
    """
    from adaptune.atomic import write_text_atomic
    from adaptune.data.settings import DataSettings
    from adaptune.data.validation import check_dataset

    try:
        values = json.loads(data_json) if data_json else {}
        if not isinstance(values, dict):
            raise UserError("--data must be a JSON object")
        if data_format:
            values["format"] = data_format
        settings = DataSettings.from_dict(values)
        report, _ = check_dataset(list(paths), list(eval_paths), settings, base_model)
    except json.JSONDecodeError as exc:
        _fail(f"--data is not valid JSON: {exc}")
    except UserError as exc:
        _fail(str(exc))
    click.echo(report.to_markdown())
    if html_path:
        write_text_atomic(html_path, report.to_html())
    if not report.passed:
        click.echo(report.failure_message(), err=True)
        sys.exit(1)


# --- Vertex AI ---------------------------------------------------------------------------------

JOB_OPTIONS = [
    click.option(
        "--pipeline-root", help="gs:// directory for artifacts [$ADAPTUNE_PIPELINE_ROOT]."
    ),
    click.option("--service-account", help="Service account the job runs as."),
    click.option("--network", help="VPC network, projects/NUMBER/global/networks/NAME."),
    click.option("--kms-key", help="Cloud KMS key for CMEK encryption."),
    click.option("--experiment", help="Vertex AI experiment to record the run in."),
    click.option("--cache/--no-cache", "enable_caching", default=None, help="Reuse task outputs."),
    click.option(
        "--label", "labels", multiple=True, help="Extra job label KEY=VALUE (repeatable)."
    ),
    click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        help="YAML file of pipeline parameters, as for `adaptune run`.",
    ),
    click.option("--train-data", help="Training JSONL (local: staged to gs://; or gs://...)."),
    click.option("--eval-data", help="Eval JSONL (local or gs://)."),
    click.option(
        "--set",
        "param_sets",
        multiple=True,
        help="Pipeline parameter NAME=VALUE (VALUE parsed as JSON when it can be; repeatable).",
    ),
    click.option("--run-id", help="Job id (default: adaptune-YYYYMMDD-HHMMSS)."),
    click.option(
        "--compiled",
        type=click.Path(path_type=Path),
        default=DEFAULT_COMPILED,
        show_default=True,
        help="Compiled pipeline YAML (ignored with --profile).",
    ),
    click.option("--profile", help="Compile with this profile instead (e.g. vertex-gpu)."),
    click.option("--image", help="Component image for --profile (default: the profile's)."),
]


def _pipeline_params(
    compiled: Path,
    config_path: Path | None,
    train_data: str | None,
    eval_data: str | None,
    param_sets: tuple[str, ...],
) -> dict[str, Any]:
    from adaptune.runner.params import declared_parameters, load_config, resolve_params

    config = load_config(config_path) if config_path else {}
    base_dir = config_path.resolve().parent if config_path else Path.cwd()
    overrides: dict[str, Any] = {"train_data": train_data, "eval_data": eval_data}
    for item in param_sets:
        name, sep, text = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected NAME=VALUE")
        try:
            overrides[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[name.strip()] = text
    declared = declared_parameters(compiled)
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise UserError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(declared)}")
    return resolve_params(declared, config, overrides, base_dir)


def _template(compiled: Path, profile: str | None, image: str | None, out_dir: Path) -> Path:
    if image and not profile:
        raise UserError("--image needs --profile")
    if not profile:
        if not compiled.is_file():
            raise UserError(f"compiled pipeline not found: {compiled} (run: make compile)")
        return compiled
    from pipelines.compile import compile_all
    from pipelines.profiles import get_profile

    try:
        chosen = get_profile(profile, image)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return compile_all(out_dir, chosen)[0]


def _prepare(options: dict[str, Any], out_dir: Path, credentials: Any = None) -> tuple[Any, Any]:
    from adaptune.run_ids import check_run_id, new_run_id
    from adaptune.vertex.jobs import init_vertex
    from adaptune.vertex.submission import prepare_job

    settings = _settings(
        {k: options[k] for k in SETTING_FLAGS if k in options}, options["vertex_config"]
    )
    init_vertex(settings, credentials)  # before the job is built: its client takes the endpoint
    template = _template(options["compiled"], options["profile"], options["image"], out_dir)
    params = _pipeline_params(
        template,
        options["config_path"],
        options["train_data"],
        options["eval_data"],
        options["param_sets"],
    )
    run_id = check_run_id(options["run_id"]) if options["run_id"] else new_run_id()
    return settings, prepare_job(settings, template, params, run_id, credentials)


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


@main.command()
@_options(VERTEX_OPTIONS + JOB_OPTIONS)
@click.option("--dry-run", is_flag=True, help="Print the request body; call nothing.")
def submit(dry_run: bool, **options: Any) -> None:
    """Run the compiled pipeline on Vertex AI Pipelines and print its console URL.

    Local input files are uploaded below the pipeline root first.
    """
    import tempfile

    from adaptune.vertex.jobs import submit_job
    from adaptune.vertex.submission import dry_run_request, stage_inputs, storage_client

    with tempfile.TemporaryDirectory() as tmp:
        try:
            if dry_run:
                from google.auth.credentials import AnonymousCredentials

                # No call is made; anonymous credentials keep the SDK from looking any up.
                settings, prepared = _prepare(options, Path(tmp), AnonymousCredentials())
                click.echo(json.dumps(dry_run_request(prepared, settings), indent=2))
                return
            settings, prepared = _prepare(options, Path(tmp))
            stage_inputs(prepared, settings, storage_client(settings))
            url = submit_job(prepared.job, settings)
        except UserError as exc:
            _fail(str(exc))
        except _google_errors() as exc:
            _fail(f"Google Cloud refused the request: {exc}")
    click.echo(f"submitted {prepared.run_id}")
    click.echo(url)


@main.command()
@click.argument("run")
@_options(VERTEX_OPTIONS)
@click.option("--wait", is_flag=True, help="Follow the job until it ends (live display).")
@click.option("--poll", type=float, default=15.0, show_default=True, help="Seconds between polls.")
def status(run: str, wait: bool, poll: float, vertex_config: Path | None, **flags: Any) -> None:
    """Show a Vertex AI pipeline job's state and each task's; exit 1 if it ended unsuccessfully."""
    from rich.console import Console
    from rich.live import Live

    from adaptune.vertex.display import status_table
    from adaptune.vertex.jobs import get_job_status, init_vertex, wait_for_job

    console = Console()
    try:
        settings = _settings(flags, vertex_config)
        init_vertex(settings)
        fetch = lambda: get_job_status(settings, run)  # noqa: E731
        if wait:
            with Live(console=console, auto_refresh=False) as live:
                final = wait_for_job(
                    fetch,
                    lambda s: live.update(status_table(s), refresh=True),
                    poll_seconds=poll,
                )
        else:
            final = fetch()
            console.print(status_table(final))
    except UserError as exc:
        _fail(str(exc))
    except _google_errors() as exc:
        _fail(f"Google Cloud refused the request: {exc}")
    if final.ended and not final.succeeded:
        sys.exit(1)


@main.group()
def schedule() -> None:
    """Run the pipeline on a schedule on Vertex AI (PipelineJobSchedule)."""


@schedule.command("create")
@_options(VERTEX_OPTIONS + JOB_OPTIONS)
@click.option("--cron", required=True, help="Cron expression, e.g. 'TZ=Etc/UTC 0 3 * * 1'.")
@click.option("--name", "display_name", default="adaptune-retrain", show_default=True)
@click.option("--start-time", default="", help="RFC 3339 time of the first run.")
@click.option("--end-time", default="", help="RFC 3339 time after which no run starts.")
@click.option("--max-concurrent-runs", type=int, default=1, show_default=True)
@click.option("--max-runs", type=int, default=0, help="Stop after this many runs (0: no limit).")
def schedule_create(
    cron: str,
    display_name: str,
    start_time: str,
    end_time: str,
    max_concurrent_runs: int,
    max_runs: int,
    **options: Any,
) -> None:
    """Create a schedule that submits the pipeline with these parameters."""
    import tempfile

    from adaptune.vertex.schedules import ScheduleSpec, create_schedule
    from adaptune.vertex.submission import stage_inputs, storage_client

    with tempfile.TemporaryDirectory() as tmp:
        try:
            spec = ScheduleSpec(
                display_name, cron, max_concurrent_runs, start_time, end_time, max_runs
            )
            settings, prepared = _prepare(options, Path(tmp))
            stage_inputs(prepared, settings, storage_client(settings))
            created = create_schedule(prepared.job, spec, settings)
        except UserError as exc:
            _fail(str(exc))
        except _google_errors() as exc:
            _fail(f"Google Cloud refused the request: {exc}")
    click.echo(f"created {created.resource_name}")


@schedule.command("list")
@_options(VERTEX_OPTIONS)
def schedule_list(vertex_config: Path | None, **flags: Any) -> None:
    """List the region's pipeline job schedules."""
    from rich.console import Console

    from adaptune.vertex.display import schedules_table
    from adaptune.vertex.jobs import init_vertex
    from adaptune.vertex.schedules import list_schedules

    try:
        settings = _settings(flags, vertex_config)
        init_vertex(settings)
        rows = list_schedules(settings)
    except UserError as exc:
        _fail(str(exc))
    except _google_errors() as exc:
        _fail(f"Google Cloud refused the request: {exc}")
    Console().print(schedules_table(rows))


def _schedule_action(action: str) -> Any:
    @schedule.command(action, help=f"{action.capitalize()} a schedule (id or full name).")
    @click.argument("schedule_id")
    @_options(VERTEX_OPTIONS)
    def command(schedule_id: str, vertex_config: Path | None, **flags: Any) -> None:
        from adaptune.vertex.jobs import init_vertex
        from adaptune.vertex.schedules import change_schedule

        try:
            settings = _settings(flags, vertex_config)
            init_vertex(settings)
            change_schedule(settings, schedule_id, action)
        except UserError as exc:
            _fail(str(exc))
        except _google_errors() as exc:
            _fail(f"Google Cloud refused the request: {exc}")
        click.echo(f"{action}d {schedule_id}" if action != "resume" else f"resumed {schedule_id}")

    return command


for _action in ("pause", "resume", "delete"):
    _schedule_action(_action)


@main.command()
@click.argument("model_ref")
@RUNS_DIR_OPTION
@REGISTRY_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
@click.option(
    "--vertex",
    is_flag=True,
    help="MODEL_REF is a Vertex AI model (ID[@VERSION] or resource name): read its "
    "labels back to the pipeline job and the data hash.",
)
@_options(VERTEX_OPTIONS)
def lineage(
    model_ref: str,
    runs_dir: Path,
    registry_dir: Path,
    as_json: bool,
    vertex: bool,
    vertex_config: Path | None,
    **flags: Any,
) -> None:
    """From a deployed model version back to the data files.

    MODEL_REF is NAME (the newest recorded deploy), NAME@vN, or NAME@production /
    NAME@previous (looked up in the registry): "which data produced what serves now?"
    """
    from rich.console import Console

    from adaptune.lineage.query import find_version, render_tree
    from adaptune.lineage.query import lineage as trace
    from adaptune.registry import parse_model_ref, resolve_version
    from adaptune.registry.refs import version_number

    if vertex:
        from adaptune.vertex.jobs import init_vertex
        from adaptune.vertex.lineage import vertex_model_lineage

        try:
            settings = _settings(flags, vertex_config)
            init_vertex(settings)
            click.echo(json.dumps(vertex_model_lineage(settings, model_ref), indent=2, default=str))
        except UserError as exc:
            _fail(str(exc))
        except _google_errors() as exc:
            _fail(f"Google Cloud refused the request: {exc}")
        return
    try:
        name, ref = parse_model_ref(model_ref)
        version = None if ref is None else version_number(ref)
        if ref is not None and version is None:
            version = resolve_version(registry_dir, name, ref).version
        store = _store(runs_dir)
        chain = trace(store, find_version(store, name, version))
    except UserError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(chain, indent=2, default=str))
    else:
        Console(width=max(160, Console().width)).print(render_tree(chain, model_ref))


main.add_command(models)
main.add_command(models_promote, "promote")
main.add_command(models_rollback, "rollback")
main.add_command(deploy_vertex)
main.add_command(serving.serve)
main.add_command(serving.predict)
main.add_command(serving.compare)

if __name__ == "__main__":
    main()
