"""The parser for long CSV records gives what the csv module gives, on every case.

``adaptune.data.csv_parsing.RecordParser`` reads the rows of a CSV file whose lines reach
``records.LONG_RECORD_BYTES`` (the csv module would hold four bytes per character of a field).
Here the threshold is lowered so that every row, or every row from its second line on, goes
through it, and the rows, problems, line numbers and errors are compared with the csv module's:
on a set of tricky rows, on random text, through ``csv_records`` and through
``adaptune validate``. The same comparison at a few megabytes, and the memory of one 50 MB
quoted field, are in ``test_data_hostile.py``.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest
from hostile import invoke, tree

from adaptune.data import csv_parsing, records
from adaptune.data.csv_parsing import RecordParser
from adaptune.data.problems import RecordProblem
from adaptune.data.records import FileProblem, csv_records

pytestmark = pytest.mark.hostile

HEADER = "input_text,output_text\n"
TRICKY: dict[str, str] = {
    "plain": "a,b\n",
    "quoted comma": '"a,b",c\n',
    "doubled quotes": '"he said ""hi""",x\n',
    "only doubled quotes": '"""""",x\n',
    "three quotes in a row": '"a""""b",c\n',
    "empty quoted": '"",x\n',
    "empty fields": ",,\n",
    "trailing comma": "a,\n",
    "leading comma": ",a\n",
    "quote inside unquoted": 'ab"c,d\n',
    "text after closing quote": '"ab"cd,e\n',
    "quotes after closing quote": '"a"b"c,d\n',
    "space before quote": ' "a",b\n',
    "space after closing quote": '"a" ,b\n',
    "embedded newline": '"line one\nline two",x\n',
    "embedded CRLF": '"one\r\ntwo",x\r\n',
    "CRLF rows": "a,b\r\nc,d\r\n",
    "CR CR LF": "a,b\r\r\n",
    "bare CR in quotes": '"a\rb",c\n',
    "bare CR unquoted": "a\rb,c\n",
    "CR after closing quote": '"a"\rb\n',
    "CR then LF after quote": '"x"\r\n',
    "CR before a field": "a,\rb\n",
    "line of CRs": "\r\r\r\n",
    "blank lines": "a,b\n\n\nc,d\n",
    "whitespace line": "   \n",
    "unterminated quote": '"abc,def\n',
    "unterminated over lines": '"abc\ndef\n',
    "lone quote": '"\n',
    "quote newline quote": '"\n"\n',
    "doubled quote before line end": '"a""\nb",c\n',
    "no final line end": "a,b",
    "quoted without final line end": '"a,b"',
    "quote closing at line end": '"a"\n"b"\n',
    "many short lines in a quote": '"' + "x\n" * 40 + '",y\n',
    "NUL characters": 'a\x00b,"\x00"\n',
    "non-ASCII": '"héllo, wörld 😀",ü\n',
    "many fields": ",".join(f"f{i}" for i in range(50)) + "\n",
    "short row": "only\n",
    "quoted then unquoted rows": '"q ""1""",a\nq2,"b\nc"\nq3,c\n',
}
ALPHABET = ["a", "b", ",", ",", '"', '"', '"', "\n", "\n", "\r", " ", "\x00", "é", "😀"]


def reader_rows(lines: list[str]) -> tuple[list[list[str]], str | None]:
    """The csv module's rows of ``lines``, and its error, if any."""
    rows: list[list[str]] = []
    try:
        rows.extend(csv.reader(lines))
    except csv.Error as exc:
        return rows, str(exc)
    return rows, None


def parser_rows(lines: list[str]) -> tuple[list[list[str]], str | None]:
    """The same with one :class:`RecordParser` per record."""
    rows: list[list[str] | None] = []
    pending = iter(lines)
    try:
        for line in pending:
            parser = RecordParser()
            done = parser.feed(line)
            while not done:
                following = next(pending, None)
                if following is None:
                    break
                done = parser.feed(following)
            rows.append(parser.fields if done else parser.finish())
    except csv.Error as exc:
        return rows, str(exc)  # type: ignore[return-value]
    return rows, None  # type: ignore[return-value]


