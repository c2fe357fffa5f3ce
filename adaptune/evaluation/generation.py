"""Batched generation for causal and seq2seq models: greedy, or sampled with a fixed seed."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from peft import PeftModel
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from adaptune.compute.head_input import dense_head_input
from adaptune.data.chat import end_of_turn_ids
from adaptune.data.encoding import encode_prompts

MAX_NEW_TOKENS_CAP = 128
NEW_TOKENS_MARGIN = 4


def new_token_budget(
    tokenizer: PreTrainedTokenizerBase, references: list[str], max_new_tokens: int
) -> int:
    """``max_new_tokens``, or when it is 0 the longest reference's tokens plus a margin.

    The automatic budget is capped at ``MAX_NEW_TOKENS_CAP`` tokens.
    """
    if max_new_tokens > 0:
        return max_new_tokens
    longest = max(
        (len(ids) for ids in tokenizer(references, add_special_tokens=False)["input_ids"]),
        default=0,
    )
    return min(MAX_NEW_TOKENS_CAP, longest + NEW_TOKENS_MARGIN)


def stop_token_ids(
    model: PreTrainedModel | torch.nn.Module, tokenizer: PreTrainedTokenizerBase
) -> list[int]:
    """Every id that ends an answer.

    The tokenizer's EOS, each EOS id of the model's generation config (Llama-3-style configs
    list several) and the chat template's end-of-turn tokens.
    """
    ids = [tokenizer.eos_token_id]
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    ids += end_of_turn_ids(tokenizer)
    return list(dict.fromkeys(i for i in ids if i is not None))


@dataclass(frozen=True)
class TokenCounts:
    """How long one prompt and its answer were, in tokens.

    Attributes:
        prompt_tokens: Tokens of the prompt the model saw (after the cut to ``max_length``).
        completion_tokens: Tokens generated, the one that ended the answer included.
        stopped: Whether the answer ended (a stop token or stop sequence) before running out
            of ``max_new_tokens``.
    """

    prompt_tokens: int
    completion_tokens: int
    stopped: bool


def count_tokens(
    tokenizer: PreTrainedTokenizerBase,
    new_tokens: list[int],
    prompt_tokens: int,
    stop_ids: list[int],
    stop: list[str],
) -> TokenCounts:
    """:class:`TokenCounts` of one generated row (padded after its end, as ``generate`` pads).

    The answer ends at the first stop token or where its text first contains a stop sequence,
    whichever comes first; a row with neither used every token it was given.
    """
    ids = set(stop_ids)
    end = next((k + 1 for k, token in enumerate(new_tokens) if token in ids), None)
    limit = end or len(new_tokens)
    whole = tokenizer.decode(new_tokens[:limit], skip_special_tokens=True) if stop else ""
    if any(s in whole for s in stop):
        for k in range(1, limit + 1):
            text = tokenizer.decode(new_tokens[:k], skip_special_tokens=True)
            if any(s in text for s in stop):
                end = k
                break
    if end is None:
        return TokenCounts(prompt_tokens, len(new_tokens), stopped=False)
    return TokenCounts(prompt_tokens, end, stopped=True)


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first of the ``stop`` sequences (the sequence left out)."""
    ends = [text.find(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text


@contextmanager
def last_position_logits(model: PreTrainedModel | torch.nn.Module, family: str) -> Iterator[None]:
    """While generating, the output head runs on each row's last position only, row-major.

    ``generate`` already asks for one position's logits (``logits_to_keep=1``) of every causal
    model whose forward takes ``logits_to_keep``; for one that does not, the head's input is
    cut to the last position here, so the prompt's forward pass never computes [batch × length
    × vocabulary] logits. Seq2seq decoders start from one token and add one per step.

    Either way the head's input is copied to row-major strides (a [batch × 1 × hidden] copy):
    the cut is a strided view of the prompt's hidden states, on which torch's CPU ``linear`` in
    bf16 copies the head's weight once per row (see :mod:`adaptune.compute.head_input`).
    """
    hf = model.get_base_model() if isinstance(model, PeftModel) else model
    forward = getattr(hf, "forward", None)
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    cut = (
        family != "seq2seq"
        and forward is not None
        and "logits_to_keep" not in inspect.signature(forward).parameters
    )
    with dense_head_input(head, (lambda hidden: hidden[:, -1:]) if cut else None):
        yield


@torch.inference_mode()
def generate(
    model: PreTrainedModel | torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    family: str,
    max_new_tokens: int,
    max_length: int = 256,
    batch_size: int = 32,
    temperature: float = 0.0,
    seed: int = 0,
    desc: str = "generate",
    show_progress: bool = True,
    top_p: float = 1.0,
    top_k: int = 0,
    stop: list[str] | None = None,
    counts: list[TokenCounts] | None = None,
) -> list[str]:
    """Decode an answer for every prompt, in batches of similar length.

    Prompts are tokenised exactly as in training (no special tokens, cut from the left) and
    padded on the left for causal models, so each answer starts right after its prompt;
    ``generate`` derives each row's position ids from the attention mask, so a padded prompt
    sees the same positions as alone, and greedy answers do not depend on the batching. Only
    the last position's logits are computed (:func:`last_position_logits`).

    Args:
        model: A causal or seq2seq model (a PEFT model works too).
        tokenizer: Its tokenizer.
        prompts: Templated inputs.
        family: ``causal`` or ``seq2seq``.
        max_new_tokens: Most tokens generated per answer.
        max_length: Most prompt tokens kept.
        batch_size: Prompts per forward pass.
        temperature: 0 decodes greedily; above 0 samples at this temperature (with only the
            ``top_p``/``top_k`` cuts given here, whatever the model's generation config says).
        seed: Seeds the sampling; the global random state is left as it was.
        desc: Progress-bar label.
        show_progress: Show a progress bar.
        top_p: Nucleus sampling threshold when sampling (1 keeps every token).
        top_k: Sample among the k likeliest tokens when sampling (0 keeps every token).
        stop: Text sequences that end an answer (left out of it), besides the stop tokens of
            :func:`stop_token_ids`.
        counts: When given, filled with one :class:`TokenCounts` per prompt, in the input
            order (the answers are the same either way).

    Returns:
        One decoded answer per prompt, in the input order.
    """
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    stops = stop_token_ids(model, tokenizer)
    stop = [s for s in stop or [] if s]
    if family == "seq2seq":  # as in training: the prompt's last max_length - 1 ids, then EOS
        encoded = [[*ids, eos] for ids in encode_prompts(tokenizer, prompts, max_length - 1)]
    else:
        encoded = encode_prompts(tokenizer, prompts, max_length)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    decoding = (
        {"do_sample": False}
        if temperature == 0
        else {
            "do_sample": True,
            "temperature": float(temperature),
            "top_k": int(top_k),
            "top_p": float(top_p),
        }
    )
    outputs: list[str] = [""] * len(prompts)
    found: dict[int, TokenCounts] = {}
    device = next(model.parameters()).device
    model.eval()
    with (
        torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []),
        last_position_logits(model, family),
    ):
        torch.manual_seed(seed)
        for start in tqdm(
            range(0, len(order), batch_size), desc=desc, unit="batch", disable=not show_progress
        ):
            rows = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                seq = encoded[i]
                span = slice(0, len(seq)) if family == "seq2seq" else slice(width - len(seq), width)
                ids[r, span] = torch.tensor(seq)
                mask[r, span] = 1
            generated = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                num_beams=1,
                pad_token_id=pad,
                eos_token_id=stops,
                **({"stop_strings": stop, "tokenizer": tokenizer} if stop else {}),
                **decoding,
            )
            new_tokens = generated if family == "seq2seq" else generated[:, width:]
            texts = tokenizer.batch_decode(new_tokens.cpu(), skip_special_tokens=True)
            for r, i in enumerate(rows):
                outputs[i] = cut_at_stop(texts[r], stop).strip()
            if counts is not None:
                answer_ids = new_tokens[:, 1:] if family == "seq2seq" else new_tokens
                for r, i in enumerate(rows):
                    found[i] = count_tokens(
                        tokenizer, answer_ids[r].tolist(), len(encoded[i]), stops, stop
                    )
    if counts is not None:
        counts[:] = [found[i] for i in range(len(prompts))]
    return outputs
