"""How much memory the device a model will run on has free: the GPU's, or RAM on CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class DeviceMemory:
    """Memory a process can use on its device.

    Attributes:
        free_bytes: Bytes free for this process.
        where: The device in words (``cuda:0``, ``cpu RAM``, ``cpu RAM (set)``).
    """

    free_bytes: int
    where: str


def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup v2 memory limit, None when there is no limit."""
    try:
        limit = (CGROUP_ROOT / "memory.max").read_text(encoding="utf-8").strip()
        if limit == "max":
            return None
        used = int((CGROUP_ROOT / "memory.current").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return max(0, int(limit) - used)


def device_memory(device: torch.device, override_gib: float = 0.0) -> DeviceMemory:
    """Free memory on ``device``: ``override_gib`` when set, else what the device reports.

    On CUDA it is ``torch.cuda.mem_get_info``'s free bytes; on CPU the available RAM (the
    smaller of the system's and this container's cgroup limit), shared by the processes of a
    ``torchrun`` on this machine.

    Args:
        device: The training device.
        override_gib: GiB to use instead of asking the device (0: ask), e.g. the accelerator
            memory of a profile whose machine is not this one.
    """
    if override_gib > 0:
        return DeviceMemory(int(override_gib * 2**30), f"{_name(device)} (set)")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return DeviceMemory(int(free), _name(device))
    free = psutil.virtual_memory().available
    limited = _cgroup_free()
    if limited is not None:
        free = min(free, limited)
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return DeviceMemory(int(free // processes), _name(device))


def _name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    return f"{device.type} RAM"
