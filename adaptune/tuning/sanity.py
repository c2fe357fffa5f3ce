"""Sanity gate for a trained adapter: it must change something, and reload to the same outputs."""

from __future__ import annotations

import torch

from adaptune.compute.device import autocast
from adaptune.compute.precision import held_dtype
from adaptune.data.encoding import Encoded, collate
from adaptune.errors import UserError

RELOAD_TOLERANCE_FP32 = 1e-4
RELOAD_TOLERANCE_BF16 = 2e-2
PROBE_SIZE = 4


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


@torch.no_grad()
def probe_logits(
    model: torch.nn.Module, examples: list[Encoded], pad_id: int, family: str
) -> torch.Tensor:
    """Logits of the model on the first few examples (eval mode, on its device, in its dtype)."""
    device = next(model.parameters()).device
    batch = collate(examples[:PROBE_SIZE], pad_id, family)
    batch = {k: v.to(device) for k, v in batch.items()}
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
    difference = (expected - reloaded).abs().max().item()
    if difference > tolerance:
        raise AdapterSanityError(
            f"the saved adapter does not reproduce the trained model: probe logits differ by "
            f"{difference:.3g} (tolerance {tolerance:g})"
        )
