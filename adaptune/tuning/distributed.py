"""Data-parallel tuning across processes (one per GPU), started with ``torchrun``.

``torchrun --nproc_per_node N -m adaptune.tuning ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; each process then takes every N-th batch of the same length-grouped order, and
the adapter's gradients are averaged across processes after each backward pass. Adapters are
small, so one all-reduce of their gradients per step is cheap; the frozen base model is never
communicated. With a single process nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Workers:
    """This process's place among the training processes.

    Attributes:
        rank: Index of this process, 0 to world - 1.
        world: Number of processes.
        local_rank: Index on this machine (which GPU it uses).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0


def current_workers() -> Workers:
    """The process group set up by ``torchrun`` (initialised on first use), or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Workers()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Workers(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(params: list[torch.nn.Parameter], workers: Workers) -> None:
    """Average the gradients of ``params`` over all processes, in place."""
    if workers.world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= workers.world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def sum_over_workers(values: list[float], workers: Workers) -> list[float]:
    """Element-wise sums of ``values`` over all processes."""
    if workers.world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(workers: Workers) -> None:
    """Wait for every process."""
    if workers.world > 1:
        dist.barrier()
