"""Eval loss and perplexity: the teacher-forced loss of the references, computed as in training."""

from __future__ import annotations

import math

import torch
from transformers import PreTrainedTokenizerBase

from adaptune.compute.loss import LossFunction, eval_loss
from adaptune.data.encoding import encode_pairs

LOSS_METRICS = ("eval_loss", "perplexity")
"""Loss metric names (lower is better): mean loss per target token, and ``exp`` of it."""


def perplexity(loss: float) -> float:
    """``exp(loss)``, infinite where that overflows a float."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def reference_loss(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[dict[str, str]],
    family: str,
    max_length: int,
    batch_size: int,
    show_progress: bool = False,
) -> dict[str, float]:
    """The model's mean loss per target token on the references, given their prompts.

    Each pair is encoded as for training (prompt cut from the left, target plus end-of-sequence
    token, loss on target tokens only) and the loss is the training loop's own eval loss, so a
    tuned model scores here what tuning reported for the same data and ``max_length``.

    Args:
        model: A causal or seq2seq model (a PEFT model works too), on its device.
        tokenizer: Its tokenizer.
        pairs: Formatted pairs, ``prompt`` and ``target`` each.
        family: ``causal`` or ``seq2seq``.
        max_length: Most tokens per example (the tuning step's ``training.max_length``).
        batch_size: Examples per forward pass.
        show_progress: Show a progress bar.

    Returns:
        ``eval_loss`` and ``perplexity`` (``exp(eval_loss)``).
    """
    examples = encode_pairs(tokenizer, pairs, family, max_length)
    device = next(model.parameters()).device
    loss = eval_loss(
        model,
        examples,
        tokenizer.pad_token_id,
        family,
        device,
        LossFunction(model, family),
        batch_size=batch_size,
        show_progress=show_progress,
    )
    return {"eval_loss": loss, "perplexity": perplexity(loss)}
