"""Whether an adapter method applies to a base model, checked without loading its weights.

:func:`check_method_applies` builds the base model's structure on PyTorch's ``meta`` device
(no memory, no weights read: a second even for a large config) and asks PEFT to apply the
method to it, so target modules the model does not have, ``last_layers`` beyond its depth and
prompt tuning beyond its context are refused before anything runs, naming the setting to
change. The runner calls it when the parameters are resolved; the tuning step again before it
loads the weights. A ``gs://`` base model is not fetched for it: it is checked in the step.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from adaptune.base_models import builtin
from adaptune.base_models.tokenizer import checkpoint_dir
from adaptune.compute.packing import PACKING_SETTING
from adaptune.errors import UserError
from adaptune.settings_dict import shown
from adaptune.tuning.methods import AdapterMethod, IA3Method, LastLayersMethod, PromptTuningMethod

CONFIG_FILE = "config.json"
SHOWN_MODULES = 8


@contextmanager
def quiet() -> Iterator[None]:
    """No warnings or library logs: a check prints nothing unless it refuses."""
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def empty_model(base_model: str) -> tuple[PreTrainedModel, str] | None:
    """The base model's structure with no weights (on the meta device), and its family.

    Args:
        base_model: ``builtin:<model>`` or a local Hugging Face checkpoint directory.

    Returns:
        The model and ``causal`` or ``seq2seq``; None for a ``gs://`` base model (not fetched
        for a check).

    Raises:
        UserError: On an unknown built-in model, a path that is not a checkpoint directory,
            or a ``config.json`` no model can be built from.
    """
    if base_model.startswith("gs://"):
        return None
    path = checkpoint_dir(base_model)
    with quiet(), torch.device("meta"):
        if path is None:
            key = base_model.removeprefix(builtin.BUILTIN_PREFIX)
            model = builtin.build_model(key, builtin.build_tokenizer())
            return model, builtin.BUILTIN_MODELS[key].family
        return _from_config(Path(path), base_model)


def _from_config(path: Path, name: str) -> tuple[PreTrainedModel, str]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if not (path / CONFIG_FILE).is_file():
        raise UserError(
            f"base_model {name!r} is a directory without {CONFIG_FILE}: not a Hugging Face "
            "checkpoint (or use builtin:tiny-gpt2, builtin:tiny-t5)"
        )
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        family = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
        auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
        model = auto.from_config(config)
    except Exception as exc:  # transformers raises many kinds for a config it cannot use
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"base_model {name!r}: no model can be built from its {CONFIG_FILE} ({first[:200]})"
        ) from None
    return model, family


def context_length(model: PreTrainedModel) -> int | None:
    """How many positions the model has (None: no fixed limit, e.g. T5's relative positions)."""
    config = model.config
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def linear_module_names(model: PreTrainedModel) -> list[str]:
    """The names (last part) of the model's linear layers, the output head aside."""
    names: list[str] = []
    for full, module in model.named_modules():
        leaf = full.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear | Conv1D) and leaf != "lm_head" and leaf not in names:
            names.append(leaf)
    return names


def check_method_applies(
    method: AdapterMethod,
    base_model: str,
    max_lengths: Mapping[str, int] | None = None,
    packing: bool = False,
) -> None:
    """Refuse an adapter method that cannot be applied to the base model, naming the setting.

    Args:
        method: The adapter method and its settings.
        base_model: ``builtin:<model>``, a checkpoint directory or ``gs://`` (skipped).
        max_lengths: Token lengths per example the run will use, by setting name
            (``{"training.max_length": 256}``); with prompt tuning the virtual tokens add to
            each.
        packing: ``training.packing`` is on: refused for a seq2seq base model and for prompt
            tuning (virtual tokens before every example), which cannot pack.

    Raises:
        UserError: If the base model is not there, a target module is not in it,
            ``last_layers.num_layers`` is beyond its depth, a length (plus the virtual
            tokens) is beyond its context, or ``packing`` is on and the model or method
            cannot pack.
    """
    built = empty_model(base_model)
    if built is None:
        return
    model, family = built
    if packing and (family == "seq2seq" or isinstance(method, PromptTuningMethod)):
        what = (
            f"base model {base_model!r} is seq2seq"
            if family == "seq2seq"
            else (f"adapter.method {method.method!r} puts virtual tokens before every example")
        )
        raise UserError(
            f"{PACKING_SETTING}=true packs causal models only and {what}: set "
            f"{PACKING_SETTING} to false"
        )
    context = context_length(model)
    virtual = method.num_virtual_tokens if isinstance(method, PromptTuningMethod) else 0
    for setting, length in (max_lengths or {}).items():
        if context is not None and length + virtual > context:
            if virtual:
                raise UserError(
                    f"adapter.num_virtual_tokens ({virtual}) + {setting} ({length}) is "
                    f"{length + virtual}, beyond base model {base_model!r}'s context of "
                    f"{context} positions: lower one of them"
                )
            raise UserError(
                f"{setting} must be at most {context} (base model {base_model!r}'s context), "
                f"got {length}"
            )
    if isinstance(method, LastLayersMethod):
        method.trainable_prefixes(model)
        return
    if isinstance(method, IA3Method):
        _check_feedforward_subset(method)
    from peft import get_peft_model

    try:
        with quiet():
            get_peft_model(model, method.peft_config(family))
    except (ValueError, TypeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        modules = getattr(method, "target_modules", None)
        if "target modules" in first.lower() and modules is not None:
            listed = linear_module_names(model)
            more = ", ..." if len(listed) > SHOWN_MODULES else ""
            raise UserError(
                f"adapter.target_modules {shown(_listed(modules))} not found in base model "
                f"{base_model!r} (its linear modules: {', '.join(listed[:SHOWN_MODULES])}{more})"
            ) from None
        raise UserError(
            f"adapter settings ({method.method}) do not fit base model {base_model!r}: "
            f"{first[:200]}"
        ) from None


def _listed(modules: str | tuple[str, ...]) -> str | list[str]:
    return list(modules) if isinstance(modules, tuple) else modules


def _check_feedforward_subset(method: IA3Method) -> None:
    target, feedforward = method.target_modules, method.feedforward_modules
    if isinstance(target, tuple) and isinstance(feedforward, tuple):
        extra = sorted(set(feedforward) - set(target))
        if extra:
            raise UserError(
                f"adapter.feedforward_modules must be among adapter.target_modules; not there: "
                f"{shown(extra)}"
            )
