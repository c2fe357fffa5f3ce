"""A quantised base model: ``adapter.quantize`` names, bitsandbytes' config, and its checks.

``4bit`` is QLoRA's base: linear layers (the output head aside) held in 4-bit NormalFloat
(nf4) with double quantisation of the block scales, run in bf16 (fp16 when the precision is
fp16). ``8bit`` is LLM.int8(). Both load through transformers' ``BitsAndBytesConfig`` and run
on CPU as well as on CUDA GPUs with bitsandbytes 0.50 (its CPU backend); only new adapter
parameters train, in fp32, on top of the frozen quantised weights.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, get_args

import torch

from adaptune.base_models.builtin import is_builtin
from adaptune.errors import UserError

Quantize = Literal["none", "4bit", "8bit"]
QUANTIZE: tuple[str, ...] = get_args(Quantize)
PACKAGE = "bitsandbytes"


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype 4-bit weights are dequantised to for each matrix product: bf16, or fp16."""
    return torch.float16 if dtype == torch.float16 else torch.bfloat16


def quantization_config(quantize: str, dtype: torch.dtype) -> Any | None:
    """The ``BitsAndBytesConfig`` (transformers') for ``quantize`` (None for ``none``).

    Building it needs no bitsandbytes; loading a model with it does.

    Args:
        quantize: ``none``, ``4bit`` or ``8bit``.
        dtype: The compute dtype of the run (``training.precision`` resolved).
    """
    if quantize == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype(dtype),
    )


def check_quantize(
    quantize: str, base_model: str, here: bool = True, setting: str = "adapter.quantize"
) -> None:
    """Refuse ``quantize`` before anything loads when it cannot run.

    Args:
        quantize: ``none``, ``4bit`` or ``8bit``.
        base_model: ``builtin:...`` or a checkpoint directory.
        here: Whether the model loads on this machine (then bitsandbytes must be installed).
        setting: How the user sets it, for messages.

    Raises:
        UserError: One line naming the setting: an unknown value, a built-in base model (built
            in code, not loaded from a checkpoint), or bitsandbytes not installed.
    """
    if quantize not in QUANTIZE:
        raise UserError(f"{setting} must be one of {list(QUANTIZE)}, got {quantize!r}")
    if quantize == "none":
        return
    if is_builtin(base_model):
        raise UserError(
            f"{setting}={quantize} needs a checkpoint directory as base_model; "
            f"{base_model} is built in code: use {setting}=none"
        )
    if not here:
        return
    try:
        importlib.import_module(PACKAGE)
    except ImportError:
        raise UserError(
            f"{setting}={quantize} needs bitsandbytes, which is not installed here: "
            f"pip install 'bitsandbytes>=0.50,<0.51', or set {setting}=none"
        ) from None
