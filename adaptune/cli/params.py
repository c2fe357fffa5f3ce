"""Pipeline parameters from flags, resolved one way for every command that runs the pipeline.

``run``, ``vertex submit`` and ``vertex schedule create`` take the same flags and turn them into
parameters with the same function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from adaptune.cli.options import apply_options, json_mapping_option, parse_json, path_option_type
from adaptune.errors import UserError

DATA_HELP = "a file, glob or gs:// URI; JSONL, CSV or Parquet"


class Assignment(click.ParamType):
    """``NAME=VALUE``, VALUE parsed as JSON when it can be (``seed=3``, ``adapter={...}``)."""

    name = "name=value"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Split ``value`` into ``(name, parsed value)``."""
        if isinstance(value, tuple):
            return value
        name, sep, text = str(value).partition("=")
        if not sep or not name.strip():
            self.fail(f"expected NAME=VALUE, got {value!r}", param, ctx)
        try:
            return name.strip(), parse_json(text)
        except json.JSONDecodeError:
            return name.strip(), text
        except ValueError as exc:  # a repeated key, nesting too deep, a number too long
            self.fail(f"{name.strip()}: not valid JSON: {exc}", param, ctx)


# Flags that set one pipeline parameter each, by the parameter's name.
SCALAR_FLAGS = (
    "train_data",
    "eval_data",
    "base_model",
    "prompt_template",
    "seed",
    "model_name",
    "registry_dir",
    "description",
)
# Flags that set one key of a mapping parameter: flag name → (parameter, key).
KEY_FLAGS = {
    "train_steps": ("training", "steps"),
    "learning_rate": ("training", "learning_rate"),
    "batch_size": ("training", "batch_size"),
    "gate_metric": ("gate", "metric"),
    "threshold": ("gate", "threshold"),
    "min_improvement": ("gate", "min_improvement"),
    "tolerance": ("gate", "tolerance"),
}
# Flags that take a whole mapping parameter as JSON, by the parameter's name.
MAPPING_FLAGS = ("adapter", "training", "data")

PARAMETER_OPTIONS = [
    click.option(
        "--config",
        "config_path",
        type=path_option_type(),
        help="YAML file of pipeline parameters (flags override it).",
    ),
    click.option("--train-data", help=f"Training data: {DATA_HELP}."),
    click.option(
        "--eval-data",
        help=f"Eval data: {DATA_HELP}; omit to hold out data.eval_fraction of the training data.",
    ),
    click.option("--base-model", help="builtin:tiny-gpt2, builtin:tiny-t5 or a checkpoint dir."),
    click.option("--prompt-template", help="Template with {input_text} where the input goes."),
    click.option("--train-steps", type=int, help="Optimizer steps (training.steps)."),
    click.option(
        "--learning-rate", type=float, help="Peak learning rate (training.learning_rate)."
    ),
    click.option("--batch-size", type=int, help="Examples per step (training.batch_size)."),
    click.option("--seed", type=int, help="Random seed."),
    json_mapping_option("--adapter", "adapter", '{"method": "lora", "r": 16}', "Adapter settings"),
    json_mapping_option("--training", "training", '{"steps": 0, "epochs": 3}', "Training settings"),
    json_mapping_option("--data", "data", '{"format": "csv"}', "Data settings"),
    click.option(
        "--gate-metric", help="Metric the gate compares: exact_match, rouge_l, bleu or chrf."
    ),
    click.option("--threshold", type=float, help="Tuned score needed to pass the gate."),
    click.option(
        "--min-improvement", type=float, help="Tuned minus base score needed to pass the gate."
    ),
    click.option(
        "--tolerance", type=float, help="How far below the production version tuned may score."
    ),
    click.option("--model-name", help="Registry model name."),
    click.option(
        "--description",
        help="What this version is for, stored with it in the registry (at most 2000 characters).",
    ),
    click.option(
        "--registry-dir",
        help="Registry the pipeline registers versions in (a directory or gs://).",
    ),
    click.option(
        "--set",
        "assignments",
        type=Assignment(),
        multiple=True,
        help="Any pipeline parameter NAME=VALUE, or one key of a mapping parameter "
        "NAME.KEY=VALUE (training.steps=300); VALUE parsed as JSON when it can be; "
        "repeatable; the flags above apply on top.",
    ),
]

parameter_options = apply_options(PARAMETER_OPTIONS)


def parameter_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """The pipeline parameters the flags give (``--set`` first, the named flags on top).

    A mapping parameter merges key by key: ``--set``'s mapping, then ``--set NAME.KEY=VALUE``,
    then the JSON flag, then the one-key flags (``--train-steps`` is ``training.steps``).

    Raises:
        UserError: If ``--set`` gives null (a parameter left out takes its default).
    """
    overrides: dict[str, Any] = {}
    dotted: dict[str, dict[str, Any]] = {}
    for name, value in flags.get("assignments") or ():
        if value is None:
            raise UserError(f"--set {name}=null: give a value, or leave {name} out for its default")
        parameter, dot, key = name.partition(".")
        if not dot:
            overrides[name] = value
        elif not parameter or not key or "." in key:
            raise UserError(f"--set {name}: give NAME=VALUE or NAME.KEY=VALUE (training.steps=300)")
        else:
            dotted.setdefault(parameter, {})[key] = value
    for name, values in dotted.items():
        given = overrides.get(name, {})
        if not isinstance(given, dict):
            raise UserError(f"--set {name}.{next(iter(values))}: {name} is not a mapping here")
        overrides[name] = {**given, **values}
    for name in SCALAR_FLAGS:
        if flags.get(name) is not None:
            overrides[name] = flags[name]
    keys: dict[str, dict[str, Any]] = {}
    for name in MAPPING_FLAGS:
        if flags.get(name) is not None:
            keys.setdefault(name, {}).update(flags[name])
    for flag, (name, key) in KEY_FLAGS.items():
        if flags.get(flag) is not None:
            keys.setdefault(name, {})[key] = flags[flag]
    for name, values in keys.items():
        given = overrides.get(name)
        if given is None:
            overrides[name] = values
        elif isinstance(given, dict):
            overrides[name] = {**given, **values}
        # else: --set gave a non-mapping; pipeline_params refuses it by name
    return overrides


def resolve_parameters(compiled: Path, flags: dict[str, Any], local: bool = True) -> dict[str, Any]:
    """Every pipeline parameter: declared defaults < ``--config`` file < the flags, checked.

    Args:
        compiled: The compiled pipeline YAML whose parameters these are.
        flags: The command's keyword arguments (those of ``parameter_options`` are read).
        local: Whether the pipeline runs here (``run``), not on Vertex AI.

    Raises:
        UserError: On a missing file, unknown, missing or invalid parameters.
    """
    from adaptune.runner.params import pipeline_params

    return pipeline_params(
        compiled, flags.get("config_path"), parameter_overrides(flags), local=local
    )
