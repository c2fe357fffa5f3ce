"""Untrained LoRA adapters with random weights, for smoke and load tests of serving.

PEFT starts a LoRA adapter as a no-op (its B matrices are zero); these start random instead
(``init_lora_weights=False``), so every seed gives an adapter that answers differently from the
base model and from other seeds, in milliseconds, without training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import get_peft_model

from adaptune.base_models import load_base_model
from adaptune.tuning.loading import save_adapter
from adaptune.tuning.methods import LoraMethod


def save_random_lora(base_model: str, out_dir: Path, seed: int, r: int = 8) -> Path:
    """Save a random LoRA adapter for ``base_model`` in ``out_dir`` (created), as tuning would.

    Returns:
        ``out_dir``.
    """
    base = load_base_model(base_model)
    method = LoraMethod(r=r, alpha=2 * r)
    config = method.peft_config(base.family)
    config.init_lora_weights = False
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = get_peft_model(base.model, config)
    finally:
        torch.random.set_rng_state(state)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    save_adapter(model, method, base_model, Path(out_dir))
    return Path(out_dir)
