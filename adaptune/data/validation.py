"""Validation of text-to-text JSONL (Vertex AI's ``input_text``/``output_text`` schema).

Every line is checked; the first errors are reported with file, line number and reason, so a
user can fix the file before any tuning starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptune.data.jsonl import sha256_files, write_jsonl
from adaptune.errors import UserError

REQUIRED_FIELDS = ("input_text", "output_text")
MAX_REPORTED_ERRORS = 20
DEFAULT_MIN_EXAMPLES = 16


@dataclass(frozen=True)
class RecordError:
    """One invalid record.

    Attributes:
        file: The file's path as given.
        line: 1-based line number.
        reason: What is wrong, in words.
    """

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class DataValidationError(UserError):
    """The dataset has invalid records or too few of them."""

    def __init__(self, errors: list[RecordError], total_errors: int, problems: list[str]):
        self.errors = errors
        self.total_errors = total_errors
        self.problems = problems
        lines = [str(e) for e in errors]
        if total_errors > len(errors):
            lines.append(f"... and {total_errors - len(errors)} more invalid records")
        lines.extend(problems)
        super().__init__("dataset validation failed:\n  " + "\n  ".join(lines))


@dataclass
class ValidationResult:
    """What validation found.

    Attributes:
        counts: Valid records per split (``train``, and ``eval`` when an eval file was given).
        data_sha256: sha256 of the normalised records, the key every later step follows.
        files: The normalised JSONL written per split.
    """

    counts: dict[str, int]
    data_sha256: str
    files: dict[str, Path] = field(default_factory=dict)


def check_record(obj: Any) -> str | None:
    """Return why a parsed JSON value is not a valid text-to-text record, or None if it is."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    for name in REQUIRED_FIELDS:
        if name not in obj:
            return f"missing field '{name}'"
        value = obj[name]
        if not isinstance(value, str):
            return f"field '{name}' must be a string, got {type(value).__name__}"
        if not value.strip():
            return f"field '{name}' is empty"
    return None


def read_records(path: Path, errors: list[RecordError]) -> tuple[list[dict[str, str]], int]:
    """Read and check every line of ``path``.

    A UTF-8 byte order mark and CRLF line ends are tolerated; blank lines are skipped.

    Args:
        path: A JSONL file.
        errors: Receives the first ``MAX_REPORTED_ERRORS`` errors (shared across files).

    Returns:
        The valid records (only the required fields) and the number of invalid ones.
    """
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    records: list[dict[str, str]] = []
    invalid = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            reason = None
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                reason = f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
            except json.JSONDecodeError as exc:
                reason = f"not valid JSON ({exc.msg}, column {exc.colno})"
            else:
                reason = check_record(obj)
            if reason is None:
                records.append({name: obj[name] for name in REQUIRED_FIELDS})
                continue
            invalid += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(RecordError(str(path), number, reason))
    return records, invalid


def validate_dataset(
    train_path: str,
    eval_path: str,
    output_dir: Path,
    min_examples: int = DEFAULT_MIN_EXAMPLES,
) -> ValidationResult:
    """Check every record of the train (and optional eval) file and write the normalised data.

    Args:
        train_path: JSONL training file with ``input_text`` and ``output_text`` per line.
        eval_path: Optional JSONL eval file in the same schema; empty string for none.
        output_dir: Where ``train.jsonl`` (and ``eval.jsonl``) are written, normalised.
        min_examples: Fewest valid training records accepted.

    Returns:
        The counts per split, the data's sha256 and the written files.

    Raises:
        DataValidationError: If any record is invalid or there are too few, naming file, line
            and reason for the first errors. Nothing is written in that case.
        UserError: If a file is missing or a ``gs://`` path is given.
    """
    sources = {"train": train_path} | ({"eval": eval_path} if eval_path else {})
    errors: list[RecordError] = []
    total_invalid = 0
    problems: list[str] = []
    splits: dict[str, list[dict[str, str]]] = {}
    for split, source in sources.items():
        if source.startswith("gs://"):
            raise UserError(
                f"{source}: reading gs:// is not supported yet; copy the file locally first"
            )
        records, invalid = read_records(Path(source), errors)
        total_invalid += invalid
        splits[split] = records
    if not total_invalid:
        if len(splits["train"]) < min_examples:
            problems.append(
                f"{train_path}: {len(splits['train'])} valid training records, "
                f"at least {min_examples} needed"
            )
        if "eval" in splits and not splits["eval"]:
            problems.append(f"{eval_path}: no records")
    if total_invalid or problems:
        raise DataValidationError(errors, total_invalid, problems)
    files = {}
    for split, records in splits.items():
        files[split] = output_dir / f"{split}.jsonl"
        write_jsonl(files[split], records)
    return ValidationResult(
        counts={split: len(records) for split, records in splits.items()},
        data_sha256=sha256_files(files.values()),
        files=files,
    )
