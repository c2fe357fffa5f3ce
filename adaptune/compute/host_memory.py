"""Host memory while training on CPU: freed memory goes back to the system, not kept.

glibc's malloc maps a block of its own for an allocation of at least its "mmap threshold", and
unmaps it on free; smaller ones come from its heap, where a freed block stays in the process
until the heap above it is free too. The threshold starts at 128 KiB, but glibc raises it to the
size of each mapped block freed, up to 32 MiB: after a training step's first activations are
freed, every later activation of up to 32 MiB lives in the heap, and the heap keeps what the
step freed between the long-lived tensors. Measured by ``python bench/tune.py --memory`` (a
Qwen2-0.5B-shaped LoRA in bf16 on CPU), a threshold fixed at 8 MiB took tuning's peak RSS from
about 2.43 GB to about 2.26 GB at about the same tokens/s; at 1 MiB the peak was 1.89 GB but
tokens/s fell by a third (every mapped block is zeroed and faulted in anew).

Blocks under the threshold still leave holes in the heap between long-lived ones (a
checkpointed block's input lives until the backward pass reaches it), and glibc keeps a
hole's pages until ``malloc_trim`` gives them back. :func:`trimming_heap` does that from a
thread every half second while a block of code runs; training does it while it checkpoints
activations on CPU (the setting that trades time for memory). On the same benchmark the peak
fell from about 2,310 MiB to about 2,005 MiB on average over ten runs, at 59-67 tokens/s
against 60-78 before; on the ``--realistic`` shape (a small fp32 model, no checkpointing, fast
steps) it would cost 10-20% of tokens/s.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

LARGE_BLOCK_BYTES = 8 * 2**20
"""The fixed mmap threshold: blocks of this size or more are mapped alone and unmapped on free."""
M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter number for the mmap threshold (glibc's ``malloc.h``)."""
TRIM_PERIOD_S = 0.5
"""How often :func:`trimming_heap` gives the heap's free pages back, in seconds."""
TRIM_THREAD = "adaptune-heap-trim"
"""The name of :func:`trimming_heap`'s thread."""


def glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc, else None (musl's ``mallopt`` does nothing)."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


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
    libc = None if threshold_set_by_user() else glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))


@contextmanager
def trimming_heap(enabled: bool = True, period_s: float = TRIM_PERIOD_S) -> Iterator[bool]:
    """Give the heap's free pages back to the system every ``period_s`` seconds in the block.

    A daemon thread calls glibc's ``malloc_trim(0)`` (thread-safe, run without the GIL), and
    stops when the block ends. Pages given back cost a fault when the heap reuses them. Under
    another C library, or when not ``enabled``, nothing runs.

    Args:
        enabled: Whether to trim at all (the caller's condition, so call sites stay flat).
        period_s: Seconds between two trims.

    Yields:
        Whether the trimming thread runs.
    """
    libc = glibc() if enabled else None
    if libc is None:
        yield False
        return
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    stop = threading.Event()

    def trim() -> None:
        while not stop.wait(period_s):
            libc.malloc_trim(0)

    thread = threading.Thread(target=trim, name=TRIM_THREAD, daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join()
