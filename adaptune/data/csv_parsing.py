"""One CSV record parsed like Python's ``csv.reader``, at about one byte per byte of the record.

``csv.reader`` builds each field in a buffer of four bytes per character, so one 50 MB field
costs 200 MB before it is a string. :class:`RecordParser` reads a record the same way, a line at
a time, but takes its fields as slices of the lines, found by regular expressions: no Python
work per character, and a field costs about its own size. It is used for long records only
(see :mod:`adaptune.data.records`); every other row is read by the csv module.

It follows the reader's state machine (CPython's ``Modules/_csv.c``) for the dialect adaptune
reads: delimiter ``,``, quote ``"`` (doubled inside a quoted field), no escape character,
``strict`` off. So it gives the same fields on the same lines: a quote inside an unquoted field
is a character, text after a closing quote joins the field, a quoted field goes on over line
ends, an unfinished one at the end of the input is a field, and a carriage return that ends a
field in the middle of a line raises the same ``csv.Error``.
"""

from __future__ import annotations

import csv
import re


def _newline_error() -> str:
    """The csv module's own message for a line end inside an unquoted field."""
    try:
        list(csv.reader(["a\rb\n"]))
    except csv.Error as exc:
        return str(exc)
    return "new-line character seen in unquoted field"  # pragma: no cover


NEWLINE_ERROR = _newline_error()

START_RECORD, START_FIELD, IN_FIELD, IN_QUOTED_FIELD, QUOTE_IN_QUOTED_FIELD, EAT_CRNL = range(6)
UNQUOTED = re.compile(r"[^,\r\n]*+")
"""The rest of an unquoted field (up to a delimiter or a line end)."""
QUOTED = re.compile(r'[^"]*+(?:""[^"]*+)*+')
"""The rest of a quoted field's text up to its closing quote (possessive: no backtracking
state is kept, whatever the number of doubled quotes)."""
CHUNK_CHARS = 1 << 20
CHUNK_PIECES = 4096


class RecordParser:
    """The fields of one CSV record, fed a line at a time.

    Attributes:
        fields: The fields saved so far (all of them once :meth:`feed` returned True).
        hold: False once :meth:`drop` was called: the text is then followed but not kept.
    """

    def __init__(self) -> None:
        self.fields: list[str] = []
        self.hold = True
        self.state = START_RECORD
        self.started = False
        self._chunks: list[str] = []
        self._pieces: list[str] = []
        self._pending = 0

    def drop(self) -> None:
        """Keep nothing more of this record (it is too large); go on following its quotes."""
        self.hold = False
        self.fields = []
        self._chunks = []
        self._pieces = []

    def _add(self, piece: str) -> None:
        if not self.hold or not piece:
            return
        pieces = self._pieces
        pieces.append(piece)
        self._pending += len(piece)
        if self._pending >= CHUNK_CHARS or len(pieces) >= CHUNK_PIECES:
            # Many short pieces (a field over many lines) would cost an object each.
            self._chunks.append("".join(pieces))
            self._pieces = []
            self._pending = 0

    def _save(self) -> None:
        if self.hold:
            chunks = self._chunks
            chunks.extend(self._pieces)
            self.fields.append("".join(chunks))
        self._chunks = []
        self._pieces = []
        self._pending = 0

    def feed(self, line: str) -> bool:
        """Read one line (with its line end, if any) and then the end of that line.

        Returns:
            True when the record is complete (:attr:`fields` holds it), False when a quoted
            field goes on over the line end and the record needs the next line.

        Raises:
            csv.Error: Where the csv module raises: a character after a carriage return or
                line feed that ended an unquoted field or a record within the line.
        """
        self.started = True
        state = self.state
        if state == IN_QUOTED_FIELD and '"' not in line:  # a quoted field's middle line
            self._add(line)
            return False
        pos = 0
        n = len(line)
        while pos < n:
            if state == IN_QUOTED_FIELD:
                end = QUOTED.match(line, pos).end()  # type: ignore[union-attr]
                piece = line[pos:end]
                self._add(piece.replace('""', '"') if '""' in piece else piece)
                del piece
                if end < n:  # the closing quote
                    state = QUOTE_IN_QUOTED_FIELD
                    end += 1
                pos = end
                continue
            if state == IN_FIELD:
                end = UNQUOTED.match(line, pos).end()  # type: ignore[union-attr]
                self._add(line[pos:end])
                pos = end
                if pos < n:
                    self._save()
                    state = START_FIELD if line[pos] == "," else EAT_CRNL
                    pos += 1
                continue
            char = line[pos]
            if state == START_RECORD:
                if char in "\r\n":
                    state = EAT_CRNL
                    pos += 1
                    continue
                state = START_FIELD
            if state == START_FIELD:
                if char in "\r\n":
                    self._save()
                    state = EAT_CRNL
                    pos += 1
                elif char == '"':
                    state = IN_QUOTED_FIELD
                    pos += 1
                elif char == ",":
                    self._save()
                    pos += 1
                else:
                    state = IN_FIELD
            elif state == QUOTE_IN_QUOTED_FIELD:
                # Not a quote: QUOTED stops only before a quote that is not doubled.
                if char == ",":
                    self._save()
                    state = START_FIELD
                    pos += 1
                elif char in "\r\n":
                    self._save()
                    state = EAT_CRNL
                    pos += 1
                else:
                    state = IN_FIELD  # text after the closing quote joins the field
            elif char in "\r\n":  # EAT_CRNL
                pos += 1
            else:
                self.state = state
                raise csv.Error(NEWLINE_ERROR)
        # The end of the line.
        if state == IN_QUOTED_FIELD:
            self.state = state
            return False
        if state in (START_FIELD, IN_FIELD, QUOTE_IN_QUOTED_FIELD):
            self._save()
        self.state = START_RECORD
        return True

    def finish(self) -> list[str] | None:
        """At the end of the input: the fields of an unfinished record, as the reader gives them.

        The csv module returns a record cut off inside a quoted field with that field as it
        stands; a record that never started is no record (None).
        """
        if not self.started:
            return None
        if self.state == IN_QUOTED_FIELD:
            self._save()
        self.state = START_RECORD
        return self.fields
