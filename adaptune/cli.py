"""The ``adaptune`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from adaptune import __version__
from adaptune.data.settings import FORMATS
from adaptune.errors import UserError

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


def _fail(message: str) -> None:
    click.echo(f"adaptune: error: {message}", err=True)
    sys.exit(2)


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
@click.option("--gate-metric", help="exact_match, rouge_l or bleu.")
@click.option("--threshold", type=float, help="Tuned score needed to deploy.")
@click.option("--min-improvement", type=float, help="Tuned minus base needed to deploy.")
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
    runs_dir: Path,
    compiled: Path,
    if_changed: bool,
    **flags: Any,
) -> None:
    """Run the compiled pipeline locally with kfp.local and print a summary."""
    from adaptune.runner.local import declared_parameters
    from adaptune.runner.params import load_config, resolve_params

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
        gate = {"metric": gate_metric, "threshold": threshold, "min_improvement": min_improvement}
        overrides["gate"] = {k: v for k, v in gate.items() if v is not None} or None
        params = resolve_params(declared_parameters(compiled), config, overrides, base_dir)
    except UserError as exc:
        _fail(str(exc))
    _run_and_summarise(compiled, params, runs_dir, if_changed)


def _run_and_summarise(
    compiled: Path, params: dict[str, Any], runs_dir: Path, if_changed: bool
) -> dict[str, Any]:
    from adaptune.lineage.hashing import sha256_file
    from adaptune.lineage.manifest import data_hashes, fingerprint
    from adaptune.lineage.store import MetadataStore
    from adaptune.lineage.tracking import last_successful_run, run_tracked
    from adaptune.runner.summary import build_summary, print_summary

    if if_changed:
        store = MetadataStore(runs_dir)
        last = last_successful_run(store)
        store.close()
        current = fingerprint(params, data_hashes(params), sha256_file(compiled))
        if last and last.get("fingerprint") == current:
            click.echo(
                f"unchanged since run {last['run_id']} (same data content and "
                "parameters): nothing to do"
            )
            sys.exit(0)
    tracked = run_tracked(compiled, params, runs_dir, summarise=build_summary)
    print_summary(tracked.summary)
    if not tracked.run.succeeded:
        sys.exit(1)
    return tracked.manifest


@main.command("export-merged")
@click.argument("adapter_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--base-model", required=True, help="The base model the adapter was trained on.")
def export_merged_command(adapter_dir: Path, out_dir: Path, base_model: str) -> None:
    """Merge an adapter into its base model and save a plain Hugging Face checkpoint."""
    from adaptune.atomic import staged_directory
    from adaptune.models import load_base_model
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
def runs_list(runs_dir: Path) -> None:
    """Every run, newest first."""
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("run", "status", "started", "model", "tuned", "gate", "version"):
        table.add_column(column)
    for r in _store(runs_dir).runs():
        metrics = (r.get("metrics") or {}).get("tuned") or {}
        gate = r.get("gate") or {}
        registry = r.get("registry") or {}
        table.add_row(
            r["run_id"],
            r.get("status", ""),
            (r.get("start_time") or "")[:19],
            r.get("model_name") or "",
            f"{metrics.get('exact_match', float('nan')):.4f}" if metrics else "",
            {True: "deploy", False: "no"}.get(gate.get("deploy"), ""),
            registry.get("model_ref") or "",
        )
    Console(soft_wrap=True).print(table)


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
    Console(soft_wrap=True).print(table)


@main.command()
@click.argument("model_ref")
@RUNS_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
def lineage(model_ref: str, runs_dir: Path, as_json: bool) -> None:
    """From a deployed model version (NAME or NAME@vN) back to the data files."""
    from rich.console import Console

    from adaptune.lineage.query import find_version, parse_model_ref, render_tree
    from adaptune.lineage.query import lineage as trace

    try:
        name, version = parse_model_ref(model_ref)
        store = _store(runs_dir)
        chain = trace(store, find_version(store, name, version))
    except UserError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(chain, indent=2, default=str))
    else:
        Console(width=max(160, Console().width)).print(render_tree(chain, model_ref))


@main.command()
@click.argument("run_id")
@RUNS_DIR_OPTION
def reproduce(run_id: str, runs_dir: Path) -> None:
    """Rerun a run from its manifest and check the adapter's sha256 matches."""
    manifest = _manifest(runs_dir, run_id)
    compiled = Path(manifest["compiled_spec"]["path"])
    from adaptune.lineage.hashing import sha256_file

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


if __name__ == "__main__":
    main()
