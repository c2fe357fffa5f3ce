"""Validation: read every record of every source, check it, and write the normalised examples.

The validator streams: records are read one at a time and handled a chunk at a time (token
counts in one batch per chunk), so memory stays flat as files grow. What it keeps per example
is two 64-bit hashes, a line number and a file index (for duplicates and train/eval overlap),
plus a bounded sample of token lengths and the first problems of each category.

Memory follows the limits, not the longest record either: a text too long to tokenise whole
(:func:`~adaptune.data.token_counting.whole_text_chars`) is counted only as far as its limit
needs, and then rejected (``more than N tokens``) or cut to the limit before anything else
reads it (``length_policy: truncate``). A record is read whole once; one over
``MAX_RECORD_BYTES`` is skipped unread (``record_too_large``).
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from adaptune.data import problems as p
from adaptune.data.chat import ChatRendering, resolve_prompt_format
from adaptune.data.formats import (
    NORMALISERS,
    TABLE_EXTENSIONS,
    TABLE_FORMATS,
    Example,
    detect_format,
    example_key,
    input_key,
    input_pieces,
    input_places,
    table_row_examples,
    with_text,
)
from adaptune.data.problems import DataValidationError, Problem, RecordProblem
from adaptune.data.records import FileProblem, csv_records, jsonl_records, parquet_records
from adaptune.data.report import LengthSample, ValidationReport
from adaptune.data.settings import DataSettings
from adaptune.data.sources import expand_sources, open_binary
from adaptune.data.token_counting import TokenCounter, byte_length, whole_text_chars
from adaptune.data.visible_text import has_visible
from adaptune.errors import UserError
from adaptune.hashing import sha256_named_files

DEFAULT_BASE_MODEL = "builtin:tiny-gpt2"
DEFAULT_MIN_EXAMPLES = DataSettings().min_examples
CHUNK_RECORDS = 4096
CHAT_EDGE_TOKENS = 16
"""Tokens a chat template's markup may merge with at the edges of a text; a text whose tokens
alone pass its limit by more is over it, rendered or not."""
SPLITS = ("train", "eval")
DROPPED_FILE = "dropped.jsonl"


@dataclass
class ValidationResult:
    """What validation wrote.

    Attributes:
        counts: Examples per split (``train``, and ``eval`` when eval data was given).
        data_sha256: sha256 of the normalised examples, the key every later step follows.
        files: The normalised JSONL written per split (and ``dropped`` when records were).
        report: The full report.
    """

    counts: dict[str, int]
    data_sha256: str
    files: dict[str, Path]
    report: ValidationReport


class SplitIndex:
    """Per example of one split: whole-example hash, input hash, file index and line."""

    def __init__(self) -> None:
        self.keys = array("q")
        self.inputs = array("q")
        self.files = array("l")
        self.lines = array("q")

    def add(self, example: Example, file_index: int, line: int) -> None:
        """Index one kept example."""
        self.keys.append(hash(example_key(example)))
        self.inputs.append(hash(input_key(example)))
        self.files.append(file_index)
        self.lines.append(line)

    def __len__(self) -> int:
        return len(self.keys)


class StagedOutput:
    """Normalised JSONL written to temporary files, renamed into place only on success."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        self.temps: dict[str, Path] = {}
        self.streams: dict[str, IO[bytes]] = {}

    def stream(self, name: str) -> IO[bytes]:
        """The temporary file for ``name`` (a split, or ``dropped``), opened on first use."""
        if name not in self.streams:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
            self.temps[name] = Path(tmp)
            self.streams[name] = os.fdopen(fd, "wb", buffering=1 << 20)
        return self.streams[name]

    def close(self) -> None:
        """Close every temporary file."""
        for stream in self.streams.values():
            stream.close()

    def commit(self, drops: dict[str, set[int]]) -> dict[str, Path]:
        """Rename each temporary file into place, leaving out the dropped example indices."""
        self.close()
        files = {}
        for name, tmp in self.temps.items():
            final = self.directory / (DROPPED_FILE if name == "dropped" else f"{name}.jsonl")
            dropped = drops.get(name)
            if dropped:
                kept = tmp.with_suffix(".kept")
                with tmp.open("rb") as src, kept.open("wb") as dst:
                    for index, line in enumerate(src):
                        if index not in dropped:
                            dst.write(line)
                tmp.unlink()
                tmp = kept
            os.replace(tmp, final)
            files[name] = final
        return files

    def discard(self) -> None:
        """Delete the temporary files (and the directory when this created it and it is empty)."""
        self.close()
        for tmp in self.temps.values():
            tmp.unlink(missing_ok=True)
            tmp.with_suffix(".kept").unlink(missing_ok=True)
        if self.created and not any(self.directory.iterdir()):
            self.directory.rmdir()


