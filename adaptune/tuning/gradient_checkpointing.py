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

from adaptune.compute.device_memory import DeviceMemory
from adaptune.tuning.fit import plan_of_model, resolve_checkpointing
from adaptune.tuning.settings import TrainingSettings


def wants_checkpointing(
    settings: TrainingSettings,
    model: torch.nn.Module,
    device: torch.device,
    device_memory_bytes: int | None = None,
) -> bool:
    """Whether training ``model`` checkpoints activations: ``training.gradient_checkpointing``.

    The fit check's own decision (:func:`adaptune.tuning.fit.resolve_checkpointing`), made
    from the model as loaded, for callers of the training loop that did not run the fit check
    before loading (the tuning step passes the verdict it made then). The memory is the
    device's whole memory (what is free now already lacks the loaded weights), or
    ``training.device_memory_gib`` when set.

    Args:
        settings: The training settings.
        model: The model about to train, its adapter applied.
        device: Where training runs.
        device_memory_bytes: The device's memory in bytes (None: asked of CUDA).
    """
    choice = settings.gradient_checkpointing
    if choice != "auto" or device.type != "cuda":
        return resolve_checkpointing(choice, None, DeviceMemory(0, str(device)), device)
    if settings.device_memory_gib > 0:
        device_memory_bytes = int(settings.device_memory_gib * 2**30)
    elif device_memory_bytes is None:
        device_memory_bytes = torch.cuda.get_device_properties(device).total_memory
    memory = DeviceMemory(device_memory_bytes, str(device))
    return resolve_checkpointing(choice, plan_of_model(model, settings, device), memory, device)


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
