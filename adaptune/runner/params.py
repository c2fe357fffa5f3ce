"""Pipeline parameters for a local run: defaults, a YAML config file, then flags."""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path
from typing import Any

import yaml

from adaptune.base_models.quantization import check_quantize
from adaptune.compute.device import device_for_training
from adaptune.compute.precision import check_attention, check_precision
from adaptune.data.formatting import INPUT_PLACEHOLDER
from adaptune.data.settings import DataSettings
from adaptune.data.sources import GLOB_CHARS, expand_sources
from adaptune.errors import UserError
from adaptune.evaluation.gate import GateSettings
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.registry.refs import check_model_name
from adaptune.runner.gemini_params import check_gemini_params, is_gemini_pipeline
from adaptune.settings_dict import MAX_TEXT_CHARS, SEED_LIMIT, Rules, check_value, shown
from adaptune.tuning.applies import check_method_applies
from adaptune.tuning.compilation import check_compiler
from adaptune.tuning.fit import check_memory
from adaptune.tuning.methods import method_from_dict
from adaptune.tuning.settings import TrainingSettings
from adaptune.vertex.deploy_settings import check_vertex_deploy
from adaptune.vertex.vllm_container import check_method_servable

PATH_PARAMS = ("train_data", "eval_data", "registry_dir")
DATA_PARAMS = ("train_data", "eval_data")
FUSE_ROOT = "/gcs/"
MAX_CONFIG_BYTES = 1 << 20
TYPE_CASTS = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "STRING": str, "BOOLEAN": bool}
MAX_DESCRIPTION_CHARS = 2000
"""Longest version description (shown by ``models show`` and the studio's model page)."""
DICT_PARAMS = (
    "adapter",
    "training",
    "gate",
    "data",
    "evaluation",
    "vertex_deploy",
    "vertex_gemini",
)
# Every other parameter's type and range (a test keeps the names and types equal to the
# compiled pipeline's).
SCALAR_PARAMS: dict[str, tuple[type, Rules]] = {
    "train_data": (str, Rules(non_empty=True)),
    "eval_data": (str, Rules()),
    "base_model": (str, Rules(non_empty=True)),
    "prompt_template": (str, Rules(non_empty=True, max_chars=MAX_TEXT_CHARS)),
    "seed": (int, Rules(ge=0, le=SEED_LIMIT)),
    "model_name": (str, Rules(non_empty=True)),
    "registry_dir": (str, Rules(non_empty=True)),
    "run_id": (str, Rules()),
    "description": (str, Rules(max_chars=MAX_DESCRIPTION_CHARS)),
}


