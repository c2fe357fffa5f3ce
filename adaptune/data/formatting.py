"""Formatting validated examples into prompt/target pairs with a train/eval split.

In the ``template`` format the prompt of an example is its system text (if any) on its own line,
then each earlier user/model exchange of the context rendered with the template followed by the
model's reply, then the input rendered with the template; the target is the output. In the
``chat`` format both come from the base model's chat template (:mod:`adaptune.data.chat`): the
target is the assistant turn as rendered (its end-of-turn token included) and ``reference``
keeps the plain output the evaluation scores against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptune.data.chat import (
    PromptStyle,
    chat_template_sha256,
    conversation,
    render_chat_pair,
    render_chat_prompt,
    resolve_prompt_format,
)
from adaptune.data.jsonl import read_jsonl, write_jsonl
from adaptune.data.problems import TARGET_MASKED, DataValidationError, Problem
from adaptune.data.settings import DataSettings
from adaptune.errors import UserError
from adaptune.hashing import sha256_text

INPUT_PLACEHOLDER = "{input_text}"
DEFAULT_TEMPLATE = "{input_text}\n### Response:\n"
DEFAULT_EVAL_FRACTION = DataSettings().eval_fraction
MAX_LISTED = 20


@dataclass
class FormatResult:
    """What formatting wrote.

    Attributes:
        counts: Records per split.
        files: ``train`` and ``eval`` JSONL paths; each line has ``prompt`` and ``target``.
        split_source: ``file`` when the eval file was given, ``hash`` when it was split off.
        prompt_style: How the prompts were made (a registry version records it).
    """

    counts: dict[str, int]
    files: dict[str, Path]
    split_source: str
    prompt_style: PromptStyle


def apply_template(template: str, input_text: str) -> str:
    """Put ``input_text`` into ``template`` at ``{input_text}`` (no other braces are special)."""
    return template.replace(INPUT_PLACEHOLDER, input_text)


def render_prompt(example: dict[str, Any], template: str) -> str:
    """The prompt of a normalised example: system, templated context, templated input."""
    parts = [example["system"] + "\n"] if example.get("system") else []
    context = example.get("context") or []
    for user, model in zip(context[::2], context[1::2], strict=True):
        parts.append(apply_template(template, user["text"]) + model["text"] + "\n")
    parts.append(apply_template(template, example["input_text"]))
    return "".join(parts)


def styled_prompt(example: dict[str, Any], style: PromptStyle, tokenizer: Any = None) -> str:
    """The prompt of a normalised example in ``style``: what tuning trains on and serving sends.

    The style's system instruction stands in for a system text the example lacks, in both
    formats. The chat format needs the base model's tokenizer.
    """
    if style.format == "template":
        system = example.get("system") or style.system_instruction
        return render_prompt({**example, "system": system}, style.template)
    if tokenizer is None:
        raise ValueError("the chat format renders with the base model's tokenizer: pass it")
    return render_chat_prompt(tokenizer, conversation(example, style.system_instruction))


def in_eval_split(record: dict[str, Any], eval_fraction: float) -> bool:
    """Whether a record goes to eval, decided by its content hash alone.

    The decision depends only on the record, so adding rows never moves existing rows across
    the split, and the same data always splits the same way.
    """
    key = record["input_text"] + "\0" + record["output_text"]
    if record.get("system") or record.get("context"):
        key += "\0" + (record.get("system") or "")
        key += "".join("\0" + t["role"] + "\0" + t["text"] for t in record.get("context") or [])
    bucket = int(sha256_text(key)[:16], 16) / 2**64
    return bucket < eval_fraction


def check_target_tokens(
    pairs: list[dict[str, str]], base_model: str, max_length: int | None = None
) -> None:
    """Check that every training pair keeps at least one target token once encoded.

    Encoding is the tuning step's own (template applied, prompt cut from the left, target cut
    to fit); a pair whose target tokens are all lost would train on nothing ("every label
    masked").

    Args:
        pairs: ``prompt``/``target`` pairs.
        base_model: The model whose tokenizer and family the tuning step uses.
        max_length: Most tokens per sequence (the tuning default when None).

    Raises:
        DataValidationError: Naming the first pairs (1-based) without a target token.
    """
    from adaptune.base_models.tokenizer import load_tokenizer, model_family
    from adaptune.data.encoding import DEFAULT_MAX_LENGTH, IGNORE_INDEX, encode_pairs

    tokenizer = load_tokenizer(base_model)
    family = model_family(base_model)
    length = max_length or DEFAULT_MAX_LENGTH
    eos = tokenizer.eos_token_id
    bad = []
    for number, encoded in enumerate(encode_pairs(tokenizer, pairs, family, length), start=1):
        if not [t for t in encoded.labels if t not in (IGNORE_INDEX, eos)]:
            bad.append(number)
    if bad:
        problems = [
            Problem(TARGET_MASKED, "no target token left after templating and truncation", "", n)
            for n in bad[:MAX_LISTED]
        ]
        listed = ", ".join(str(n) for n in bad[:MAX_LISTED])
        raise DataValidationError(
            f"{len(bad)} training example(s) keep no target token after templating and "
            f"truncation (examples {listed}) [{TARGET_MASKED}]",
            problems,
        )


def format_text_to_text(
    validated_dir: Path,
    output_dir: Path,
    prompt_template: str = DEFAULT_TEMPLATE,
    eval_fraction: float = DEFAULT_EVAL_FRACTION,
    base_model: str | None = None,
    max_length: int | None = None,
    prompt_format: str = "auto",
    system_instruction: str = "",
) -> FormatResult:
    """Turn validated examples into ``prompt``/``target`` pairs.

    Args:
        validated_dir: Output of validation: ``train.jsonl`` and optionally ``eval.jsonl``.
        output_dir: Where the formatted ``train.jsonl`` and ``eval.jsonl`` are written.
        prompt_template: Text around the input, with ``{input_text}`` where it goes; an
            instruction can be written into it. The model learns to continue it with the output.
        eval_fraction: Share of records held out for eval when no eval file was given.
        base_model: When given, every training pair is checked to keep a target token after
            the tuning step's encoding (see :func:`check_target_tokens`).
        max_length: The tuning step's ``training.max_length`` (its default when None).
        prompt_format: ``auto``, ``template`` or ``chat`` (``data.prompt_format``); ``auto`` and
            ``chat`` need ``base_model``.
        system_instruction: System instruction for examples without one.

    Returns:
        Counts, file paths and how the split was made.

    Raises:
        UserError: If the template lacks ``{input_text}``, the fraction is out of range, a
            split would be empty, or a training pair keeps no target token.
    """
    if INPUT_PLACEHOLDER not in prompt_template:
        raise UserError(f"prompt_template must contain {INPUT_PLACEHOLDER}: {prompt_template!r}")
    if not 0.0 < eval_fraction < 1.0:
        raise UserError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    train = read_jsonl(validated_dir / "train.jsonl")
    eval_file = validated_dir / "eval.jsonl"
    if eval_file.is_file():
        evaluation, split_source = read_jsonl(eval_file), "file"
    else:
        evaluation = [r for r in train if in_eval_split(r, eval_fraction)]
        train = [r for r in train if not in_eval_split(r, eval_fraction)]
        split_source = "hash"
    for split, records in (("train", train), ("eval", evaluation)):
        if not records:
            raise UserError(f"the {split} split is empty; give more records or an eval file")

    style, tokenizer = _prompt_style(prompt_format, prompt_template, system_instruction, base_model)

    def pairs(records: list[dict[str, Any]]) -> list[dict[str, str]]:
        if style.format == "template":
            return [
                {"prompt": styled_prompt(r, style), "target": r["output_text"]} for r in records
            ]
        rendered = []
        for r in records:
            messages = conversation(r, style.system_instruction)
            prompt, target = render_chat_pair(tokenizer, messages, r["output_text"])
            rendered.append({"prompt": prompt, "target": target, "reference": r["output_text"]})
        return rendered

    train_pairs = pairs(train)
    if base_model:
        check_target_tokens(train_pairs, base_model, max_length)
    files = {"train": output_dir / "train.jsonl", "eval": output_dir / "eval.jsonl"}
    write_jsonl(files["train"], train_pairs)
    write_jsonl(files["eval"], pairs(evaluation))
    return FormatResult(
        counts={"train": len(train), "eval": len(evaluation)},
        files=files,
        split_source=split_source,
        prompt_style=style,
    )


def _prompt_style(
    prompt_format: str, prompt_template: str, system_instruction: str, base_model: str | None
) -> tuple[PromptStyle, Any]:
    """The resolved prompt style, and the tokenizer when the chat format needs it."""
    if prompt_format == "template" or (prompt_format == "auto" and base_model is None):
        return PromptStyle("template", prompt_template, system_instruction), None
    if base_model is None:
        raise UserError("data.prompt_format chat needs the base model's tokenizer")
    from adaptune.base_models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(base_model)
    chosen = resolve_prompt_format(prompt_format, tokenizer, base_model)
    if chosen == "template":
        return PromptStyle(chosen, prompt_template, system_instruction), tokenizer
    digest = chat_template_sha256(tokenizer)
    return PromptStyle(chosen, prompt_template, system_instruction, digest), tokenizer
