"""Where models run: the device, and the autocast that goes with it."""

from __future__ import annotations

import os

import torch


def device_for_training() -> torch.device:
    """CUDA when present (this process's GPU under torchrun), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; a no-op context elsewhere (CPU runs in fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
