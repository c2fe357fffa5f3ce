"""Reading records one at a time from JSONL, CSV and Parquet streams, with their line numbers.

Readers yield ``(line, value)``: the parsed record, or a :class:`RecordProblem` when the line
cannot be read. Nothing is held beyond the current block, so memory does not grow with the file.
A UTF-8 byte order mark and CRLF line ends are tolerated; blank lines are skipped.

Nor does memory grow past one record: a line is read into one buffer of its own size (a long
one is measured first, then read once), and one over ``MAX_RECORD_BYTES`` is skipped without
being held (``record_too_large``), as is a CSV record (lines of a quoted field) or a Parquet
cell over it. A long CSV record is parsed by :mod:`adaptune.data.csv_parsing` at about one
byte per byte instead of the csv module's four per character.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import orjson

from adaptune.data.csv_parsing import RecordParser
from adaptune.data.problems import (
    MISSING_FIELD,
    NOT_JSON,
    NOT_UTF8,
    RECORD_TOO_LARGE,
    UNREADABLE_FILE,
    RecordProblem,
)

BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 4096
MAX_RECORD_BYTES = 64 << 20
"""The most bytes one record (a JSONL line, a CSV row's line or field, a Parquet cell) may have."""
LINE_BLOCK = 1 << 20
LONG_RECORD_BYTES = 1 << 20
"""CSV rows whose lines reach this many bytes are read by our own parser (the csv module
would hold four bytes per character of a field)."""


def too_large(size: int | None = None, how: str = "skipped unread") -> RecordProblem:
    """The problem of a record over ``MAX_RECORD_BYTES``."""
    what = f"{size:,} bytes" if size is not None else "more bytes"
    return RecordProblem(
        RECORD_TOO_LARGE,
        f"the record has {what}, more than the {MAX_RECORD_BYTES:,} a record may have ({how})",
    )


def read_lines(stream: IO[bytes], limit: int | None = None) -> Iterator[bytes | int]:
    """Each line of ``stream`` (with its line end), or its size when over ``limit`` bytes.

    ``limit`` defaults to ``MAX_RECORD_BYTES``.

    A line shorter than ``LINE_BLOCK`` is read at once; a longer one is measured to its end
    and, when it fits, read again in one buffer of its size (from a seekable stream), so one
    line costs one copy of itself, and a line over the limit none.
    """
    limit = MAX_RECORD_BYTES if limit is None else limit
    readline = stream.readline
    seekable = stream.seekable()
    while True:
        raw = readline(LINE_BLOCK)
        if not raw:
            return
        if len(raw) < LINE_BLOCK or raw.endswith(b"\n"):
            yield raw
            continue
        start = stream.tell() - len(raw) if seekable else 0
        parts: list[bytes] | None = None if seekable else [raw]
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = readline(LINE_BLOCK)
            if not raw:
                break
            size += len(raw)
            if parts is not None:
                parts.append(raw)
                if size > limit + 1:
                    parts = None  # not seekable and too large: keep nothing more
        content = size - 1 if raw.endswith(b"\n") else size
        del raw
        if content > limit:
            yield content
        elif seekable:
            stream.seek(start)
            yield stream.read(size)  # read to where the measuring stopped; held by no frame
        elif parts is not None:
            yield b"".join(parts)
            parts = None


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
    for number, raw in enumerate(read_lines(stream), start=1):
        if isinstance(raw, int):
            yield number, too_large(raw)
            continue
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        try:
            value = loads(raw)
        except decode_error as exc:
            if raw.strip():
                yield number, bad_line(raw, exc)
            continue
        del raw  # the record is held once, parsed, while the caller checks it
        yield number, value


class CsvLines:
    """The lines a ``csv.reader`` parses, decoded, with the long records it must not parse.

    A row whose lines reach :func:`long_record_bytes` characters is parsed by a
    :class:`~adaptune.data.csv_parsing.RecordParser` instead (the same fields at a quarter of
    the memory), as is a row starting with a line over ``MAX_RECORD_BYTES`` (its problem): the
    reader is handed an empty line (or a closing quote for the field it is in) and ``special``
    holds the fields or the problem. The consumer sets ``row_start`` before asking the reader
    for each row; ``number`` counts the lines read, those of long records included.
    """

    def __init__(self, stream: IO[bytes]):
        self.lines = read_lines(stream)
        self.number = 0
        self.row_start = True
        self.special: RecordProblem | list[str] | None = None
        self.row: list[str] = []  # the lines of the row the reader is on
        self.row_bytes = 0

    def __iter__(self) -> CsvLines:
        return self

    def next_line(self) -> tuple[str | int | None, int]:
        """The next line decoded (or its size, when over the limit) and its size in bytes.

        None at the end of the input.
        """
        raw = next(self.lines, None)
        if raw is None:
            return None, 0
        self.number += 1
        if isinstance(raw, int):
            return raw, raw
        if self.number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        try:
            return raw.decode("utf-8"), len(raw)
        except UnicodeDecodeError as err:
            raise FileProblem(
                NOT_UTF8, f"not valid UTF-8 ({err.reason} at byte {err.start})", self.number
            ) from None

    def over_line(self, size: int) -> FileProblem:
        """The problem of a quoted field that goes on over a line too large to read."""
        return FileProblem(
            RECORD_TOO_LARGE,
            f"a quoted field goes on over a line of {size:,} bytes, more than the "
            f"{MAX_RECORD_BYTES:,} a record may have; the CSV cannot be followed past it",
            self.number,
        )

    def __next__(self) -> str:
        row_start, self.row_start = self.row_start, False
        text, size = self.next_line()
        if text is None:
            raise StopIteration
        if isinstance(text, int):
            if not row_start:
                raise self.over_line(text)
            self.special = too_large(text)
            return "\n"
        if row_start:
            self.row, self.row_bytes = [], 0
        if size + self.row_bytes < long_record_bytes():
            self.row.append(text)
            self.row_bytes += size
            return text
        lines, self.row = [*self.row, text], []
        del text
        self.special = self.long_record(lines, self.row_bytes + size)
        # The reader is at a row start, or inside a quoted field: end its row; it is not used.
        return "\n" if row_start else '"\n'

    def long_record(self, lines: list[str], size: int) -> list[str] | RecordProblem:
        """The fields of the record that starts with ``lines`` (``size`` bytes), read on.

        A record over ``MAX_RECORD_BYTES`` is followed to its end without being held.
        """
        parser = RecordParser()
        limit = MAX_RECORD_BYTES
        if size > limit + 1:
            parser.drop()
        done = False
        for line in lines:
            done = parser.feed(line)
        ends_line = lines[-1].endswith("\n")
        lines.clear()
        source, feed = self.lines, parser.feed
        while not done:  # the lines of a quoted field: one pass each, as few steps as can be
            raw = next(source, None)
            if raw is None:
                break
            self.number += 1
            if isinstance(raw, int):
                raise self.over_line(raw)
            size += len(raw)
            if size > limit + 1 and parser.hold:
                parser.drop()
            try:
                done = feed(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise FileProblem(
                    NOT_UTF8, f"not valid UTF-8 ({err.reason} at byte {err.start})", self.number
                ) from None
            ends_line = raw.endswith(b"\n")
            del raw
        fields = parser.fields if done else parser.finish()
        content = size - int(ends_line)
        if content > limit or not parser.hold:
            return too_large(content, "skipped: its quotes were followed, its text not kept")
        return fields if fields is not None else []


def long_record_bytes() -> int:
    """Bytes from which a CSV row is read by :class:`RecordParser` (never over the limit)."""
    return min(LONG_RECORD_BYTES, MAX_RECORD_BYTES)


def csv_records(stream: IO[bytes], columns: tuple[str, ...]) -> Iterator[tuple[int, Any]]:
    """Each row of a CSV stream (with a header row) as a dict of the wanted columns.

    A row with more than ``MAX_RECORD_BYTES`` (a line, or lines of a quoted field) is a
    ``record_too_large`` problem, and the rows after it are read on.

    Raises:
        FileProblem: When a line is not UTF-8 or not CSV (the CSV cannot be followed past
            it), the header lacks a wanted column, or a quoted field goes on over a line too
            large to read.
    """
    if csv.field_size_limit() != MAX_RECORD_BYTES:
        csv.field_size_limit(MAX_RECORD_BYTES)
    feed = CsvLines(stream)
    reader = csv.reader(feed)

    def next_row() -> list[str] | RecordProblem | None:
        feed.row_start = True
        row = next(reader, None)
        special, feed.special = feed.special, None
        return special if special is not None else row

    try:
        header = next_row()
        if header is None:
            return
        if isinstance(header, RecordProblem):
            raise FileProblem(header.category, f"the header row: {header.message}", 1)
        missing = [c for c in columns if c not in header]
        if missing:
            raise FileProblem(
                MISSING_FIELD,
                f"missing column(s) {missing} in the header; it has {header}",
                1,
            )
        index = {c: header.index(c) for c in columns}
        start = feed.number + 1
        while (row := next_row()) is not None:
            line, start = start, feed.number + 1
            if isinstance(row, RecordProblem):
                yield line, row
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            yield line, {c: row[i] if i < len(row) else None for c, i in index.items()}
            del row
    except csv.Error as exc:
        raise FileProblem(UNREADABLE_FILE, f"not valid CSV ({exc})", feed.number) from None


def parquet_records(stream: IO[bytes], columns: tuple[str, ...]) -> Iterator[tuple[int, Any]]:
    """Each row of a Parquet stream as a dict of the wanted columns (row numbers from 1).

    Only the wanted columns are read, a row group at a time and in it a batch at a time; a
    batch is made Python objects and let go before its rows are handed on, and so is the
    group's reader (the pages and dictionary it holds) after the group's last batch. Arrow
    reads through the system allocator, which gives a large buffer back to the operating
    system as soon as it is freed (Arrow's default allocator keeps freed pages), and cell
    sizes come from the offsets of the Arrow arrays (not ``pyarrow.compute``, whose first call
    costs about 40 MB): one 50 MB cell costs its decoded copies once, not on top of what the
    validator does with its text.

    Raises:
        FileProblem: When the file is not Parquet or lacks a wanted column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with arrow_memory_pool(pa.system_memory_pool()):  # the reader keeps the pool it opens with
            parquet = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as exc:
        raise FileProblem(UNREADABLE_FILE, f"not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise FileProblem(MISSING_FIELD, f"missing column(s) {missing}; the file has {names}")
    number = 0
    try:
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            batches = parquet.iter_batches(
                batch_size=PARQUET_BATCH_ROWS,
                row_groups=[group],
                columns=list(columns),
                use_threads=False,
            )
            while rows > 0 and (batch := next(batches, None)) is not None:
                rows -= batch.num_rows
                if rows <= 0:  # the group's last batch: let the reader's pages go now
                    del batches
                large = oversized_rows(batch, columns)
                values = [cells(batch.column(c), large) for c in columns]
                del batch
                for index, row in enumerate(zip(*values, strict=True)):
                    number += 1
                    if index in large:
                        yield number, too_large(large[index])
                    else:
                        yield number, dict(zip(columns, row, strict=True))
                    del row
                del values
    except (pa.ArrowException, OSError) as exc:
        raise FileProblem(UNREADABLE_FILE, f"Parquet read failed ({exc})", number + 1) from None


@contextmanager
def arrow_memory_pool(pool: Any) -> Iterator[None]:
    """Make ``pool`` Arrow's default memory pool for the duration of the block."""
    import pyarrow as pa

    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def value_sizes(array: Any) -> Any:
    """Bytes of each value of an Arrow string or binary array (numpy), or None for other types.

    A dictionary array gives its values' sizes per row; a null has size 0.
    """
    import numpy as np
    import pyarrow as pa

    kind = array.type
    if pa.types.is_dictionary(kind):
        sizes = value_sizes(array.dictionary)
        if sizes is None:
            return None
        indices = array.indices
        if indices.null_count:
            return np.array([0 if i is None else sizes[i] for i in indices.to_pylist()])
        return sizes[indices.to_numpy()] if len(sizes) else np.zeros(len(array), np.int64)
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        width = np.int32
    elif pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        width = np.int64
    else:
        return None
    offsets = np.frombuffer(
        array.buffers()[1],
        dtype=width,
        count=len(array) + 1,
        offset=array.offset * np.dtype(width).itemsize,
    )
    return np.diff(offsets)


def oversized_rows(batch: Any, columns: tuple[str, ...]) -> dict[int, int]:
    """Rows of a Parquet batch with a text or binary cell over ``MAX_RECORD_BYTES``: its size."""
    import numpy as np

    large: dict[int, int] = {}
    for name in columns:
        sizes = value_sizes(batch.column(name))
        if sizes is None:
            continue
        for index in np.flatnonzero(sizes > MAX_RECORD_BYTES).tolist():
            large[index] = max(large.get(index, 0), int(sizes[index]))
    return large


def cells(column: Any, skipped: dict[int, int]) -> list[Any]:
    """A Parquet column's values as Python objects, None in the ``skipped`` rows."""
    if not skipped:
        return column.to_pylist()
    return [None if i in skipped else column[i].as_py() for i in range(len(column))]