class DatasetScan:
    """One pass over the sources of every split, collecting what the report needs."""

    def __init__(
        self,
        settings: DataSettings,
        counter: TokenCounter,
        output: StagedOutput | None,
        chat: ChatRendering | None = None,
    ):
        self.settings = settings
        self.counter = counter
        self.output = output
        self.chat = chat
        self.report = ValidationReport(settings=settings.to_dict())
        self.report.prompt_format = "chat" if chat is not None else "template"
        self.index = {split: SplitIndex() for split in SPLITS}
        self.files: list[str] = []
        # (split, file index, line, examples, per example: the lower bounds of cut sides)
        self.pending: list[tuple[str, int, int, list[Example], list[dict[str, int]]]] = []
        self.lengths = {"input": LengthSample(), "output": LengthSample()}
        self.longest: dict[str, tuple[int, list[str]]] = {"input": (-1, []), "output": (-1, [])}
        self.sampled = 0

    # Problems -------------------------------------------------------------------------
    def record_problem(self, problem: Problem) -> None:
        """An invalid record: counted, listed, and logged to the drop list."""
        self.report.add_problem(problem)
        self.report.invalid_records += 1
        if self.output is not None:
            self.output.stream("dropped").write(orjson.dumps(problem.to_dict()) + b"\n")

    def fatal(self, problem: Problem) -> None:
        """A problem that fails the dataset whatever max_invalid_fraction says."""
        self.report.add_problem(problem)
        self.report.fatal.append(problem)

    # Reading --------------------------------------------------------------------------
    def read_file(self, split: str, path: str) -> None:
        """Read, check and queue every record of one file."""
        file_index = len(self.files)
        self.files.append(path)
        self.report.sources.setdefault(split, []).append(path)
        settings = self.settings
        file_format = settings.format if settings.format != "auto" else None
        if file_format is None:
            file_format = TABLE_EXTENSIONS.get(Path(path).suffix.lower())
        auto = settings.format == "auto" and file_format not in TABLE_FORMATS
        records = 0
        try:
            with ExitStack() as stack:
                try:
                    stream = stack.enter_context(open_binary(path))
                except OSError as exc:
                    raise FileProblem(p.UNREADABLE_FILE, f"cannot open: {exc}") from None
                columns = (settings.input_column, settings.output_column)
                if file_format == "csv":
                    rows: Iterator[tuple[int, Any]] = csv_records(stream, columns)
                elif file_format == "parquet":
                    rows = parquet_records(stream, columns)
                else:
                    rows = jsonl_records(stream)
                table = table_row_examples(*columns) if file_format in TABLE_FORMATS else None
                for line, value in rows:
                    records += 1
                    if isinstance(value, RecordProblem):
                        self.record_problem(Problem(value.category, value.message, path, line))
                        continue
                    if auto:
                        detected = detect_format(value)
                        if file_format is None:
                            file_format = detected
                        elif detected is not None and detected != file_format:
                            self.record_problem(
                                Problem(
                                    p.MIXED_FORMATS,
                                    f"record is {detected} but the file is {file_format}",
                                    path,
                                    line,
                                )
                            )
                            continue
                    normalise = table or NORMALISERS.get(file_format or "")
                    if normalise is None:
                        message = "no known format; expected keys " + ", ".join(
                            f"'{k}'" for k in ("messages", "contents", "input_text", "prompt")
                        )
                        self.record_problem(Problem(p.UNKNOWN_FORMAT, message, path, line))
                        continue
                    try:
                        examples = normalise(value)
                    except RecordProblem as problem:
                        self.record_problem(Problem(problem.category, problem.message, path, line))
                        continue
                    bounded, bounds, problem = self.bound_long_texts(examples, path, line)
                    if problem is not None:
                        self.record_problem(problem)
                        continue
                    self.pending.append((split, file_index, line, bounded, bounds))
                    if len(self.pending) >= CHUNK_RECORDS:
                        self.flush()
        except FileProblem as problem:
            self.fatal(Problem(problem.category, problem.message, path, problem.line))
        self.flush()
        self.report.records[split] = self.report.records.get(split, 0) + records
        self.report.formats[path] = file_format or "unknown"
        if records == 0 and not any(f.file == path for f in self.report.fatal):
            self.fatal(Problem(p.EMPTY_FILE, "the file holds no records", path, 1))

    # Chunks ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Count tokens for the queued records, apply the limits and keep what passes."""
        if not self.pending:
            return
        settings, counter = self.settings, self.counter
        limits = {"input": settings.max_input_tokens, "output": settings.max_output_tokens}
        texts: list[str] = []
        plans = []  # per example: (input piece slice or None, output index or None, sampled)
        for _, _, _, examples, _ in self.pending:
            for example in examples:
                pieces = input_pieces(example)
                sizes = [byte_length(t) for t in pieces]
                out_size = byte_length(example["output_text"])
                self.note_longest("input", sum(sizes), pieces)
                self.note_longest("output", out_size, [example["output_text"]])
                sampled = self.lengths["input"].wants(self.sampled)
                self.sampled += 1
                in_slice = out_index = None
                # Each piece can have up to `slack` more tokens than bytes.
                in_bound = sum(sizes) + (len(pieces) - 1) * (counter.slack or 0)
                rendered = self.chat is not None  # counted as rendered: every example
                if rendered or sampled or counter.may_exceed(in_bound, limits["input"]):
                    in_slice = (len(texts), len(texts) + len(pieces))
                    texts.extend(pieces)
                if rendered or sampled or counter.may_exceed(out_size, limits["output"]):
                    out_index = len(texts)
                    texts.append(example["output_text"])
                plans.append((in_slice, out_index, sampled))
        counts = counter.count(texts)
        chat_counts = iter(
            self.chat.token_counts([e for _, _, _, examples, _ in self.pending for e in examples])
            if self.chat is not None
            else ()
        )
        plan = iter(plans)
        for split, file_index, line, examples, all_bounds in self.pending:
            kept: list[Example] = []
            problem = None
            for example, bounds in zip(examples, all_bounds, strict=True):
                # Every example takes its plan and counts, even after a problem in its record.
                in_slice, out_index, sampled = next(plan)
                rendered = next(chat_counts) if self.chat is not None else None
                if problem is not None:
                    continue
                piece_counts = counts[in_slice[0] : in_slice[1]] if in_slice else None
                n_in = sum(piece_counts) if piece_counts is not None else None
                content_out = n_out = counts[out_index] if out_index is not None else None
                overhead = (0, 0)
                if isinstance(rendered, str):
                    path = self.files[file_index]
                    problem = Problem(p.CHAT_TEMPLATE_FAILED, rendered, path, line)
                    continue
                if rendered is not None:  # the limits count the rendered template
                    overhead = (rendered[0] - (n_in or 0), rendered[1] - (n_out or 0))
                    n_in, n_out = rendered
                if sampled:
                    self.lengths["input"].add(bounds.get("input", n_in or 0))
                    self.lengths["output"].add(bounds.get("output", n_out or 0))
                for side, n in (("input", n_in), ("output", n_out)):
                    if side in bounds:
                        self.report.note_max(side, bounds[side], exact=False)
                    elif n is not None:
                        self.report.note_max(side, n)
                example, problem = self.apply_limits(
                    example, piece_counts, content_out, file_index, line, overhead, bounds
                )
                if problem is None:
                    kept.append(example)
                    if self.chat and self.report.rendered_example is None and split == "train":
                        self.report.rendered_example = self.chat.pair(example)
            if problem is not None:
                self.record_problem(problem)
                continue
            self.keep(split, file_index, line, kept)
        self.pending.clear()
        for sample in self.lengths.values():
            sample.thin()

    def note_longest(self, side: str, size: int, pieces: list[str]) -> None:
        """Remember the longest text (in bytes) of each side, counted at the end."""
        if size > self.longest[side][0]:
            self.longest[side] = (size, pieces)

    def bound_long_texts(
        self, examples: list[Example], path: str, line: int
    ) -> tuple[list[Example], list[dict[str, int]], Problem | None]:
        """Count the texts too long to tokenise whole only as far as their limits need.

        A text over its limit is a problem (``length_policy: reject``) or is cut to the limit
        here (``truncate``), so nothing later holds or tokenises more than the limits need.

        Returns:
            The examples (long texts cut), per example the lower bound of the token count of
            each side that was cut, and the problem of the record (or None).
        """
        settings, counter = self.settings, self.counter
        edge = CHAT_EDGE_TOKENS if self.chat is not None else 0
        limits = {"input": settings.max_input_tokens, "output": settings.max_output_tokens}
        windows = {side: whole_text_chars(limit + edge) for side, limit in limits.items()}
        truncate = settings.length_policy == "truncate"
        bounded, all_bounds = [], []
        for example in examples:
            bounds: dict[str, int] = {}
            texts: list[tuple[str, str | int, str]] = [("output", "output", example["output_text"])]
            if len(texts[0][2]) <= windows["output"]:
                texts = []
            texts += [
                ("input", where, text)
                for where, text in input_places(example)
                if len(text) > windows["input"]
            ]
            for side, where, text in texts:
                n, exact = counter.count_upto(text, limits[side] + edge)
                if exact:
                    continue
                self.report.note_max(side, n, exact=False)
                limit = limits[side]
                if not truncate or where == "system":
                    how = " and cannot be truncated below the system text" if truncate else ""
                    return (
                        examples,
                        [],
                        Problem(
                            p.INPUT_TOO_LONG if side == "input" else p.OUTPUT_TOO_LONG,
                            f"{side} has at least {n} tokens, more than max_{side}_tokens={limit} "
                            f"(counted only as far as the limit needs, in a text of "
                            f"{len(text):,} characters){how}",
                            path,
                            line,
                        ),
                    )
                keep = counter.keep_first if side == "output" else counter.keep_last
                example = with_text(example, where, keep(text, limit))
                bounds[side] = bounds.get(side, 0) + n
            bounded.append(example)
            all_bounds.append(bounds)
        return bounded, all_bounds, None

    def apply_limits(
        self,
        example: Example,
        piece_counts: list[int] | None,
        n_out: int | None,
        file_index: int,
        line: int,
        overhead: tuple[int, int] = (0, 0),
        bounds: dict[str, int] | None = None,
    ) -> tuple[Example, Problem | None]:
        """Reject or truncate an example over a token limit.

        ``overhead`` is what the chat template adds to the input's and the output's token
        counts (0 in the template format), so the limits count the rendered text. ``bounds``
        holds, for each side whose long text :meth:`bound_long_texts` already cut, a lower
        bound of the side's tokens before that cut.
        """
        bounds = bounds or {}
        settings = self.settings
        path = self.files[file_index]
        n_in = sum(piece_counts) + overhead[0] if piece_counts is not None else None
        n_out = n_out + overhead[1] if n_out is not None else None
        truncate = settings.length_policy == "truncate"
        if n_in is not None and n_in > settings.max_input_tokens:
            cut = self.truncate_input(example, piece_counts, overhead[0]) if truncate else None
            if cut is None:
                how = "" if not truncate else " and cannot be truncated below the system text"
                has = f"more than {n_in - 1}" if "input" in bounds else str(n_in)
                return example, Problem(
                    p.INPUT_TOO_LONG,
                    f"input has {has} tokens, more than max_input_tokens="
                    f"{settings.max_input_tokens}{how}",
                    path,
                    line,
                )
            example = cut
        if "input" in bounds or (n_in is not None and n_in > settings.max_input_tokens):
            self.report.add_truncation(
                "input",
                path,
                line,
                bounds.get("input", n_in or 0),
                settings.max_input_tokens,
                exact="input" not in bounds,
            )
        if n_out is not None and n_out > settings.max_output_tokens:
            if not truncate:
                return example, Problem(
                    p.OUTPUT_TOO_LONG,
                    f"output has {n_out} tokens, more than max_output_tokens="
                    f"{settings.max_output_tokens}",
                    path,
                    line,
                )
            example = {
                **example,
                "output_text": self.counter.keep_first(
                    example["output_text"], settings.max_output_tokens - overhead[1]
                ),
            }
        if "output" in bounds or (n_out is not None and n_out > settings.max_output_tokens):
            self.report.add_truncation(
                "output",
                path,
                line,
                bounds.get("output", n_out or 0),
                settings.max_output_tokens,
                exact="output" not in bounds,
            )
        return example, None

    def truncate_input(
        self, example: Example, piece_counts: list[int], overhead: int = 0
    ) -> Example | None:
        """Drop the oldest context turns (in user/model pairs), then cut the input's start.

        ``overhead`` (the chat template's tokens) is kept out of the budget.
        """
        budget = self.settings.max_input_tokens - overhead
        has_system = "system" in example
        system_tokens = piece_counts[0] if has_system else 0
        context = list(example.get("context", ()))
        context_counts = piece_counts[int(has_system) : len(piece_counts) - 1]
        input_tokens = piece_counts[-1]
        while context and system_tokens + sum(context_counts) + input_tokens > budget:
            context, context_counts = context[2:], context_counts[2:]
        room = budget - system_tokens - sum(context_counts)
        if room < 1:
            return None
        cut = dict(example)
        cut.pop("context", None)
        if context:
            cut["context"] = context
        if input_tokens > room:
            cut["input_text"] = self.counter.keep_last(example["input_text"], room)
            if not has_visible(cut["input_text"]):
                return None
        return cut

    def keep(self, split: str, file_index: int, line: int, examples: list[Example]) -> None:
        """Index and write a record's checked examples."""
        index = self.index[split]
        labels = self.report.labels
        stream = self.output.stream(split) if self.output is not None else None
        for example in examples:
            index.add(example, file_index, line)
            labels.add(example["output_text"])
            if stream is not None:
                stream.write(orjson.dumps(example, option=orjson.OPT_SORT_KEYS) + b"\n")

    # The dataset as a whole -----------------------------------------------------------
    def finish(self) -> dict[str, set[int]]:
        """Duplicates, overlap and counts; returns the example indices to drop per split."""
        limits = {
            "input": self.settings.max_input_tokens,
            "output": self.settings.max_output_tokens,
        }
        for side, (size, pieces) in self.longest.items():
            if size >= 0:
                counts = [self.counter.count_upto(text, limits[side]) for text in pieces]
                exact = all(e for _, e in counts)
                self.report.note_max(side, sum(n for n, _ in counts), exact=exact)
        self.report.lengths = {
            side: s.summary(self.report.max_tokens[side]) for side, s in self.lengths.items()
        }
        for side, summary in self.report.lengths.items():
            summary["max_exact"] = self.report.max_exact[side]
        drops: dict[str, set[int]] = {}
        for split in SPLITS:
            drops[split] = self.find_duplicates(split)
            if split in self.report.records:
                self.report.duplicates[split] = len(drops[split])
        if len(self.index["eval"]):
            drops["eval"] |= self.find_overlap()
        report = self.report
        for split in SPLITS:
            if split in report.records:
                report.examples[split] = len(self.index[split]) - len(drops[split])
        self.check_counts(drops)
        report.dropped = report.invalid_records
        total = sum(report.records.values())
        fraction = report.invalid_records / total if total else 0.0
        limit = self.settings.max_invalid_fraction
        if report.invalid_records and fraction > limit:
            if limit > 0:
                self.fatal(
                    Problem(
                        p.TOO_MANY_INVALID,
                        f"{report.invalid_records} of {total} records are invalid "
                        f"({fraction:.1%}), more than max_invalid_fraction={limit:g}",
                    )
                )
            report.failed_on_records = True
        report.passed = not report.fatal and not report.failed_on_records
        return drops

    def where(self, split: str, k: int) -> tuple[str, int]:
        """File and line of example ``k`` of ``split``."""
        index = self.index[split]
        return self.files[index.files[k]], index.lines[k]

    def find_duplicates(self, split: str) -> set[int]:
        """List every repeat of an earlier example of ``split``; return their indices."""
        keys = np.frombuffer(self.index[split].keys, dtype=np.int64)
        if keys.size < 2:
            return set()
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
        first_of = {}
        dropped = set()
        for position in repeat.tolist():
            k = int(order[position])
            start = position
            while start > 0 and ordered[start - 1] == ordered[position]:
                start -= 1
            first = int(order[start])
            first_of[k] = first
            dropped.add(k)
        for k in sorted(dropped):
            path, line = self.where(split, k)
            first_path, first_line = self.where(split, first_of[k])
            same = first_line if first_path == path else f"{first_path}:{first_line}"
            self.record_problem(
                Problem(p.DUPLICATE, f"exact duplicate of the example at line {same}", path, line)
            )
        return dropped

    def find_overlap(self) -> set[int]:
        """List every eval example whose input is also a training input; return their indices."""
        train = np.frombuffer(self.index["train"].inputs, dtype=np.int64)
        evaluation = np.frombuffer(self.index["eval"].inputs, dtype=np.int64)
        overlapping = np.flatnonzero(np.isin(evaluation, train)).tolist()
        for k in overlapping:
            path, line = self.where("eval", k)
            self.record_problem(
                Problem(
                    p.TRAIN_EVAL_OVERLAP,
                    "the same input is also in the training data",
                    path,
                    line,
                )
            )
        return set(overlapping)

    def check_counts(self, drops: dict[str, set[int]]) -> None:
        """Check min_examples, max_examples and that eval data, when given, kept an example."""
        settings, report = self.settings, self.report
        train = report.examples.get("train", 0)
        if train < settings.min_examples and not report.fatal:
            files = ", ".join(report.sources.get("train", [])) or "train data"
            self.fatal(
                Problem(
                    p.TOO_FEW_EXAMPLES,
                    f"{train} valid training examples, at least min_examples="
                    f"{settings.min_examples} needed",
                    files,
                )
            )
        if "eval" in report.records and report.examples.get("eval", 0) == 0 and not report.fatal:
            files = ", ".join(report.sources.get("eval", []))
            self.fatal(Problem(p.TOO_FEW_EXAMPLES, "no valid eval examples", files))
        if settings.max_examples and train > settings.max_examples:
            kept = [k for k in range(len(self.index["train"])) if k not in drops["train"]]
            path, line = self.where("train", kept[settings.max_examples])
            self.fatal(
                Problem(
                    p.TOO_MANY_EXAMPLES,
                    f"{train} training examples, more than max_examples={settings.max_examples}; "
                    "this is the first one over",
                    path,
                    line,
                )
            )


