"""Length-grouped batching: batches of similar length, so little compute goes to padding.

The order is resumable: :class:`BatchOrder` can report its position and continue from it, so a
run resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Any

import torch

MEGABATCH_FACTOR = 64


def length_grouped_batches(
    lengths: list[int], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """One epoch of batches: shuffle, sort by length within megabatches, then shuffle batches.

    The batch with the longest example goes first, so memory peaks at once (an out-of-memory
    error shows up at step 1, not hours in) and the allocator reuses that block afterwards.

    Args:
        lengths: Sequence length of each example.
        batch_size: Examples per batch (the last batch of a megabatch may be smaller).
        generator: Seeded generator; the same state gives the same epoch.

    Returns:
        Lists of example indices.
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * MEGABATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        mega = sorted(order[start : start + span], key=lambda i: lengths[i], reverse=True)
        batches.extend(mega[i : i + batch_size] for i in range(0, len(mega), batch_size))
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    longest = max(range(len(shuffled)), key=lambda b: max(lengths[i] for i in shuffled[b]))
    shuffled[0], shuffled[longest] = shuffled[longest], shuffled[0]
    return shuffled


class BatchOrder:
    """An endless, resumable stream of length-grouped batches, a new order each epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths = lengths
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self._epoch_start_state = self.generator.get_state()
        self._batches = length_grouped_batches(lengths, batch_size, self.generator)

    def next(self) -> list[int]:
        """The next batch of example indices."""
        if self.position == len(self._batches):
            self.epoch += 1
            self.position = 0
            self._epoch_start_state = self.generator.get_state()
            self._batches = length_grouped_batches(self.lengths, self.batch_size, self.generator)
        batch = self._batches[self.position]
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Position and generator state, enough to continue exactly."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "generator": self._epoch_start_state.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position saved by :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self._epoch_start_state = state["generator"].clone()
        self._batches = length_grouped_batches(self.lengths, self.batch_size, self.generator)
        self.epoch = state["epoch"]
        self.position = state["position"]
