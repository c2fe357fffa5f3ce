"""The models an evaluation compares, loaded one after another, sharing weights where they can.

The base model's answers come from the tuned PEFT model with its adapter disabled; the
production adapter, when it is tuned on the same base model with the same PEFT method, is
loaded into that same model beside the tuned one and switched to with ``set_adapter``.
A ``last_layers`` adapter overwrites base weights, so a copy of only the blocks it overwrites is
kept to give the base back. Another PEFT method or prompt learning on the same base model is
loaded onto the base once the tuned adapter is taken out; only a production version on another
base model loads another model, after the previous one is let go.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftConfig, PeftModel
from safetensors import safe_open

from adaptune.base_models import load_base_model
from adaptune.base_models.loading import BaseModel
from adaptune.tuning.loading import (
    WEIGHTS_FILE,
    is_peft_adapter,
    load_tuned_model,
    read_adapter_config,
)

BASE = "base"
TUNED = "tuned"
PRODUCTION = "production"
MODEL_NAMES = (BASE, TUNED, PRODUCTION)
SETTING = "evaluation.attention"
"""The compared models, in the order reports show them."""

Visit = Callable[[str, torch.nn.Module, BaseModel], None]
"""Called with a model's name, the model (on its device) and its base (tokenizer, family)."""


@dataclass(frozen=True)
class ProductionModel:
    """The version in production, compared with the new one.

    Attributes:
        adapter_dir: Its adapter directory (PEFT or ``last_layers``), e.g. a registry version.
        base_model: The base model it was tuned on (``builtin:...`` or a checkpoint directory);
            it may differ from the new adapter's.
    """

    adapter_dir: Path
    base_model: str


def _shares_model(model: torch.nn.Module, adapter_dir: Path) -> bool:
    """Whether the adapter in ``adapter_dir`` can be loaded beside ``model``'s active adapter."""
    if not isinstance(model, PeftModel) or not is_peft_adapter(read_adapter_config(adapter_dir)):
        return False
    other = PeftConfig.from_pretrained(str(adapter_dir))
    current = model.active_peft_config
    return (
        other.peft_type == current.peft_type
        and not other.is_prompt_learning
        and not current.is_prompt_learning
    )


def _bare(model: PeftModel) -> torch.nn.Module:
    """The base model under ``model``, its adapter layers taken out (not merged)."""
    if model.active_peft_config.is_prompt_learning:
        return model.get_base_model()  # prompt learning adds inputs, not layers
    return model.unload()


def _untrained_copy(model: torch.nn.Module, adapter_dir: Path) -> dict[str, torch.Tensor]:
    """Copies of the base tensors a ``last_layers`` adapter overwrites (only those blocks)."""
    with safe_open(str(Path(adapter_dir) / WEIGHTS_FILE), framework="pt") as saved:
        names = set(saved.keys())
    return {n: p.detach().clone() for n, p in model.named_parameters() if n in names}


def _restore(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            own[name].copy_(tensor)


def for_each_model(
    base_model: str,
    adapter_dir: Path,
    production: ProductionModel | None,
    device: torch.device,
    visit: Visit,
    dtype: torch.dtype | None = None,
    attention: str = "auto",
) -> None:
    """Call ``visit`` for the tuned, the base and (when given) the production model, in turn.

    Each model is in eval mode on ``device`` while it is visited, and may be the same object
    as the one before it with another adapter active; ``visit`` must not keep it. At most one
    base model is in memory at a time: the base answers with the tuned adapter disabled (or,
    for ``last_layers``, with the blocks it overwrote put back from a copy of just those), and a
    production version on the same base model is loaded onto it; only one on another base
    model loads that model, after this one is let go.

    Args:
        base_model: The base model the tuned adapter was trained on.
        adapter_dir: The tuned adapter (PEFT or ``last_layers``).
        production: The production version, or None.
        device: Where the models run.
        visit: Called once per model.
        dtype: The dtype base models are loaded in (None: what their files hold).
        attention: Their attention implementation, as ``evaluation.attention``.

    Raises:
        UserError: If an adapter directory holds no adapter or does not fit its base model.
    """
    base = load_base_model(
        base_model, dtype, device=device, attention=attention, attention_setting=SETTING
    )
    peft = is_peft_adapter(read_adapter_config(adapter_dir))
    untrained = {} if peft else _untrained_copy(base.model, adapter_dir)
    model = load_tuned_model(base.model, adapter_dir).to(device)
    visit(TUNED, model, base)
    if isinstance(model, PeftModel):
        with model.disable_adapter():
            visit(BASE, model, base)
    else:  # the adapter overwrote base weights: put the untrained blocks back
        _restore(model, untrained)
        del untrained
        visit(BASE, model, base)
    if production is None:
        return
    if production.base_model == base_model:
        if _shares_model(model, production.adapter_dir):
            model.load_adapter(str(production.adapter_dir), adapter_name=PRODUCTION)
            model.set_adapter(PRODUCTION, inference_mode=True)
            visit(PRODUCTION, model.to(device).eval(), base)
            return
        # the base model, no longer needed as itself: put the production adapter on it
        bare = _bare(model) if isinstance(model, PeftModel) else model
        del model
        visit(PRODUCTION, load_tuned_model(bare, production.adapter_dir).to(device).eval(), base)
        return
    del model, base  # let the previous model go before loading the next one
    gc.collect()
    other = load_base_model(
        production.base_model, dtype, device=device, attention=attention, attention_setting=SETTING
    )
    visit(PRODUCTION, load_tuned_model(other.model, production.adapter_dir).to(device), other)