def as_specs(value: str | Sequence[str] | None) -> list[str]:
    """Source specs from a string (one path, glob or URI) or a list of them."""
    if value is None:
        return []
    specs = [value] if isinstance(value, str) else list(value)
    return [spec for spec in specs if spec.strip()]


def chat_rendering(settings: DataSettings, base_model: str) -> ChatRendering | None:
    """How the chat format renders examples for this base model; None for the template format.

    Raises:
        UserError: If ``data.prompt_format`` is ``chat`` and the tokenizer has no template.
    """
    from adaptune.base_models.builtin_tokenizer import BUILTIN_PREFIX  # no torch import

    if settings.prompt_format == "template" or (
        settings.prompt_format == "auto" and base_model.startswith(BUILTIN_PREFIX)
    ):
        return None
    from adaptune.base_models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(base_model)
    if resolve_prompt_format(settings.prompt_format, tokenizer, base_model) != "chat":
        return None
    return ChatRendering(tokenizer, settings.system_instruction)


def check_dataset(
    train_data: str | Sequence[str],
    eval_data: str | Sequence[str] | None = None,
    settings: DataSettings | None = None,
    base_model: str = DEFAULT_BASE_MODEL,
    counter: TokenCounter | None = None,
    output_dir: Path | None = None,
) -> tuple[ValidationReport, dict[str, Path]]:
    """Check every record of the train (and eval) sources; write the examples if they pass.

    Args:
        train_data: Paths, globs or ``gs://`` URIs of the training data.
        eval_data: The same for eval data; empty or None for none.
        settings: Format, limits and thresholds.
        base_model: The model whose tokenizer counts tokens.
        counter: A ready token counter (saves loading the tokenizer again).
        output_dir: Where ``train.jsonl``, ``eval.jsonl`` (and ``dropped.jsonl``) go when the
            data passes; None to check only. Nothing is written when it fails.

    Returns:
        The report, and the files written (empty when checking only or on failure).
    """
    settings = settings or DataSettings()
    if counter is None:
        from adaptune.base_models.tokenizer import load_fast_tokenizer

        counter = TokenCounter(load_fast_tokenizer(base_model))
    output = StagedOutput(output_dir) if output_dir is not None else None
    scan = DatasetScan(settings, counter, output, chat_rendering(settings, base_model))
    scan.report.base_model = base_model
    try:
        for split, value in (("train", train_data), ("eval", eval_data)):
            specs = as_specs(value)
            if not specs:
                continue
            files, missing = expand_sources(specs)
            for problem in missing:
                scan.fatal(problem)
            for path in files:
                scan.read_file(split, path)
            scan.report.records.setdefault(split, 0)
        drops = scan.finish()
        if output is None or not scan.report.passed:
            return scan.report, {}
        files = output.commit(drops)
        data_files = [files[s] for s in SPLITS if s in files]
        scan.report.data_sha256 = sha256_named_files((p.name, p) for p in data_files)
        return scan.report, files
    finally:
        if output is not None and not scan.report.passed:
            output.discard()


