"""The normalised examples as Gemini tuning JSONL, uploaded under their content hash.

Each line is one conversation in the form Vertex AI's supervised tuning reads
(https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare):
``{"systemInstruction": {"parts": [{"text"}]}, "contents": [{"role": "user"|"model",
"parts": [{"text"}]}, ...]}``. The system instruction's role is left out (the service ignores
it).

A conversation with several model turns became several normalised examples, one per model
turn, each with the turns before it as context; consecutive examples that continue one
another are joined back into the one conversation, so data that came as Gemini chat converts
back to the same records. A model turn that was context only (OpenAI ``weight: 0``) cannot be
marked so in Gemini's format: it stays in the contents.

The files go to ``<root>/gemini_data/<sha256>/{train,validation}.jsonl``, where the sha256 is
that of the converted files: the same data is uploaded once, and a path names its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from adaptune.atomic import write_bytes_atomic
from adaptune.gcs import gcs_filesystem, is_gcs
from adaptune.hashing import sha256_named_files
from adaptune.vertex.gemini_limits import (
    GeminiLimits,
    check_gemini_files,
    read_examples,
    require_within_limits,
)

DATA_DIR = "gemini_data"
SPLIT_FILES = {"train": "train.jsonl", "eval": "validation.jsonl"}
"""Normalised split → the Gemini file it becomes."""


def _content(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"text": text}]}


def turns_of(example: dict[str, Any]) -> list[tuple[str, str]]:
    """A normalised example's conversation as (role, text) turns, its answer last."""
    turns = [(t["role"], t["text"]) for t in example.get("context") or []]
    turns.append(("user", example["input_text"]))
    turns.append(("model", example["output_text"]))
    return turns


def gemini_record(
    system: str | None, turns: list[tuple[str, str]], system_instruction: str = ""
) -> dict[str, Any]:
    """One Gemini tuning record; ``system_instruction`` stands in when ``system`` is None."""
    record: dict[str, Any] = {}
    text = system if system is not None else system_instruction
    if text:
        record["systemInstruction"] = {"parts": [{"text": text}]}
    record["contents"] = [_content(role, t) for role, t in turns]
    return record


def gemini_records(
    examples: Iterable[dict[str, Any]], system_instruction: str = ""
) -> Iterator[dict[str, Any]]:
    """Gemini records of normalised examples, consecutive continuations joined.

    An example continues the one before it when it has the same system text and its context
    is exactly that example's context, input and answer.
    """
    system: str | None = None
    turns: list[tuple[str, str]] = []
    for example in examples:
        these = turns_of(example)
        same_system = example.get("system") == system
        if turns and same_system and these[: len(turns)] == turns and len(these) > len(turns):
            turns = these
            continue
        if turns:
            yield gemini_record(system, turns, system_instruction)
        system, turns = example.get("system"), these
    if turns:
        yield gemini_record(system, turns, system_instruction)


def write_gemini_jsonl(source: Path, target: Path, system_instruction: str = "") -> int:
    """Convert a normalised examples file to Gemini JSONL (atomic, canonical bytes).

    Returns:
        The number of records written.
    """
    examples = (example for _, example in read_examples(source))
    lines = [
        orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n"
        for r in gemini_records(examples, system_instruction)
    ]
    write_bytes_atomic(Path(target), b"".join(lines))
    return len(lines)


@dataclass(frozen=True)
class GeminiDataset:
    """The uploaded tuning data.

    Attributes:
        train_uri: The training file (``gs://`` for the service; a local path in tests).
        validation_uri: The validation file; empty without eval data.
        sha256: sha256 of the converted files (``train.jsonl``, ``validation.jsonl``).
        records: Gemini records per split (``train``, ``eval``).
        bytes: Size of each converted file, per split.
        uploaded: Whether this call uploaded the files (False: they were there already).
    """

    train_uri: str
    validation_uri: str
    sha256: str
    records: dict[str, int]
    bytes: dict[str, int]
    uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and step metadata."""
        return asdict(self)


def convert_gemini_data(
    files: dict[str, Path], work_dir: Path, system_instruction: str = ""
) -> dict[str, Path]:
    """Convert the normalised ``train`` (and ``eval``) files into ``work_dir``."""
    converted = {}
    for split, name in SPLIT_FILES.items():
        if split in files:
            write_gemini_jsonl(files[split], Path(work_dir) / name, system_instruction)
            converted[split] = Path(work_dir) / name
    return converted


def _put(local: Path, remote: str) -> bool:
    """Copy ``local`` to ``remote`` unless a file of the same size is there; whether it copied.

    The remote path holds the content's hash, so a file of the same size there is the same
    file (one a crash cut short has another size, or is not there: uploads are whole objects
    and local copies atomic).
    """
    size = local.stat().st_size
    if is_gcs(remote):
        fs = gcs_filesystem()
        if fs.exists(remote) and fs.size(remote) == size:
            return False
        fs.put_file(str(local), remote)
        return True
    target = Path(remote)
    if target.is_file() and target.stat().st_size == size:
        return False
    write_bytes_atomic(target, local.read_bytes())
    return True


def upload_gemini_data(
    files: dict[str, Path],
    root: str,
    work_dir: Path,
    limits: GeminiLimits,
    system_instruction: str = "",
) -> GeminiDataset:
    """Convert the normalised examples, check the files' sizes, upload them under their hash.

    Args:
        files: Normalised examples per split (``train``, optionally ``eval``).
        root: The pipeline root (``gs://...``) or a local directory.
        work_dir: Where the converted files are written first.
        limits: The base model's limits (file size).
        system_instruction: ``data.system_instruction`` for examples without their own.

    Returns:
        Where the files are, their hash and counts. Calling again with the same data uploads
        nothing.

    Raises:
        DataValidationError: If a converted file is larger than the service accepts.
    """
    converted = convert_gemini_data(files, work_dir, system_instruction)
    require_within_limits(check_gemini_files(converted, limits))
    sha = sha256_named_files((p.name, p) for p in converted.values())
    base = f"{root.rstrip('/')}/{DATA_DIR}/{sha}"
    uploaded = False
    uris = {}
    for split, path in converted.items():
        uris[split] = f"{base}/{path.name}"
        uploaded = _put(path, uris[split]) or uploaded
    records = {
        split: sum(1 for line in path.read_bytes().splitlines() if line.strip())
        for split, path in converted.items()
    }
    return GeminiDataset(
        train_uri=uris["train"],
        validation_uri=uris.get("eval", ""),
        sha256=sha,
        records=records,
        bytes={split: path.stat().st_size for split, path in converted.items()},
        uploaded=uploaded,
    )
