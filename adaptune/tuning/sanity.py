"""Sanity gate for a trained adapter: it must change something, and reload to the same outputs.

The reload is checked on the model that was trained, never on a second copy of the base: a
PEFT adapter is loaded from the saved files beside the trained one and made active; a
``last_layers`` adapter's blocks are put back to their untrained values, then overwritten
with the saved tensors.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import PeftModel

from adaptune.compute.device import autocast
from adaptune.compute.precision import held_dtype
from adaptune.data.encoding import IGNORE_INDEX, Encoded, collate
from adaptune.errors import UserError
from adaptune.tuning.loading import load_tuned_model

RELOAD_TOLERANCE_FP32 = 1e-4
RELOAD_TOLERANCE_BF16 = 2e-2
PROBE_SIZE = 4
RELOADED = "reloaded"


class AdapterSanityError(UserError):
    """The adapter is a no-op, or does not reload to what was trained."""


def check_not_noop(trained: dict[str, torch.Tensor], initial: dict[str, torch.Tensor]) -> None:
    """Fail when training changed nothing, or when every LoRA B matrix is zero.

    Args:
        trained: Trainable tensors after training.
        initial: The same tensors before training.
    """
    if all(torch.equal(trained[k].cpu(), initial[k].cpu()) for k in trained):
        raise AdapterSanityError("the adapter is a no-op: no trainable parameter changed")
    lora_b = [v for k, v in trained.items() if "lora_B" in k]
    if lora_b and all(not v.any() for v in lora_b):
        raise AdapterSanityError("the adapter is a no-op: every LoRA B matrix is zero")


def target_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The positions whose logits predict a target token in any row of a causal ``batch``."""
    labels = batch["labels"]
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)


@torch.no_grad()
def probe_logits(
    model: torch.nn.Module, examples: list[Encoded], pad_id: int, family: str
) -> torch.Tensor:
    """Logits of the model on the first few examples (eval mode, on its device, in its dtype).

    For a causal model whose forward takes ``logits_to_keep``, only the positions that
    predict a target token (in any row) are kept, so the probe never holds [rows × length ×
    vocabulary] logits of prompt positions (the adapter acts on every position before them),
    and no loss is computed (it would upcast every position's logits).
    """
    device = next(model.parameters()).device
    batch = collate(examples[:PROBE_SIZE], pad_id, family)
    batch = {k: v.to(device) for k, v in batch.items()}
    hf = model.get_base_model() if isinstance(model, PeftModel) else model
    if family == "causal":  # no labels: the model would compute its loss from full logits
        labels = batch.pop("labels")
        prompt_learning = (
            isinstance(model, PeftModel) and model.active_peft_config.is_prompt_learning
        )
        if not prompt_learning and "logits_to_keep" in inspect.signature(hf.forward).parameters:
            batch["logits_to_keep"] = target_positions({"labels": labels})
    model.eval()
    with autocast(device, held_dtype(model)):
        return model(**batch).logits.float().cpu()


def check_reload(expected: torch.Tensor, reloaded: torch.Tensor, bf16: bool) -> None:
    """Fail when the reloaded adapter's probe logits differ from the in-memory model's."""
    tolerance = RELOAD_TOLERANCE_BF16 if bf16 else RELOAD_TOLERANCE_FP32
    if expected.shape != reloaded.shape:
        raise AdapterSanityError(
            f"the reloaded adapter gives logits of shape {tuple(reloaded.shape)}, "
            f"expected {tuple(expected.shape)}"
        )
    difference = torch.sub(expected, reloaded).abs_().max().item()  # one temporary
    if difference > tolerance:
        raise AdapterSanityError(
            f"the saved adapter does not reproduce the trained model: probe logits differ by "
            f"{difference:.3g} (tolerance {tolerance:g})"
        )


@contextmanager
def reloaded_adapter(
    model: torch.nn.Module, adapter_dir: Path, initial: dict[str, torch.Tensor]
) -> Iterator[torch.nn.Module]:
    """The trained model with the adapter saved in ``adapter_dir`` in place of the trained one.

    A PEFT adapter is loaded under another name onto the same base and is active inside the
    block (the trained one again after it). For ``last_layers`` the trained blocks are reset to
    ``initial`` (the values before training) and the saved tensors copied in: a tensor missing
    from the file then shows as a difference. They stay the saved ones after the block.

    Args:
        model: The trained model (a ``PeftModel``, or a base model trained in place).
        adapter_dir: The saved adapter.
        initial: The trainable tensors before training, by name.
    """
    if isinstance(model, PeftModel):
        trained = model.active_adapter
        model.load_adapter(str(adapter_dir), adapter_name=RELOADED, is_trainable=False)
        try:
            model.set_adapter(RELOADED)
            yield model
        finally:
            model.set_adapter(trained)
            model.delete_adapter(RELOADED)
        return
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in initial.items():
            own[name].copy_(tensor.to(own[name].device))
    yield load_tuned_model(model, adapter_dir)