def validate_dataset(
    train_data: str | Sequence[str],
    eval_data: str | Sequence[str] | None,
    output_dir: Path,
    settings: DataSettings | None = None,
    base_model: str = DEFAULT_BASE_MODEL,
    counter: TokenCounter | None = None,
) -> ValidationResult:
    """Check the data and write the normalised examples, or fail naming every problem.

    Args:
        train_data: Paths, globs or ``gs://`` URIs of the training data.
        eval_data: The same for eval data; empty for none (eval is split off later).
        output_dir: Where ``train.jsonl`` (and ``eval.jsonl``, ``dropped.jsonl``) are written.
        settings: Format, limits and thresholds.
        base_model: The model whose tokenizer counts tokens.
        counter: A ready token counter (saves loading the tokenizer again).

    Returns:
        Counts, the data's sha256, the files written and the report.

    Raises:
        DataValidationError: If the data would fail the pipeline; the message names category,
            file and line of the first problems. Nothing is written in that case.
    """
    report, files = check_dataset(
        train_data, eval_data or None, settings, base_model, counter, output_dir
    )
    if not report.passed:
        raise DataValidationError(report.failure_message(), report.first_problems())
    if report.data_sha256 is None:
        raise UserError("validation wrote no data")  # unreachable: passed implies written
    return ValidationResult(
        counts=dict(report.examples),
        data_sha256=report.data_sha256,
        files=files,
        report=report,
    )
