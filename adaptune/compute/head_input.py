"""The output head's input in row-major strides, so a frozen head is never copied to run it.

Cutting hidden states to their last positions (``logits_to_keep``, or a cut of our own) gives a
strided view of them. On such a view torch's CPU ``linear`` in bf16, with a weight that needs
no gradient, materialises the weight once per row: 272 MB for one row of a 151,936 × 896 head,
1 GB for four (measured with torch 2.13). ``Tensor.contiguous`` does not help when there is
one row, since a dimension of size one makes any stride "contiguous"; a copy in row-major
strides (a few KB: rows × positions × hidden) does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def row_major(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s strides are exactly the row-major ones of its shape."""
    expected, stride = [], 1
    for size in reversed(tensor.shape):
        expected.append(stride)
        stride *= max(1, size)
    return tensor.stride() == tuple(reversed(expected))


def dense(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself when it is row-major, else a row-major copy of it."""
    return tensor if row_major(tensor) else tensor.clone(memory_format=torch.contiguous_format)


@contextmanager
def dense_head_input(
    head: torch.nn.Module | None,
    cut: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[None]:
    """While inside, ``head`` runs on a row-major copy of its input (cut by ``cut`` first).

    Args:
        head: The output head (None: nothing is changed).
        cut: Applied to a 3-D input before it is made row-major (e.g. keep the last position).
    """
    if head is None:
        yield
        return

    def before_head(module: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        if hidden.dim() != 3:
            return args
        return (dense(cut(hidden) if cut else hidden), *args[1:])

    handle = head.register_forward_pre_hook(before_head)
    try:
        yield
    finally:
        handle.remove()
