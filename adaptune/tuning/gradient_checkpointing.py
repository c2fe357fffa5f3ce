"""Gradient (activation) checkpointing while training: whether to use it, and switching it on.

With checkpointing each transformer block keeps only its input during the forward pass and
recomputes its activations in the backward pass: activation memory falls from every block's
intermediates to one block's, for about a third more compute.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from peft import PeftModel

from adaptune.tuning.settings import TrainingSettings

ACTIVATION_BYTES_PER_UNIT = 34
"""Activation bytes one layer keeps per token and hidden unit in bf16 with a fused attention
kernel (Korthikanti et al., 2022, "Reducing Activation Recomputation in Large Transformer
Models": 34·s·b·h per layer)."""
AUTO_MEMORY_FRACTION = 0.25
"""``auto`` checkpoints when the activations of one forward pass would exceed this share of the
GPU's memory (the weights, the logits chunk and the allocator's slack need the rest)."""


def pass_tokens(settings: TrainingSettings) -> int:
    """Most padded tokens in one forward pass: batch × max_length, cut to max_batch_tokens."""
    tokens = settings.batch_size * settings.max_length
    return min(tokens, settings.max_batch_tokens) if settings.max_batch_tokens else tokens


def activation_bytes(tokens: int, config: Any) -> int:
    """Estimated activation bytes of a forward pass of ``tokens`` tokens without checkpointing.

    Args:
        tokens: Tokens in the forward pass (batch × length).
        config: The model's config (``hidden_size`` and ``num_hidden_layers``, plus
            ``num_decoder_layers`` for encoder-decoder models).
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(getattr(text, "hidden_size", 0) or 0)
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    layers += int(getattr(text, "num_decoder_layers", 0) or 0)
    return tokens * hidden * layers * ACTIVATION_BYTES_PER_UNIT


def wants_checkpointing(
    settings: TrainingSettings,
    config: Any,
    device: torch.device,
    device_memory: int | None = None,
) -> bool:
    """Whether training checkpoints activations: ``training.gradient_checkpointing`` resolved.

    ``true`` and ``false`` are taken as set. ``auto`` is off on CPU, where recomputing only costs
    time (the host's RAM is the whole machine's, and a tiny activation estimate would not tell
    more), and on a GPU it is on when :func:`activation_bytes` of one forward pass
    (:func:`pass_tokens`) exceeds ``AUTO_MEMORY_FRACTION`` of the device's memory.

    This is a stand-in for the fit check before loading (issue 12, point 7): once that estimate
    of weights + adapter + optimizer + activations exists, ``auto`` should be its verdict ("does
    it fit without checkpointing?"), and the fit check should replace this one function.

    Args:
        settings: The training settings.
        config: The model's config.
        device: Where training runs.
        device_memory: The device's memory in bytes (None: asked of CUDA).
    """
    choice = settings.gradient_checkpointing
    if choice != "auto":
        return bool(choice)
    if device.type != "cuda":
        return False
    if device_memory is None:
        device_memory = torch.cuda.get_device_properties(device).total_memory
    estimate = activation_bytes(pass_tokens(settings), config)
    return estimate > AUTO_MEMORY_FRACTION * device_memory


def _hf_model(model: torch.nn.Module) -> Any:
    return model.get_base_model() if isinstance(model, PeftModel) else model


@contextmanager
def checkpointed(model: torch.nn.Module, enabled: bool) -> Iterator[bool]:
    """Train inside this with checkpointing on (when ``enabled``); off again on leaving.

    Non-reentrant checkpointing (``use_reentrant=False``): gradients reach parameters inside a
    checkpointed block whether or not the block's inputs require grad. For PEFT models the
    input embeddings' output is made to require grad as well (``enable_input_require_grads``),
    as PEFT and transformers do, so adapter weights in every block get their gradients whatever
    checkpoint function a model uses. Last-layer training leaves frozen inputs alone, so no
    gradient is computed through the blocks below the trained ones. The KV cache is off while
    training (the loss passes ``use_cache=False`` too).

    Yields:
        Whether checkpointing is on.
    """
    hf = _hf_model(model)
    if not enabled or not getattr(hf, "supports_gradient_checkpointing", False):
        yield False
        return
    config = hf.config
    use_cache = getattr(config, "use_cache", None)
    kwargs = {"use_reentrant": False}
    if hasattr(hf, "activation_checkpointing_enable"):  # transformers 5's name
        hf.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    hooked = bool(getattr(hf, "_require_grads_hooks", None))  # transformers may have added them
    if isinstance(model, PeftModel) and not hooked:
        hf.enable_input_require_grads()
    elif not isinstance(model, PeftModel) and hooked:
        hf.disable_input_require_grads()
        hf._require_grads_hooks = []
    if use_cache is not None:
        config.use_cache = False
    try:
        yield True
    finally:
        if hasattr(hf, "activation_checkpointing_disable"):
            hf.activation_checkpointing_disable()
        else:
            hf.gradient_checkpointing_disable()
        hf.disable_input_require_grads()
        hf._require_grads_hooks = []
        if use_cache is not None:
            config.use_cache = use_cache
