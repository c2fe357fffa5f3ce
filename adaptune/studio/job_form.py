"""The "New tuning job" form: its fields, and its values as pipeline parameters.

Each field sets the pipeline parameter the matching ``adaptune run`` flag sets (``Training
steps`` is ``--train-steps``, i.e. ``training.steps``); an empty field leaves the parameter at
its compiled default. The parameters are then checked by the runner's ``pipeline_params``, the
function ``adaptune run`` resolves its flags with, and the data by ``check_dataset``, what
``adaptune validate`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adaptune.base_models.builtin import BUILTIN_MODELS, BUILTIN_PREFIX
from adaptune.data.report import ValidationReport
from adaptune.data.settings import DataSettings
from adaptune.data.validation import check_dataset
from adaptune.errors import UserError
from adaptune.runner.params import declared_parameters, pipeline_params
from adaptune.studio.settings import StudioSettings
from adaptune.tuning.methods import METHODS
from adaptune.vertex.deploy_settings import check_deploy_credentials

BASE_MODELS = tuple(f"{BUILTIN_PREFIX}{name}" for name in BUILTIN_MODELS)
METHOD_NAMES = tuple(METHODS)
MAX_FIELD_CHARS = 4096


@dataclass(frozen=True)
class Field:
    """A text field of the form.

    Attributes:
        name: The form field's name.
        label: Its label (what the browser tests find it by).
        kind: ``text`` or ``number`` (the input's type).
        help: A line under it.
    """

    name: str
    label: str
    kind: str = "text"
    help: str = ""


FIELDS = (
    Field("model_name", "Model name", help="The registry model the version is registered in."),
    Field(
        "train_data",
        "Training data",
        help="A file or glob on this machine, or gs://...; JSONL, CSV or Parquet.",
    ),
    Field("eval_data", "Eval data", help="Optional: empty holds out part of the training data."),
    Field("description", "Description", help="Optional: stored with the version it registers."),
)
SETTINGS = (
    Field("train_steps", "Training steps", "number", "Optimizer steps (training.steps)."),
    Field("learning_rate", "Learning rate", "number", "Peak learning rate."),
    Field("lora_r", "LoRA rank", "number", "LoRA only: rank of the update matrices (adapter.r)."),
    Field("threshold", "Gate threshold", "number", "Tuned score needed to register a version."),
)
TEXT = ("model_name", "train_data", "eval_data", "base_model", "description")


def form_defaults(settings: StudioSettings) -> dict[str, str]:
    """The form's initial values: the compiled pipeline's defaults."""
    declared = declared_parameters(settings.compiled)
    training = declared.get("training") or {}
    adapter = declared.get("adapter") or {}
    gate = declared.get("gate") or {}
    return {
        "model_name": str(declared.get("model_name") or ""),
        "train_data": "",
        "eval_data": "",
        "description": "",
        "base_model": str(declared.get("base_model") or ""),
        "method": str(adapter.get("method") or "lora"),
        "train_steps": _number(training.get("steps")),
        "learning_rate": _number(training.get("learning_rate")),
        "lora_r": _number(adapter.get("r")),
        "threshold": _number(gate.get("threshold")),
    }


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _parse(label: str, text: str, kind: type) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UserError(f"{label}: expected {what}, got {text[:40]!r}") from None


def overrides(values: dict[str, str]) -> dict[str, Any]:
    """The pipeline parameters the form's values give (empty fields give none).

    Raises:
        UserError: On a number that is not one, or an unknown method.
    """
    for name, value in values.items():
        if len(value) > MAX_FIELD_CHARS:
            raise UserError(f"{name}: at most {MAX_FIELD_CHARS} characters")
    given: dict[str, Any] = {}
    for name in TEXT:
        text = values.get(name, "").strip()
        if text:
            given[name] = text
    method = values.get("method", "").strip() or "lora"
    if method not in METHODS:
        raise UserError(f"Method: one of {', '.join(METHODS)}, got {method[:40]!r}")
    adapter: dict[str, Any] = {"method": method}
    rank = _parse("LoRA rank", values.get("lora_r", ""), int)
    if method == "lora" and rank is not None:
        adapter["r"] = rank
    given["adapter"] = adapter
    training = {
        key: value
        for key, value in (
            ("steps", _parse("Training steps", values.get("train_steps", ""), int)),
            ("learning_rate", _parse("Learning rate", values.get("learning_rate", ""), float)),
        )
        if value is not None
    }
    if training:
        given["training"] = training
    threshold = _parse("Gate threshold", values.get("threshold", ""), float)
    if threshold is not None:
        given["gate"] = {"threshold": threshold}
    return given


def job_parameters(settings: StudioSettings, values: dict[str, str]) -> dict[str, Any]:
    """Every pipeline parameter of a job with these form values, checked as ``adaptune run`` does.

    Raises:
        UserError: On the first setting that ``adaptune run`` would refuse.
    """
    if not values.get("train_data", "").strip():
        raise UserError("Training data: give a path, glob or gs:// URI, or upload a file")
    given = overrides(values) | {"registry_dir": str(settings.registry_dir)}
    params = pipeline_params(settings.compiled, None, given, local=True)
    check_deploy_credentials(params.get("vertex_deploy"))
    return params


def job_config(params: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """What the job's ``config.yaml`` holds: the parameters the form set, resolved.

    Mappings hold only the keys the form set (as ``--train-steps`` sets ``training.steps``);
    paths are absolute (a config file's relative paths would be read against its directory);
    ``registry_dir`` is not in it (the job passes the studio's ``--registry-dir``).
    """
    given = overrides(values)
    return {
        name: value if isinstance(value, dict) else params[name]
        for name, value in given.items()
        if name in params
    }


def check_data(params: dict[str, Any]) -> ValidationReport:
    """The validation report of the job's data, as ``adaptune validate`` makes it.

    Raises:
        UserError: If the data cannot be read at all.
    """
    eval_data = params.get("eval_data") or None
    report, _ = check_dataset(
        str(params["train_data"]),
        str(eval_data) if eval_data else None,
        DataSettings.from_dict(params.get("data")),
        str(params["base_model"]),
    )
    return report
