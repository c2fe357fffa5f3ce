"""Length-grouped batching: batches of similar length, so little compute goes to padding."""

from __future__ import annotations

from collections.abc import Iterator

import torch

MEGABATCH_FACTOR = 16


def length_grouped_batches(
    lengths: list[int], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """One epoch of batches: shuffle, sort by length within megabatches, then shuffle batches.

    Args:
        lengths: Sequence length of each example.
        batch_size: Examples per batch (the last batch of a megabatch may be smaller).
        generator: Seeded generator; the same seed gives the same epoch.

    Returns:
        Lists of example indices.
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * MEGABATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        mega = sorted(order[start : start + span], key=lambda i: lengths[i], reverse=True)
        batches.extend(mega[i : i + batch_size] for i in range(0, len(mega), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def batch_stream(lengths: list[int], batch_size: int, seed: int) -> Iterator[tuple[int, list[int]]]:
    """Endless stream of ``(epoch, batch)``, a new length-grouped order each epoch."""
    generator = torch.Generator().manual_seed(seed)
    epoch = 0
    while True:
        for batch in length_grouped_batches(lengths, batch_size, generator):
            yield epoch, batch
        epoch += 1
