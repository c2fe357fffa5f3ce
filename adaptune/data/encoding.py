"""Turning prompt/target pairs into token ids, with the loss on target tokens only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
DEFAULT_MAX_LENGTH = 256
"""Most tokens per example unless ``training.max_length`` says otherwise."""


@dataclass(frozen=True)
class Encoded:
    """One training example as token ids.

    Attributes:
        input_ids: Model input (causal: prompt + target + eos; seq2seq: prompt + eos).
        labels: Causal: -100 over the prompt, then the target ids; seq2seq: target + eos.
    """

    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        """Tokens the loss is computed on."""
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, max_length: int) -> list[int]:
    """Token ids of a prompt, keeping its last ``max_length`` tokens (nearest the answer)."""
    return encode_prompts(tokenizer, [prompt], max_length)[0]


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_length: int
) -> list[list[int]]:
    """:func:`encode_prompt` of several prompts, tokenised in one call."""
    if not prompts:
        return []
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    return [ids[-max_length:] if max_length > 0 else [] for ids in encoded]


def encode_example(
    tokenizer: PreTrainedTokenizerBase, prompt: str, target: str, family: str, max_length: int
) -> Encoded:
    """Encode one pair; prompts are cut from the left so the target always fits.

    Args:
        tokenizer: The base model's tokenizer.
        prompt: Templated input.
        target: Expected output.
        family: ``causal`` or ``seq2seq``.
        max_length: Most tokens per sequence.

    Returns:
        The example's input ids and labels.
    """
    eos = tokenizer.eos_token_id
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"][: max_length // 2]
    target_ids = [*target_ids, eos]
    if family == "seq2seq":
        prompt_ids = encode_prompt(tokenizer, prompt, max_length - 1)
        return Encoded(input_ids=[*prompt_ids, eos], labels=target_ids)
    prompt_ids = encode_prompt(tokenizer, prompt, max_length - len(target_ids))
    return Encoded(
        input_ids=prompt_ids + target_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + target_ids,
    )


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: list[dict[str, str]], family: str, max_length: int
) -> list[Encoded]:
    """Encode formatted pairs (``prompt`` and ``target`` each) with :func:`encode_example`."""
    return [encode_example(tokenizer, p["prompt"], p["target"], family, max_length) for p in pairs]


def collate(batch: list[Encoded], pad_id: int, family: str) -> dict[str, torch.Tensor]:
    """Pad a batch on the right to its longest member (causal) or longest input/label (seq2seq)."""
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    label_width = width if family == "causal" else max(len(e.labels) for e in batch)
    labels = torch.full((len(batch), label_width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        attention[row, :n] = 1
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
