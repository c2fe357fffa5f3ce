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


def bos_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``[bos]`` when the tokenizer itself adds a BOS token to what it encodes, else ``[]``.

    Text is always tokenised without special tokens (a chat template may write the BOS text
    itself); this prefix is then added once where the rendered text does not start with it.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if probe[:1] == [bos] else []


def _with_bos(ids: list[int], prefix: list[int]) -> list[int]:
    return ids if not prefix or ids[:1] == prefix else [*prefix, *ids]


def _keep_last(ids: list[int], length: int, prefix: list[int]) -> list[int]:
    """The last ``length`` ids, keeping a leading BOS in front."""
    if length <= 0:
        return []
    if prefix and ids[:1] == prefix and len(ids) > length:
        return [*prefix, *ids[len(ids) - length + 1 :]] if length > 1 else list(prefix)
    return ids[-length:]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, max_length: int) -> list[int]:
    """Token ids of a prompt, keeping its last ``max_length`` tokens (nearest the answer)."""
    return encode_prompts(tokenizer, [prompt], max_length)[0]


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_length: int
) -> list[list[int]]:
    """:func:`encode_prompt` of several prompts, in one call (BOS once: :func:`bos_prefix`)."""
    if not prompts:
        return []
    prefix = bos_prefix(tokenizer)
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    return [_keep_last(_with_bos(ids, prefix), max_length, prefix) for ids in encoded]


def encode_example(
    tokenizer: PreTrainedTokenizerBase, prompt: str, target: str, family: str, max_length: int
) -> Encoded:
    """Encode one pair (see :func:`encode_pairs`)."""
    return encode_pairs(tokenizer, [{"prompt": prompt, "target": target}], family, max_length)[0]


def _target_ids(prompt_ids: list[int], joint_ids: list[int], target_alone: list[int]) -> list[int]:
    """The target's ids as the model must generate them right after ``prompt_ids``.

    Tokenised together with the prompt (the seam): the ids of the whole past the prompt's own,
    when the whole starts with them. A SentencePiece-style tokenizer so learns no extra leading
    ``▁``, a byte-level one keeps the space it merges into the first word. Only when a token
    straddles the seam (a prompt ending in a space the next word would take) is the target
    tokenised alone, which is what follows that prompt's own last token.
    """
    if joint_ids[: len(prompt_ids)] == prompt_ids and len(joint_ids) > len(prompt_ids):
        return joint_ids[len(prompt_ids) :]
    return target_alone


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: list[dict[str, str]], family: str, max_length: int
) -> list[Encoded]:
    """Encode formatted pairs (``prompt`` and ``target`` each), tokenised at the seam.

    Prompts are cut from the left so the target always fits.
    Causal models: the prompt's ids (BOS once, where the tokenizer adds one), then the target's
    ids as they follow the prompt (:func:`_target_ids`), then EOS unless the target already
    ends its turn with it; the loss is on the target and that EOS. EOS stays in the labels even
    when the pad token is EOS: labels are set by position, never masked by id. Seq2seq models:
    the prompt plus EOS in, the target plus EOS out.

    Args:
        tokenizer: The base model's tokenizer.
        pairs: ``prompt`` (rendered input) and ``target`` (what the model must write).
        family: ``causal`` or ``seq2seq``.
        max_length: Most tokens per sequence.
    """
    if not pairs:
        return []
    eos = tokenizer.eos_token_id
    prefix = bos_prefix(tokenizer)
    prompts = [p["prompt"] for p in pairs]
    targets = [p["target"] for p in pairs]
    prompt_ids = [
        _with_bos(ids, prefix) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]
    ]
    alone = tokenizer(targets, add_special_tokens=False)["input_ids"]
    if family == "seq2seq":
        return [
            Encoded(
                input_ids=[*_keep_last(p, max_length - 1, prefix), eos],
                labels=[*t[: max_length // 2], eos],
            )
            for p, t in zip(prompt_ids, alone, strict=True)
        ]
    joint = tokenizer(
        [p + t for p, t in zip(prompts, targets, strict=True)], add_special_tokens=False
    )["input_ids"]
    encoded = []
    for p_ids, j_ids, t_alone in zip(prompt_ids, joint, alone, strict=True):
        j_ids = _with_bos(j_ids, prefix)
        target_ids = _target_ids(p_ids, j_ids, t_alone)[: max_length // 2]
        if eos not in target_ids:
            target_ids = [*target_ids, eos]
        kept = _keep_last(p_ids, max_length - len(target_ids), prefix)
        encoded.append(
            Encoded(input_ids=kept + target_ids, labels=[IGNORE_INDEX] * len(kept) + target_ids)
        )
    return encoded


def token_chunks(batch: list[Encoded], max_tokens: int) -> list[list[Encoded]]:
    """Split a batch into chunks of at most ``max_tokens`` padded tokens (rows kept whole).

    Training weights each chunk's loss by its share of the batch's target tokens, so the summed
    gradient equals the whole batch's; eval loss sums each chunk's target tokens' losses.
    """
    width = max(len(e.input_ids) for e in batch)
    if not max_tokens or width * len(batch) <= max_tokens:
        return [batch]
    rows = max(1, max_tokens // width)
    return [batch[i : i + rows] for i in range(0, len(batch), rows)]


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
