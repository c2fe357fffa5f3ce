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
@click.option("--train-steps", type=int, help="Optimizer steps.")
@click.option("--learning-rate", type=float, help="Peak learning rate.")
@click.option("--batch-size", type=int, help="Examples per step.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--lora", "lora_json", help="LoRA settings as JSON, e.g. '{\"r\": 16}'.")
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
def run(
    config_path: Path | None,
    lora_json: str | None,
    data_json: str | None,
    gate_metric: str | None,
    threshold: float | None,
    min_improvement: float | None,
    runs_dir: Path,
    compiled: Path,
    **flags: Any,
) -> None:
    """Run the compiled pipeline locally with kfp.local and print a summary."""
    from adaptune.runner.local import declared_parameters, run_pipeline
    from adaptune.runner.params import load_config, resolve_params
    from adaptune.runner.summary import build_summary, print_summary

    try:
        if not compiled.is_file():
            raise UserError(f"compiled pipeline not found: {compiled} (run: make compile)")
        config = load_config(config_path) if config_path else {}
        base_dir = config_path.resolve().parent if config_path else Path.cwd()
        overrides: dict[str, Any] = dict(flags)
        for name, text in (("lora", lora_json), ("data", data_json)):
            if text:
                try:
                    overrides[name] = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise UserError(f"--{name} is not valid JSON: {exc}") from None
        gate = {"metric": gate_metric, "threshold": threshold, "min_improvement": min_improvement}
        overrides["gate"] = {k: v for k, v in gate.items() if v is not None} or None
        params = resolve_params(declared_parameters(compiled), config, overrides, base_dir)
    except UserError as exc:
        _fail(str(exc))
    outcome = run_pipeline(compiled, params, runs_dir)
    summary = build_summary(outcome, params)
    print_summary(summary)
    if not outcome.succeeded:
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
