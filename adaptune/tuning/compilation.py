"""``training.compile``: the model's blocks compiled with ``torch.compile`` while it trains.

Each transformer block (transformers' ``GradientCheckpointingLayer``: a decoder or encoder
layer) is compiled on its own, in place, with ``dynamic=True``, so batches of other lengths and
packed rows of other token counts reuse one graph instead of recompiling. Compiling per block
keeps graphs small (one compile serves every layer of the same shape), leaves the loss head and
the chunked cross-entropy as they are, and composes with activation checkpointing: the
checkpoint wraps the compiled block, whose forward is recomputed in the backward pass. PEFT's
adapter layers inside a block are compiled with it. The blocks are uncompiled again when
training ends, so the sanity check and evaluation run the plain modules.

Inductor, ``torch.compile``'s backend, generates C++ on a CPU and Triton kernels on a CUDA GPU;
both need a C compiler (Triton builds its kernel launchers with one).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers.modeling_layers import GradientCheckpointingLayer

from adaptune.errors import UserError

COMPILE_SETTING = "training.compile"


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's transformer blocks (outermost only)."""
    found: list[torch.nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, GradientCheckpointingLayer):
            found.append(module)
            inside.update(id(m) for m in module.modules())
    return found


def check_compiler() -> None:
    """Refuse ``training.compile`` on a machine without a C compiler.

    Inductor generates C++ for a CPU, and Triton builds its kernel launchers with one on a GPU.
    """
    if not (shutil.which("cc") or shutil.which("gcc")):
        raise UserError(
            f"{COMPILE_SETTING}=true needs a C compiler (cc or gcc), and none is on PATH: "
            f"install one, or set {COMPILE_SETTING}=false"
        )


@contextmanager
def compiled(model: torch.nn.Module, enabled: bool) -> Iterator[int]:
    """Train inside this with every block compiled (when ``enabled``); plain again on leaving.

    Yields:
        How many blocks were compiled (0 when not enabled, or for a model without blocks).
    """
    if not enabled:
        yield 0
        return
    found = blocks(model)
    if found:
        check_compiler()
    for block in found:
        block.compile(dynamic=True)
    try:
        yield len(found)
    finally:
        for block in found:
            block._compiled_call_impl = None  # what nn.Module.compile set