def lines_of(text: str) -> list[str]:
    return text.splitlines(keepends=True) if "\r" not in text else split_at_newlines(text)


def split_at_newlines(text: str) -> list[str]:
    """Lines ended by ``\\n`` only, as adaptune reads them (a ``\\r`` stays in its line)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    return lines + ([parts[-1]] if parts[-1] else [])


def random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ALPHABET, k=rng.randint(0, 30))) for _ in range(count)]


def read_all(text: str, monkeypatch, threshold: int | None) -> list[tuple]:
    """Every ``(line, value)`` of ``csv_records`` (problems as tuples), then a fatal problem."""
    if threshold is not None:
        monkeypatch.setattr(records, "LONG_RECORD_BYTES", threshold)
    out: list[tuple] = []
    try:
        for line, value in csv_records(io.BytesIO(text.encode()), ("input_text", "output_text")):
            if isinstance(value, RecordProblem):
                value = (value.category, value.message)
            out.append((line, value))
    except FileProblem as problem:
        out.append(("fatal", problem.category, problem.message, problem.line))
    monkeypatch.undo()
    return out


@pytest.mark.parametrize("name", list(TRICKY))
def test_the_parser_gives_the_csv_module_rows(name):
    lines = split_at_newlines(TRICKY[name])
    assert parser_rows(lines) == reader_rows(lines)


@pytest.mark.parametrize("seed", range(4))
def test_the_parser_gives_the_csv_module_rows_on_random_text(seed, monkeypatch):
    # Tiny chunks, so that the joining of a field's pieces is exercised too.
    monkeypatch.setattr(csv_parsing, "CHUNK_CHARS", 3)
    monkeypatch.setattr(csv_parsing, "CHUNK_PIECES", 2)
    for text in random_texts(1500, seed):
        lines = split_at_newlines(text)
        assert parser_rows(lines) == reader_rows(lines), repr(text)


@pytest.mark.parametrize("threshold", [1, 12])
@pytest.mark.parametrize("name", list(TRICKY))
def test_csv_records_are_the_same_through_the_long_record_parser(name, threshold, monkeypatch):
    text = HEADER + TRICKY[name]
    made: list[RecordParser] = []

    class Counted(RecordParser):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(records, "RecordParser", Counted)
    expected = read_all(text, monkeypatch, None)
    assert not made
    monkeypatch.setattr(records, "RecordParser", Counted)
    assert read_all(text, monkeypatch, threshold) == expected
    if threshold == 1:
        assert made  # the rows went through the parser


@pytest.mark.parametrize("seed", range(3))
def test_csv_records_are_the_same_on_random_text(seed, monkeypatch):
    for body in random_texts(600, seed):
        text = HEADER + body
        expected = read_all(text, monkeypatch, None)
        for threshold in (1, 8):
            assert read_all(text, monkeypatch, threshold) == expected, (repr(body), threshold)


def validate_output(path: Path) -> tuple[int, str]:
    before = tree(path.parent)
    result = invoke("validate", str(path), "--data", '{"min_examples": 1}')
    assert tree(path.parent) == before, "validate changed files"
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}") from result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("name", list(TRICKY))
def test_validate_reports_the_same_through_the_long_record_parser(tmp_path, name, monkeypatch):
    data = tmp_path / "data" / "train.csv"
    data.parent.mkdir()
    data.write_bytes((HEADER + TRICKY[name] + "last,row\n").encode())
    expected = validate_output(data)
    assert expected[0] in (0, 1), expected[1]
    monkeypatch.setattr(records, "LONG_RECORD_BYTES", 1)
    assert validate_output(data) == expected
