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

from adaptune.compute.head_input import dense_head_input
from adaptune.compute.precision import mixed_precision
from adaptune.data.encoding import Encoded, collate
from adaptune.errors import UserError
from adaptune.tuning.loading import load_tuned_model

RELOAD_TOLERANCE_FP32 = 1e-4
RELOAD_TOLERANCE_BF16 = 2e-2
PROBE_SIZE = 4
PROBE_POSITIONS = 8
"""Positions per probe example whose logits are compared (its last ones)."""
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


@torch.no_grad()
def probe_logits(
    model: torch.nn.Module, examples: list[Encoded], pad_id: int, family: str
) -> torch.Tensor:
    """Logits of the model at the last positions of the first few examples, as one fp32 tensor.

    Each of the first ``PROBE_SIZE`` examples runs alone (no padding, eval mode, on the model's
    device, in its dtype), and only its last ``PROBE_POSITIONS`` positions go through the output
    head where the model can say so (``logits_to_keep``; others' logits are cut to them), so a
    150k-token vocabulary holds ``PROBE_POSITIONS`` × vocabulary logits per example, never
    [batch × length × vocabulary]. The last positions have attended to every earlier token, so
    any difference in the adapter's weights shows in them.

    Returns:
        ``[positions, vocabulary]``: the examples' kept positions, one after another.
    """
    device = next(model.parameters()).device
    hf = model.get_base_model() if isinstance(model, PeftModel) else model
    keep = {"logits_to_keep": PROBE_POSITIONS} if _keeps_logits(hf) else {}
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    model.eval()
    kept = []
    for example in examples[:PROBE_SIZE]:
        batch = collate([example], pad_id, family)
        if family == "causal":  # no loss wanted (its labels would not match the kept logits)
            del batch["labels"]
        batch = {k: v.to(device) for k, v in batch.items()}
        # The kept positions are a strided view: the head gets a row-major copy of them.
        with mixed_precision(model, device), dense_head_input(head):
            logits = model(**batch, **keep).logits
        kept.append(logits[0, -PROBE_POSITIONS:].float().cpu())
    return torch.cat(kept)


def _keeps_logits(model: torch.nn.Module) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (Hugging Face causal LMs do)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


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
