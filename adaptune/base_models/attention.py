"""The attention implementation a base model runs: the settings' names and how ``auto`` resolves.

The names are transformers' ``attn_implementation`` values: ``sdpa`` (PyTorch's
``scaled_dot_product_attention``, which picks a fused kernel itself), ``eager`` (plain matrix
products, the reference) and ``flash_attention_2`` (the ``flash-attn`` package's kernels, CUDA
GPUs only, bf16 or fp16 only; packed rows run through its variable-length kernels). ``auto`` is
``flash_attention_2`` when the package is importable, the model runs on a CUDA GPU in bf16 or
fp16 and its architecture supports it; otherwise ``sdpa``. The settings
(``training.attention``, ``evaluation.attention``, ``adaptune serve --attention``) spell the
same choices as :data:`Attention`.
"""

from __future__ import annotations

import importlib.util
from typing import Literal, get_args

import torch

from adaptune.errors import UserError

Attention = Literal["auto", "sdpa", "eager", "flash_attention_2"]
ATTENTIONS: tuple[str, ...] = get_args(Attention)
FLASH = "flash_attention_2"
FLASH_PACKAGE = "flash_attn"
HALF = (torch.bfloat16, torch.float16)


def flash_installed() -> bool:
    """Whether the ``flash-attn`` package is importable here."""
    return importlib.util.find_spec(FLASH_PACKAGE) is not None


def resolve_attention(
    attention: str,
    device: torch.device,
    dtype: torch.dtype,
    setting: str,
    flash_supported: bool = True,
) -> str:
    """The ``attn_implementation`` ``attention`` means for a model run on ``device`` in ``dtype``.

    Args:
        attention: ``auto``, ``sdpa``, ``eager`` or ``flash_attention_2``.
        device: Where the model runs.
        dtype: The dtype its base weights are held and run in (the resolved precision).
        setting: How the user sets it (``training.attention``, ``--attention``), for messages.
        flash_supported: Whether the model's architecture has a flash-attention path (``auto``
            falls back to ``sdpa`` without one; asking for it is refused).

    Raises:
        UserError: One line naming the setting: an unknown name, or ``flash_attention_2``
            without the package, without a CUDA GPU, in fp32, or on a model without it.
    """
    if attention not in ATTENTIONS:
        raise UserError(f"{setting} must be one of {list(ATTENTIONS)}, got {attention!r}")
    can_flash = flash_installed() and device.type == "cuda" and dtype in HALF
    if attention == "auto":
        return FLASH if can_flash and flash_supported else "sdpa"
    if attention != FLASH:
        return attention
    if not flash_installed():
        raise UserError(
            f"{setting}={FLASH} needs the flash-attn package, which is not installed here: "
            f"pip install flash-attn, or set {setting}=auto or sdpa"
        )
    if device.type != "cuda":
        raise UserError(
            f"{setting}={FLASH} needs a CUDA GPU and this machine has none: "
            f"set {setting}=auto or sdpa"
        )
    if dtype not in HALF:
        raise UserError(
            f"{setting}={FLASH} runs in bf16 or fp16 only, and the precision is fp32: "
            f"set the precision to bf16 or fp16, or {setting}=auto or sdpa"
        )
    if not flash_supported:
        raise UserError(
            f"{setting}={FLASH}: this model's architecture has no flash-attention path: "
            f"set {setting}=auto or sdpa"
        )
    return attention


def supports_flash(model_class: type) -> bool:
    """Whether a transformers model class has a flash-attention path."""
    return bool(getattr(model_class, "_supports_flash_attn", False))
