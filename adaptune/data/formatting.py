"""Formatting validated records into prompt/target pairs with a train/eval split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from adaptune.data.jsonl import read_jsonl, write_jsonl
from adaptune.errors import UserError

INPUT_PLACEHOLDER = "{input_text}"
DEFAULT_TEMPLATE = "{input_text}\n### Response:\n"
DEFAULT_EVAL_FRACTION = 0.2


@dataclass
class FormatResult:
    """What formatting wrote.

    Attributes:
        counts: Records per split.
        files: ``train`` and ``eval`` JSONL paths; each line has ``prompt`` and ``target``.
        split_source: ``file`` when the eval file was given, ``hash`` when it was split off.
    """

    counts: dict[str, int]
    files: dict[str, Path]
    split_source: str


def apply_template(template: str, input_text: str) -> str:
    """Put ``input_text`` into ``template`` at ``{input_text}`` (no other braces are special)."""
    return template.replace(INPUT_PLACEHOLDER, input_text)


def in_eval_split(record: dict[str, str], eval_fraction: float) -> bool:
    """Whether a record goes to eval, decided by its content hash alone.

    The decision depends only on the record, so adding rows never moves existing rows across
    the split, and the same data always splits the same way.
    """
    key = (record["input_text"] + "\0" + record["output_text"]).encode("utf-8")
    bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return bucket < eval_fraction


def format_text_to_text(
    validated_dir: Path,
    output_dir: Path,
    prompt_template: str = DEFAULT_TEMPLATE,
    eval_fraction: float = DEFAULT_EVAL_FRACTION,
) -> FormatResult:
    """Turn validated ``input_text``/``output_text`` records into ``prompt``/``target`` pairs.

    Args:
        validated_dir: Output of validation: ``train.jsonl`` and optionally ``eval.jsonl``.
        output_dir: Where the formatted ``train.jsonl`` and ``eval.jsonl`` are written.
        prompt_template: Text around the input, with ``{input_text}`` where it goes; an
            instruction can be written into it. The model learns to continue it with the output.
        eval_fraction: Share of records held out for eval when no eval file was given.

    Returns:
        Counts, file paths and how the split was made.

    Raises:
        UserError: If the template lacks ``{input_text}``, the fraction is out of range, or a
            split would be empty.
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

    def pairs(records: list[dict[str, str]]) -> list[dict[str, str]]:
        return [
            {
                "prompt": apply_template(prompt_template, r["input_text"]),
                "target": r["output_text"],
            }
            for r in records
        ]

    files = {"train": output_dir / "train.jsonl", "eval": output_dir / "eval.jsonl"}
    write_jsonl(files["train"], pairs(train))
    write_jsonl(files["eval"], pairs(evaluation))
    return FormatResult(
        counts={"train": len(train), "eval": len(evaluation)},
        files=files,
        split_source=split_source,
    )