def declared_parameters(compiled: Path) -> dict[str, Any]:
    """The compiled pipeline's parameters and their defaults (None for required ones).

    Raises:
        UserError: If the file is missing or is not a compiled pipeline.
    """
    try:
        stat = compiled.stat()
    except FileNotFoundError:
        raise UserError(f"compiled pipeline not found: {compiled} (run: make compile)") from None
    except OSError as exc:
        raise UserError(f"{compiled}: cannot read it ({exc.strerror})") from None
    return copy.deepcopy(_declared(compiled.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _declared(compiled: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """``declared_parameters`` of one version of the file (keyed by its time and size)."""
    try:
        spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
        definitions = spec["root"]["inputDefinitions"]["parameters"]
    except FileNotFoundError:
        raise UserError(f"compiled pipeline not found: {compiled} (run: make compile)") from None
    except OSError as exc:
        raise UserError(f"{compiled}: cannot read it ({exc.strerror})") from None
    except (yaml.YAMLError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{compiled}: not a compiled pipeline") from None
    params = {}
    for name, info in definitions.items():
        default = info.get("defaultValue")
        cast = TYPE_CASTS.get(info.get("parameterType", ""))
        params[name] = cast(default) if cast is not None and default is not None else default
    return params


def pipeline_params(
    compiled: Path, config_path: Path | None, overrides: dict[str, Any], local: bool = True
) -> dict[str, Any]:
    """Every parameter of the compiled pipeline: its defaults < the config file < ``overrides``.

    The one resolution ``adaptune run``, ``vertex submit`` and ``vertex schedule create`` use.

    Args:
        compiled: The compiled pipeline YAML.
        config_path: A YAML file of parameters; relative paths in it are resolved against its
            directory.
        overrides: Values from flags (None means not given); relative paths are resolved
            against the current directory.
        local: Whether the pipeline runs here (a Vertex job gets its own registry, so a
            local ``registry_dir`` is not checked then).

    Raises:
        UserError: On a missing file, unknown, missing or invalid parameters.
    """
    config = load_config(config_path) if config_path else {}
    base_dir = config_path.resolve().parent if config_path else Path.cwd()
    return resolve_params(declared_parameters(compiled), config, overrides, base_dir, local)


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (a few bytes of aliases can expand to gigabytes) or repeated keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in a config file")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class names it
                break
            if repeated:
                raise yaml.YAMLError(
                    f"key {shown(key)} appears twice (line {key_node.start_mark.line + 1})"
                )
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 reads 1e-3 as a number; PyYAML (YAML 1.1) reads it as the string "1e-3" unless it
# has a dot. A learning rate written 1e-3 is a number.
_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


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
        raise UserError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise UserError(f"{path}: not valid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits
        raise UserError(f"{path}: not valid YAML: {str(exc)[:200]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of pipeline parameters")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line saying what is wrong in a YAML text, and where."""
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "invalid"
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return " ".join(f"{problem}{where}".split())[:300]
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split())[:300] if lines else "invalid"


def check_scalar(name: str, value: Any) -> None:
    """Check a parameter that is not a dict against its type and range.

    Raises:
        UserError: Naming the parameter, what it must be and what it got.
    """
    kind, rules = SCALAR_PARAMS[name]
    check_value(name, value, kind, rules)


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
    declared: dict[str, Any],
    config: dict[str, Any],
    overrides: dict[str, Any],
    base_dir: Path,
    local: bool = True,
) -> dict[str, Any]:
    """Merge parameters (declared defaults < config file < flags) and check them early.

    Dict parameters (``adapter``, ``training``, ``gate``, ``data``) merge key by key, so a
    config may set just one key; an ``adapter`` naming another method replaces the dict.
    Relative paths in a config file are resolved against the file's directory; those given as
    flags against the current directory. Every value is checked here, before anything runs:
    its type and range, the data files and the registry directory, the base model and whether
    the adapter method applies to it.

    Args:
        declared: The compiled pipeline's parameters with their defaults (None: required).
        config: Values from the config file.
        overrides: Values from flags (None means not given).
        base_dir: Directory of the config file.
        local: Whether the pipeline runs here (checks a local ``registry_dir``, and that this
            machine can run ``training.precision``, ``evaluation.precision`` and their
            ``attention``).

    Returns:
        Every pipeline parameter with its value.

    Raises:
        UserError: On unknown or missing parameters and invalid settings.
    """
    given = [*config, *(k for k, v in overrides.items() if v is not None)]
    odd = [k for k in given if not isinstance(k, str)]
    if odd:
        raise UserError(f"pipeline parameter names must be strings, got {shown(odd[0])}")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UserError(
            f"unknown pipeline parameter(s) {shown(unknown)}; known: {sorted(declared)}"
        )
    params = dict(declared)
    for source, origin in ((config, base_dir), (overrides, Path.cwd())):
        for name, value in source.items():
            if value is None and source is config:
                raise UserError(f"{name} is null in the config file: give a value or remove it")
            if value is None:
                continue
            if name in DICT_PARAMS:
                if not isinstance(value, dict):
                    raise UserError(f"{name} must be a mapping, got {shown(value)}")
                value = merged(name, params.get(name) or {}, value)
            elif name in SCALAR_PARAMS:
                check_scalar(name, value)
                if name in PATH_PARAMS and value and not _remote(value):
                    value = str((origin / value).resolve())
            params[name] = value
    missing = sorted(name for name, value in params.items() if value is None)
    if missing:
        raise UserError(f"missing required parameter(s): {', '.join(missing)}")
    for name in SCALAR_PARAMS:
        if name in params:
            check_scalar(name, params[name])
    # vertex_gemini backend: the gemini pipeline's own checks (runner/gemini_params.py).
    if is_gemini_pipeline(params):
        return check_gemini_params(params, local, check_data_path, check_writable_dir)
    if isinstance(params["training"], dict) and "seed" in params["training"]:
        raise UserError(
            "training.seed is not set in training: use the top-level seed (--seed, or seed: "
            "in a config file)"
        )
    method = method_from_dict(params["adapter"])
    GateSettings.from_dict(params["gate"])
    DataSettings.from_dict(params["data"])
    training = TrainingSettings.from_dict({**params["training"], "seed": params["seed"]})
    evaluation = EvaluationSettings.from_dict(params["evaluation"])
    deploy = check_vertex_deploy(params["vertex_deploy"])
    if deploy is not None and deploy[1].serving == "vllm":
        check_method_servable(method, params["base_model"])
    check_model_name(params["model_name"])
    if INPUT_PLACEHOLDER not in params["prompt_template"]:
        raise UserError(f"prompt_template must contain {INPUT_PLACEHOLDER}")
    for name in DATA_PARAMS:
        check_data_path(name, params[name])
    if local:
        check_writable_dir("registry_dir", params["registry_dir"])
        check_precision(training.precision, "training.precision")
        check_precision(evaluation.precision, "evaluation.precision")
        check_attention(training.attention, training.precision, "training")
        check_attention(evaluation.attention, evaluation.precision, "evaluation")
        if training.compile:
            check_compiler()
    check_quantize(method.quantize, params["base_model"], here=local)
    check_method_applies(
        method,
        params["base_model"],
        {
            "training.max_length": training.max_length,
            "evaluation.max_length": evaluation.max_length,
        },
        packing=training.packing,
    )
    if local:  # the tuning step runs on this machine: refuse what cannot fit before it starts
        check_memory(params["base_model"], method, training, device_for_training(), show=False)
    return params


def _remote(value: str) -> bool:
    return value.startswith(("gs://", FUSE_ROOT))


def check_data_path(name: str, value: str) -> None:
    """Refuse a local data path that is not a file, or a glob that matches no file.

    ``gs://`` data is checked by the validation step (it needs credentials); empty means none.

    Raises:
        UserError: Naming the parameter and the path.
    """
    if not value or _remote(value):
        return
    files, problems = expand_sources([value])
    if problems or not files:
        if Path(value).is_dir():
            raise UserError(f"{name} {value!r} is a directory: give a file or a glob")
        if not GLOB_CHARS & set(value) and Path(value).exists():
            raise UserError(f"{name} {value!r} is not a regular file (a device, pipe or socket)")
        what = "no file matches" if GLOB_CHARS & set(value) else "no such file"
        raise UserError(f"{name}: {what} {value!r}")


def check_writable_dir(name: str, value: str | Path) -> None:
    """Refuse a local directory that cannot hold what a command writes there.

    The directory may not exist yet: then its nearest existing parent must be a directory
    this process can write in. ``gs://`` is not checked here.

    Raises:
        UserError: If the path is a file, lies inside a file, or cannot be written.
    """
    text = str(value)
    if not text or _remote(text):
        return
    if "\x00" in text:
        raise UserError(f"{name} must not contain NUL characters, got {shown(text)}")
    path = Path(text).absolute()
    probe = path
    while not probe.exists() and not probe.is_symlink():
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        raise UserError(f"{name} {text!r}: {probe} is a broken symbolic link")
    if not probe.is_dir():
        where = "is a file" if probe == path else f"is inside a file ({probe})"
        raise UserError(f"{name} {text!r} {where}, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{name} {text!r}: {probe} is not writable")
