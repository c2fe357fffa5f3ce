"""The ``adaptune`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from adaptune import __version__
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
@click.option("--train-data", help="Training JSONL (input_text/output_text).")
@click.option("--eval-data", help="Eval JSONL; omit to split 20% off the training data.")
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
    adapter_json: str | None,
    training_json: str | None,
    train_steps: int | None,
    learning_rate: float | None,
    batch_size: int | None,
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


if __name__ == "__main__":
    main()
