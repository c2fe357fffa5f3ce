"""Reading records one at a time from JSONL, CSV and Parquet streams, with their line numbers.

Readers yield ``(line, value)``: the parsed record, or a :class:`RecordProblem` when the line
cannot be read. Nothing is held beyond the current block, so memory does not grow with the file.
A UTF-8 byte order mark and CRLF line ends are tolerated; blank lines are skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

import orjson

from adaptune.data.problems import (
    MISSING_FIELD,
    NOT_JSON,
    NOT_UTF8,
    UNREADABLE_FILE,
    RecordProblem,
)

BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 4096


class FileProblem(Exception):
    """The rest of a file cannot be read (a fatal problem at ``line``)."""

    def __init__(self, category: str, message: str, line: int = 0):
        super().__init__(message)
        self.category = category
        self.message = message
        self.line = line


def bad_line(raw: bytes, exc: Exception) -> RecordProblem:
    """Why a line is not a JSON value: not UTF-8, or not JSON."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return RecordProblem(NOT_UTF8, f"not valid UTF-8 ({err.reason} at byte {err.start})")
    return RecordProblem(NOT_JSON, f"not valid JSON ({exc})")


def jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of a JSONL stream, parsed with orjson (NaN is not JSON)."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        try:
            yield number, loads(raw)
        except decode_error as exc:
            if raw.strip():
                yield number, bad_line(raw, exc)


def csv_records(stream: IO[bytes], columns: tuple[str, ...]) -> Iterator[tuple[int, Any]]:
    """Each row of a CSV stream (with a header row) as a dict of the wanted columns.

    Raises:
        FileProblem: When a line is not UTF-8 (the CSV cannot be followed past it) or the
            header lacks a wanted column.
    """
    position = {"line": 0}

    def lines() -> Iterator[str]:
        for number, raw in enumerate(stream, start=1):
            position["line"] = number
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise FileProblem(
                    NOT_UTF8, f"not valid UTF-8 ({err.reason} at byte {err.start})", number
                ) from None

    reader = csv.reader(lines())
    try:
        header = next(reader, None)
        if header is None:
            return
        missing = [c for c in columns if c not in header]
        if missing:
            raise FileProblem(
                MISSING_FIELD,
                f"missing column(s) {missing} in the header; it has {header}",
                1,
            )
        index = {c: header.index(c) for c in columns}
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            yield line, {c: row[i] if i < len(row) else None for c, i in index.items()}
    except csv.Error as exc:
        raise FileProblem(UNREADABLE_FILE, f"not valid CSV ({exc})", position["line"]) from None


def parquet_records(stream: IO[bytes], columns: tuple[str, ...]) -> Iterator[tuple[int, Any]]:
    """Each row of a Parquet stream as a dict of the wanted columns (row numbers from 1).

    Raises:
        FileProblem: When the file is not Parquet or lacks a wanted column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as exc:
        raise FileProblem(UNREADABLE_FILE, f"not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise FileProblem(MISSING_FIELD, f"missing column(s) {missing}; the file has {names}")
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(columns)):
            values = [batch.column(c).to_pylist() for c in columns]
            for row in zip(*values, strict=True):
                number += 1
                yield number, dict(zip(columns, row, strict=True))
    except (pa.ArrowException, OSError) as exc:
        raise FileProblem(UNREADABLE_FILE, f"Parquet read failed ({exc})", number + 1) from None
