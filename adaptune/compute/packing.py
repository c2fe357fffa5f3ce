"""Padding-free packing: a batch's examples laid end to end in rows of at most a token budget.

A packed row is one sequence ``[1, tokens]`` holding several examples, with position ids that
restart at 0 for each example and no attention mask. Transformers reads restarting position ids
with no attention mask as packed sequences: SDPA and eager attention get a block-diagonal causal
mask (``masking_utils.find_packed_sequence_indices``), flash-attention its variable-length
kernels, so attention never crosses from one example into another. The first label of each
example is ignored, so the last token of one example is never trained to predict the next
example's first token; every other target is the same as unpacked, and the loss is the same
mean over target tokens.
"""

from __future__ import annotations

import torch

from adaptune.data.encoding import IGNORE_INDEX, Encoded

PACKING_SETTING = "training.packing"


def packed_rows(batch: list[Encoded], budget: int) -> list[list[Encoded]]:
    """The batch's examples in rows of at most ``budget`` tokens, first fit, longest first.

    An example longer than ``budget`` gets a row of its own; ``budget`` 0 puts the whole batch
    in one row. The result is deterministic for a given batch.
    """
    if not budget:
        return [list(batch)]
    rows: list[list[Encoded]] = []
    used: list[int] = []
    for example in sorted(batch, key=lambda e: len(e.input_ids), reverse=True):
        length = len(example.input_ids)
        for row, tokens in enumerate(used):
            if tokens + length <= budget:
                rows[row].append(example)
                used[row] += length
                break
        else:
            rows.append([example])
            used.append(length)
    return rows


def packed_tensors(row: list[Encoded]) -> dict[str, torch.Tensor]:
    """``input_ids``, ``position_ids`` and ``labels`` of one packed row, each ``[1, tokens]``."""
    input_ids: list[int] = []
    positions: list[int] = []
    labels: list[int] = []
    for example in row:
        n = len(example.input_ids)
        input_ids.extend(example.input_ids)
        positions.extend(range(n))
        own = list(example.labels[:n]) + [IGNORE_INDEX] * (n - len(example.labels))
        own[0] = IGNORE_INDEX  # no target across the boundary with the previous example
        labels.extend(own)

    def tensor(values: list[int]) -> torch.Tensor:
        return torch.tensor([values], dtype=torch.long)

    return {
        "input_ids": tensor(input_ids),
        "position_ids": tensor(positions),
        "labels": tensor(labels),
    }


def segments(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """``(start, end)`` of each example in a packed row's ``position_ids`` (``[1, tokens]``)."""
    starts = (position_ids[0] == 0).nonzero().squeeze(1).tolist()
    ends = [*starts[1:], position_ids.shape[1]]
    return list(zip(starts, ends, strict=True))


def unpacked(batch: dict[str, torch.Tensor], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """A packed row's examples as a batch padded on the right, with its attention mask."""
    spans = segments(batch["position_ids"])
    width = max(end - start for start, end in spans)
    device = batch["input_ids"].device
    input_ids = torch.full((len(spans), width), pad_id, dtype=torch.long, device=device)
    attention = torch.zeros((len(spans), width), dtype=torch.long, device=device)
    labels = torch.full((len(spans), width), IGNORE_INDEX, dtype=torch.long, device=device)
    for row, (start, end) in enumerate(spans):
        input_ids[row, : end - start] = batch["input_ids"][0, start:end]
        attention[row, : end - start] = 1
        labels[row, : end - start] = batch["labels"][0, start:end]
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
