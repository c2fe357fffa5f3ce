"""The numeric precision models are held and run in: the settings' names and their dtypes.

``auto`` is bf16 on a GPU that supports it, fp16 on an older GPU and fp32 on CPU (where bf16
is slower than fp32 for these workloads and fp16 training is unsupported). The base model's
frozen weights are loaded in the compute dtype; trainable adapter weights (and so the optimizer
state, which takes their dtype) stay fp32, and the forward runs under autocast in the compute
dtype (:func:`mixed_precision`), so fp32 adapter weights meet bf16 or fp16 base weights in
every matrix product. fp16 training scales the loss (:func:`grad_scaler`) so small
gradients do not underflow. The settings (``training.precision``, ``evaluation.precision``)
spell the same choices as :data:`Precision`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, get_args

import torch
from peft.helpers import disable_input_dtype_casting

from adaptune.base_models.attention import resolve_attention
from adaptune.compute.device import autocast
from adaptune.errors import UserError

Precision = Literal["auto", "bf16", "fp16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
}


def resolve_precision(precision: str, device: torch.device, setting: str) -> torch.dtype:
    """The dtype ``precision`` means on ``device``.

    Args:
        precision: ``auto``, ``bf16``, ``fp16`` or ``fp32``.
        device: Where the model runs.
        setting: How the user sets it (``training.precision``, ``--precision``), for messages.

    Raises:
        UserError: On an unknown name, or fp16 asked for on a CPU (slow, and PyTorch cannot
            train in it there).
    """
    if precision not in PRECISIONS:
        raise UserError(f"{setting} must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if bf16 else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise UserError(
            f"{setting}=fp16 needs a GPU and this machine has none: use auto or fp32 "
            "(bf16 also runs on CPU, but slower than fp32)"
        )
    return DTYPES[precision]


def check_precision(precision: str, setting: str) -> None:
    """Refuse ``precision`` before anything runs when this machine cannot use it."""
    resolve_precision(precision, _this_machine(), setting)


def check_attention(attention: str, precision: str, settings: str) -> None:
    """Refuse ``<settings>.attention`` before anything runs when this machine cannot run it.

    Args:
        attention: ``auto``, ``sdpa``, ``eager`` or ``flash_attention_2``.
        precision: The same settings' precision, which the attention must run in.
        settings: ``training`` or ``evaluation``, for messages.
    """
    device = _this_machine()
    dtype = resolve_precision(precision, device, f"{settings}.precision")
    resolve_attention(attention, device, dtype, f"{settings}.attention")


def _this_machine() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def held_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype most of the model's frozen floating-point weights (its base) are held in.

    This is the compute dtype: what autocast runs the forward in. A model with no frozen
    weight gives the dtype of most of its weights (fp32 for none).
    """
    frozen: dict[torch.dtype, int] = {}
    every: dict[torch.dtype, int] = {}
    for param in model.parameters():
        if param.is_floating_point():
            counts = every if param.requires_grad else frozen
            counts[param.dtype] = counts.get(param.dtype, 0) + param.numel()
    counts = frozen or every
    return max(counts, key=counts.__getitem__) if counts else torch.float32


@contextmanager
def mixed_precision(
    model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None = None
) -> Iterator[None]:
    """Run ``model`` in ``dtype`` (None: :func:`held_dtype`), its fp32 adapter weights included.

    In bf16 or fp16 the forward runs under autocast, which casts every matrix product's inputs
    to that dtype; PEFT's own cast of each adapter layer's input to the adapter's fp32 is then
    switched off, since it only copied every wrapped linear layer's input to fp32 for autocast
    to copy it back (``python bench/tune.py --memory``: the same loss, a lower peak RSS and
    more tokens/s). In fp32 nothing changes.
    """
    dtype = held_dtype(model) if dtype is None else dtype
    low = dtype in (torch.bfloat16, torch.float16)
    with autocast(device, dtype), disable_input_dtype_casting(model, active=low):
        yield


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A loss scaler for fp16 training; a pass-through for every other dtype."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def trainable_to(model: torch.nn.Module, dtype: torch.dtype = torch.float32) -> None:
    """Hold every trainable floating-point weight in ``dtype`` (in place; fp32 to train)."""
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)
