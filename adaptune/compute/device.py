"""Where models run: the device, and the autocast that goes with it."""

from __future__ import annotations

import os

import torch


def device_for_training() -> torch.device:
    """CUDA when present (this process's GPU under torchrun), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """Autocast to ``dtype`` (bf16 or fp16, on CUDA or CPU); a no-op context for fp32.

    ``dtype`` is the compute dtype: the dtype the base model's frozen weights are held in
    (``adaptune.compute.precision.held_dtype``), so fp32 adapter weights meet them in it.
    """
    low = dtype in (torch.bfloat16, torch.float16)
    return torch.autocast(device.type, dtype=dtype if low else torch.bfloat16, enabled=low)
