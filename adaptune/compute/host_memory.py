"""Host memory while training on CPU: large freed blocks go back to the system at once.

glibc's malloc maps a block of its own for an allocation of at least its "mmap threshold", and
unmaps it on free; smaller ones come from its heap, where a freed block stays in the process
until the heap above it is free too. The threshold starts at 128 KiB, but glibc raises it to the
size of each mapped block freed, up to 32 MiB: after a training step's first activations are
freed, every later activation of up to 32 MiB lives in the heap, and the heap keeps what the
step freed between the long-lived tensors. Measured by ``python bench/tune.py --memory`` (a
Qwen2-0.5B-shaped LoRA in bf16 on CPU), a threshold fixed at 8 MiB took tuning's peak RSS from
about 2.43 GB to about 2.26 GB at about the same tokens/s; at 1 MiB the peak was 1.89 GB but
tokens/s fell by a third (every mapped block is zeroed and faulted in anew).
"""

from __future__ import annotations

import ctypes
import os

LARGE_BLOCK_BYTES = 8 * 2**20
"""The fixed mmap threshold: blocks of this size or more are mapped alone and unmapped on free."""
M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter number for the mmap threshold (glibc's ``malloc.h``)."""


def threshold_set_by_user() -> bool:
    """Whether the environment already fixes glibc's mmap threshold (left as it is)."""
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "glibc.malloc.mmap_threshold" in (
        os.environ.get("GLIBC_TUNABLES", "")
    )


def return_large_blocks(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for the rest of this process.

    A threshold the user set (``MALLOC_MMAP_THRESHOLD_``, or ``glibc.malloc.mmap_threshold``
    in ``GLIBC_TUNABLES``) is kept, and nothing changes under another C library.

    Returns:
        Whether the threshold was set.
    """
    if threshold_set_by_user():
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
