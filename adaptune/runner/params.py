"""Pipeline parameters for a local run: defaults, a YAML config file, then flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adaptune.data.formatting import INPUT_PLACEHOLDER
from adaptune.data.settings import DataSettings
from adaptune.errors import UserError
from adaptune.evaluation.gate import GateSettings
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.registry.refs import check_model_name
from adaptune.tuning.methods import method_from_dict
from adaptune.tuning.settings import TrainingSettings
from adaptune.vertex.deploy_settings import check_vertex_deploy

PATH_PARAMS = ("train_data", "eval_data", "registry_dir")
MAX_CONFIG_BYTES = 1 << 20
TYPE_CASTS = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "STRING": str, "BOOLEAN": bool}
DICT_PARAMS = ("adapter", "training", "gate", "data", "evaluation", "vertex_deploy")


def declared_parameters(compiled: Path) -> dict[str, Any]:
    """The compiled pipeline's parameters and their defaults (None for required ones).

    Raises:
        UserError: If the file is missing or is not a compiled pipeline.
    """
    try:
        spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
        definitions = spec["root"]["inputDefinitions"]["parameters"]
    except FileNotFoundError:
        raise UserError(f"compiled pipeline not found: {compiled} (run: make compile)") from None
    except (yaml.YAMLError, KeyError, TypeError):
        raise UserError(f"{compiled}: not a compiled pipeline") from None
    params = {}
    for name, info in definitions.items():
        default = info.get("defaultValue")
        cast = TYPE_CASTS.get(info.get("parameterType", ""))
        params[name] = cast(default) if cast is not None and default is not None else default
    return params


def pipeline_params(
    compiled: Path, config_path: Path | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Every parameter of the compiled pipeline: its defaults < the config file < ``overrides``.

    The one resolution ``adaptune run``, ``vertex submit`` and ``vertex schedule create`` use.

    Args:
        compiled: The compiled pipeline YAML.
        config_path: A YAML file of parameters; relative paths in it are resolved against its
            directory.
        overrides: Values from flags (None means not given); relative paths are resolved
            against the current directory.

    Raises:
        UserError: On a missing file, unknown, missing or invalid parameters.
    """
    config = load_config(config_path) if config_path else {}
    base_dir = config_path.resolve().parent if config_path else Path.cwd()
    return resolve_params(declared_parameters(compiled), config, overrides, base_dir)


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few bytes of aliases can expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in a config file")
        return super().compose_node(parent, index)


def load_config(path: Path) -> dict[str, Any]:
    """Read a YAML mapping of pipeline parameters: UTF-8, 1 MiB at most, no aliases.

    Raises:
        UserError: If the file is missing, a directory, too large, not UTF-8, not YAML, or not
            a mapping.
    """
    try:
        if path.is_dir():
            raise UserError(f"config file {path} is a directory")
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"config file {path}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UserError(f"config file {path} is over {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise UserError(f"{path}: not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of pipeline parameters")
    return data


def merged(name: str, base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A dict parameter's value: ``given`` key by key over ``base``.

    Choosing another adapter method replaces the adapter dict: the keys of one method (LoRA's
    ``r``, ``alpha``, ...) never leak into another's.
    """
    if name == "adapter" and given.get("method", base.get("method", "lora")) != base.get(
        "method", "lora"
    ):
        return dict(given)
    return {**base, **given}


def resolve_params(
    declared: dict[str, Any], config: dict[str, Any], overrides: dict[str, Any], base_dir: Path
) -> dict[str, Any]:
    """Merge parameters (declared defaults < config file < flags) and check them early.

    Dict parameters (``adapter``, ``training``, ``gate``, ``data``) merge key by key, so a
    config may set just one key; an ``adapter`` naming another method replaces the dict.
    Relative paths in a config file are resolved against the file's directory; those given as
    flags against the current directory.

    Args:
        declared: The compiled pipeline's parameters with their defaults (None: required).
        config: Values from the config file.
        overrides: Values from flags (None means not given).
        base_dir: Directory of the config file.

    Returns:
        Every pipeline parameter with its value.

    Raises:
        UserError: On unknown or missing parameters and invalid settings.
    """
    unknown = sorted(
        (set(config) | {k for k, v in overrides.items() if v is not None}) - set(declared)
    )
    if unknown:
        raise UserError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(declared)}")
    params = dict(declared)
    for source, origin in ((config, base_dir), (overrides, Path.cwd())):
        for name, value in source.items():
            if value is None:
                continue
            if name in DICT_PARAMS:
                if not isinstance(value, dict):
                    raise UserError(f"{name} must be a mapping, got {value!r}")
                value = merged(name, params.get(name) or {}, value)
            elif name in PATH_PARAMS and value and not str(value).startswith("gs://"):
                value = str((origin / str(value)).resolve())
            params[name] = value
    missing = sorted(name for name, value in params.items() if value is None)
    if missing:
        raise UserError(f"missing required parameter(s): {', '.join(missing)}")
    method_from_dict(params["adapter"])
    GateSettings.from_dict(params["gate"])
    DataSettings.from_dict(params["data"])
    TrainingSettings.from_dict({**params["training"], "seed": params["seed"]})
    EvaluationSettings.from_dict(params["evaluation"])
    check_vertex_deploy(params["vertex_deploy"])
    for name in ("model_name", "prompt_template", "base_model", "train_data"):
        if not isinstance(params[name], str):
            raise UserError(f"{name} must be a string, got {params[name]!r}")
    check_model_name(params["model_name"])
    if INPUT_PLACEHOLDER not in params["prompt_template"]:
        raise UserError(f"prompt_template must contain {INPUT_PLACEHOLDER}")
    return params
