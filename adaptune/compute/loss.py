"""The loss on target tokens, shared by tuning (training and its eval) and evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft import PeftModel
from tqdm.auto import tqdm

from adaptune.compute.device import autocast
from adaptune.compute.precision import held_dtype
from adaptune.data.encoding import IGNORE_INDEX, Encoded, collate

EVAL_BATCH_SIZE = 32


class LossFunction:
    """Computes the training loss, on target tokens only.

    For causal models whose adapter lives inside the layers (LoRA, IA³, last layers), the
    output head is applied only at target positions: the vocabulary projection of prompt tokens
    is never computed. And since batches are padded on the right, the causal mask alone keeps
    every real token from seeing padding, so no padding mask is passed: attention runs as a
    fused causal kernel that stores no attention matrix. The shortcut is checked once against
    the model's own loss and dropped if they differ (for example under logit soft-capping).
    """

    def __init__(self, model: torch.nn.Module, family: str):
        self.model = model
        self.fast = None
        if family == "causal":
            hf = model.get_base_model() if isinstance(model, PeftModel) else model
            prompt_learning = (
                isinstance(model, PeftModel)
                and model.peft_config[model.active_adapter].is_prompt_learning
            )
            body = getattr(hf, getattr(hf, "base_model_prefix", ""), None)
            head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
            if not prompt_learning and body is not None and head is not None:
                self.fast = (body, head)
        self.checked = False

    def _fast_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        body, head = self.fast
        hidden = body(
            input_ids=batch["input_ids"], attention_mask=None, use_cache=False
        ).last_hidden_state
        labels = batch["labels"][:, 1:]
        keep = labels != IGNORE_INDEX
        logits = head(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), labels[keep])

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean loss per target token of ``batch``."""
        if self.fast is None:
            return self.model(**batch, use_cache=False).loss
        if not self.checked:
            self.checked = True
            was_training = self.model.training
            self.model.eval()  # no dropout: the check must not draw from the RNG
            probe = {k: v[:2] for k, v in batch.items()}  # two rows are enough to compare
            with torch.no_grad():
                reference = self.model(**probe, use_cache=False).loss
                fast = self._fast_loss(probe)
            self.model.train(was_training)
            if not torch.allclose(reference.float(), fast.float(), rtol=1e-3, atol=1e-4):
                self.fast = None
                return self.model(**batch, use_cache=False).loss
        return self._fast_loss(batch)


@torch.no_grad()
def eval_loss(
    model: torch.nn.Module,
    examples: list[Encoded],
    pad_id: int,
    family: str,
    device: torch.device,
    loss_fn: LossFunction,
    batch_size: int = EVAL_BATCH_SIZE,
    show_progress: bool = False,
) -> float:
    """Mean loss per target token over ``examples``, in length-sorted batches.

    Args:
        model: The model ``loss_fn`` computes the loss of.
        examples: Encoded examples (see :func:`adaptune.data.encoding.encode_pairs`).
        pad_id: Padding token id.
        family: ``causal`` or ``seq2seq``.
        device: The model's device.
        loss_fn: The training loss.
        batch_size: Examples per forward pass.
        show_progress: Show a progress bar.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="eval loss", unit="batch", disable=not show_progress):
        batch = [examples[i] for i in order[start : start + batch_size]]
        tokens = sum(e.target_tokens for e in batch)
        tensors = {k: v.to(device) for k, v in collate(batch, pad_id, family).items()}
        with autocast(device, held_dtype(model)):
            total += loss_fn(tensors).item() * tokens
        count += tokens
    model.train(was_training)
    return total / max(1, count)
