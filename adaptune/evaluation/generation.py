"""Batched greedy generation for causal and seq2seq models."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from adaptune.tuning.encoding import encode_prompt


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    family: str,
    max_new_tokens: int,
    max_length: int = 256,
    batch_size: int = 32,
    desc: str = "generate",
    show_progress: bool = True,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
) -> list[str]:
    """Decode an answer for every prompt (greedy unless sampling), in batches of similar length.

    Prompts are tokenised exactly as in training (no special tokens, cut from the left) and
    padded on the left for causal models, so each answer starts right after its prompt.

    Args:
        model: A causal or seq2seq model (a PEFT model works too).
        tokenizer: Its tokenizer.
        prompts: Templated inputs.
        family: ``causal`` or ``seq2seq``.
        max_new_tokens: Most tokens generated per answer.
        max_length: Most prompt tokens kept.
        batch_size: Prompts per forward pass.
        desc: Progress-bar label.
        show_progress: Show a progress bar.
        temperature: 0 decodes greedily; above 0 samples with this temperature.
        top_p: Nucleus sampling threshold (when sampling; 1 keeps every token).
        top_k: Sample among the k likeliest tokens (when sampling; 0 keeps every token).

    Returns:
        One decoded answer per prompt, in the input order.
    """
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    encoded = [encode_prompt(tokenizer, p, max_length) for p in prompts]
    if family == "seq2seq":
        encoded = [[*ids, eos] for ids in encoded]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(prompts)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
        sampling["top_k"] = top_k or None
    model.eval()
    for start in tqdm(
        range(0, len(order), batch_size), desc=desc, unit="batch", disable=not show_progress
    ):
        rows = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            seq = encoded[i]
            if family == "seq2seq":
                ids[r, : len(seq)] = torch.tensor(seq)
                mask[r, : len(seq)] = 1
            else:
                ids[r, width - len(seq) :] = torch.tensor(seq)
                mask[r, width - len(seq) :] = 1
        device = next(model.parameters()).device
        generated = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            num_beams=1,
            **sampling,
            pad_token_id=pad,
            eos_token_id=eos,
        )
        new_tokens = generated if family == "seq2seq" else generated[:, width:]
        texts = tokenizer.batch_decode(new_tokens.cpu(), skip_special_tokens=True)
        for r, i in enumerate(rows):
            outputs[i] = texts[r].strip()
    return outputs
