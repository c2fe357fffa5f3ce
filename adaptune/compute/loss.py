"""The loss on target tokens, shared by tuning (training and its eval) and evaluation."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

from adaptune.compute.packing import PACKING_SETTING, segments, unpacked
from adaptune.compute.precision import mixed_precision
from adaptune.data.encoding import IGNORE_INDEX, Encoded, collate, token_chunks
from adaptune.errors import UserError

EVAL_BATCH_SIZE = 32
EVAL_MAX_TOKENS = 4096
"""Most padded tokens of one eval forward pass (a batch of long examples runs in chunks of whole
rows), as ``training.max_batch_tokens`` bounds a training pass."""
LOGITS_CHUNK_BYTES = 256 * 2**20
"""Most bytes the logits of one chunk take, every copy counted: target positions go through the
output head and the log-softmax in chunks of ``LOGITS_CHUNK_BYTES // (LOGIT_BYTES × vocabulary)``
positions (110 for a 151,936-token vocabulary, 512 for 32,768)."""
LOGIT_BYTES = 16
"""Bytes one logit takes at the peak of a chunk: the head's fp32 result (a bf16 matmul on CPU
accumulates into one), its copy in the held dtype, the fp32 upcast and the log-softmax (the
backward pass's fp32 gradient takes their place)."""


def chunk_positions(vocabulary: int, budget: int | None = None) -> int:
    """Target positions per chunk so that their logits take at most ``budget`` bytes.

    ``budget`` None: ``LOGITS_CHUNK_BYTES``; each position's logits count ``LOGIT_BYTES`` per
    vocabulary entry.
    """
    budget = LOGITS_CHUNK_BYTES if budget is None else budget
    return max(1, budget // (LOGIT_BYTES * max(1, vocabulary)))


def _summed_cross_entropy(
    head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), labels, reduction="sum")


def chunked_cross_entropy(
    head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Mean cross-entropy of ``head(hidden)`` against ``labels``, ``chunk`` positions at a time.

    The same loss and gradients as ``F.cross_entropy(head(hidden).float(), labels)``, without
    ever holding more than ``chunk`` × vocabulary logits: when there is more than one chunk and
    gradients are wanted, each chunk's head and log-softmax are recomputed in the backward pass
    (non-reentrant activation checkpointing), so the forward pass keeps only the hidden states,
    not every chunk's logits.

    Args:
        head: The output head (hidden size → vocabulary).
        hidden: Hidden states at target positions, ``[positions, hidden]``.
        labels: The next token at each position, ``[positions]`` (none ignored).
        chunk: Positions per chunk (see :func:`chunk_positions`).
    """
    positions = hidden.shape[0]
    if positions <= chunk:
        return F.cross_entropy(head(hidden).float(), labels)
    recompute = torch.is_grad_enabled()
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, positions, chunk):
        part = (hidden[start : start + chunk], labels[start : start + chunk])
        if recompute:
            total = total + checkpoint(_summed_cross_entropy, head, *part, use_reentrant=False)
        else:
            total = total + _summed_cross_entropy(head, *part)
    return total / positions


class LossFunction:
    """Computes the training loss, on target tokens only.

    For causal models whose adapter lives inside the layers (LoRA, IA³, last layers), the
    output head is applied only at target positions: the vocabulary projection of prompt tokens
    is never computed, and target positions go through the head in chunks
    (:func:`chunked_cross_entropy`), so a large vocabulary never holds [tokens × vocabulary]
    logits at once. And since batches are padded on the right, the causal mask alone keeps
    every real token from seeing padding, so no padding mask is passed: attention runs as a
    fused causal kernel that stores no attention matrix. The shortcut is checked once against
    the model's own loss and dropped if they differ (for example under logit soft-capping).

    A packed batch (one row with ``position_ids`` restarting per example, see
    :mod:`adaptune.compute.packing`) is checked the same way, on the first row holding more
    than one example, against each example run alone: when the model's attention crossed
    examples, neither the shortcut nor the model's own loss would match, and packing is
    refused naming ``training.packing``.
    """

    def __init__(self, model: torch.nn.Module, family: str, chunk: int | None = None):
        """Set up the loss of ``model`` (``family``: ``causal`` or ``seq2seq``).

        ``chunk``: target positions per chunk of logits (None: :func:`chunk_positions` of the
        head's vocabulary).
        """
        self.model = model
        self.fast = None
        self.chunk = chunk or 1
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
                vocabulary = getattr(head, "out_features", None) or head.weight.shape[0]
                self.chunk = chunk or chunk_positions(vocabulary)
        self.checked = False
        self.packed_checked = False
        self.packed_own = False

    def _fast_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        body, head = self.fast
        hidden = body(
            input_ids=batch["input_ids"],
            attention_mask=None,
            position_ids=batch.get("position_ids"),
            use_cache=False,
        ).last_hidden_state
        labels = batch["labels"][:, 1:]
        keep = labels != IGNORE_INDEX
        return chunked_cross_entropy(head, hidden[:, :-1][keep], labels[keep], self.chunk)

    def _reference_loss(self, probe: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's own loss on ``probe``, its logits computed at target positions only.

        Each row runs alone, unpadded, with ``logits_to_keep`` set to its target positions, so
        the model's head (soft-capping and scaling included) runs on no more positions than one
        row's; a model whose forward has no ``logits_to_keep`` gives its whole loss.
        """
        hf = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        if "logits_to_keep" not in inspect.signature(hf.forward).parameters:
            return self.model(**probe, use_cache=False).loss
        total = torch.zeros((), dtype=torch.float32, device=probe["input_ids"].device)
        count = 0
        for row in range(probe["input_ids"].shape[0]):
            length = int(probe["attention_mask"][row].sum())  # padded on the right
            labels = probe["labels"][row, 1:length]
            positions = (labels != IGNORE_INDEX).nonzero().squeeze(1)
            if not len(positions):
                continue
            ids = probe["input_ids"][row : row + 1, :length]
            logits = self.model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                logits_to_keep=positions,
                use_cache=False,
            ).logits[0]
            total += F.cross_entropy(logits.float(), labels[positions], reduction="sum")
            count += len(positions)
        return total / max(1, count)

    def _packed_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.fast is None:
            raise UserError(
                f"{PACKING_SETTING}=true needs a causal model with its adapter inside the "
                f"layers; set {PACKING_SETTING} to false"
            )
        if not self.packed_checked and len(segments(batch["position_ids"])) > 1:
            self.packed_checked = True
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                reference = self._reference_loss(unpacked(batch)).float()
                fast = self._fast_loss(batch).float()
                if not torch.allclose(reference, fast, rtol=1e-3, atol=1e-4):
                    own = self.model(**batch, use_cache=False).loss.float()
                    if not torch.allclose(reference, own, rtol=1e-3, atol=1e-4):
                        hf = self.model
                        if isinstance(hf, PeftModel):
                            hf = hf.get_base_model()
                        name = type(hf).__name__
                        raise UserError(
                            f"{PACKING_SETTING}=true: {name} lets attention cross packed "
                            f"examples (packed loss {fast.item():.5f}, alone "
                            f"{reference.item():.5f}); set {PACKING_SETTING} to false"
                        )
                    self.packed_own = True
            self.model.train(was_training)
        if self.packed_own:
            return self.model(**batch, use_cache=False).loss
        return self._fast_loss(batch)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean loss per target token of ``batch`` (packed or padded)."""
        if "position_ids" in batch:
            return self._packed_loss(batch)
        if self.fast is None:
            return self.model(**batch, use_cache=False).loss
        if not self.checked:
            self.checked = True
            was_training = self.model.training
            self.model.eval()  # no dropout: the check must not draw from the RNG
            probe = {k: v[:2] for k, v in batch.items()}  # two rows are enough to compare
            with torch.no_grad():
                reference = self._reference_loss(probe)
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
    max_tokens: int = EVAL_MAX_TOKENS,
) -> float:
    """Mean loss per target token over ``examples``, in length-sorted batches.

    A batch whose padded tokens exceed ``max_tokens`` runs in chunks of whole rows, so memory
    follows the limit, not the batch size times the longest example.

    Args:
        model: The model ``loss_fn`` computes the loss of.
        examples: Encoded examples (see :func:`adaptune.data.encoding.encode_pairs`).
        pad_id: Padding token id.
        family: ``causal`` or ``seq2seq``.
        device: The model's device.
        loss_fn: The training loss.
        batch_size: Examples per forward pass.
        show_progress: Show a progress bar.
        max_tokens: Most padded tokens per forward pass (0: the whole batch at once).
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="eval loss", unit="batch", disable=not show_progress):
        batch = [examples[i] for i in order[start : start + batch_size]]
        for chunk in token_chunks(batch, max_tokens):
            tokens = sum(e.target_tokens for e in chunk)
            tensors = {k: v.to(device) for k, v in collate(chunk, pad_id, family).items()}
            with mixed_precision(model, device):
                total += loss_fn(tensors).item() * tokens
            count += tokens
    model.train(was_training)
    return total / max(1, count)
