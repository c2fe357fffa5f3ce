"""Counting and cutting tokens with the base model's tokenizer, fast on large data.

Token counts come from the fast (Rust) tokenizer's batch encoder, a chunk at a time. Most texts
need no count at all for the limit checks: a probe at start measures how many more tokens than
UTF-8 bytes this tokenizer can give a text (``slack``; byte-level BPE and SentencePiece give at
most one more), so a text of ``b`` bytes with ``b + slack <= limit`` cannot be over the limit.
Only texts that could be over are counted for the checks; length statistics use a sample.

A long text is counted only as far as its limit needs (:meth:`TokenCounter.count_upto`): its
first characters are tokenised, and once more tokens than the limit are found there the text is
over, whatever follows. Cutting a text to a token budget (:meth:`TokenCounter.keep_first`,
:meth:`TokenCounter.keep_last`) likewise tokenises only the end it keeps. So memory and time
follow the limits, not the length of the longest record.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer

# Texts that stress the bytes-to-tokens bound: expanding normalisers, combining marks, emoji,
# scripts without spaces, control and zero-width characters, long runs.
PROBES = (
    "a",
    " ",
    "\n",
    "\t \t",
    "\ufdfa",
    "\ufb01",
    "\u0390",
    "e\u0301",
    "\U0001f600\U0001f469\u200d\U0001f4bb",
    "日本語のテキスト",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u200b\u200e\ufeff",
    "\x00\x01\x7f",
    "ǅİß",
    "1234567890",
    "    x",
    "a b c d e f g",
    "\u00a0\u2028\u3000",
)
MAX_USABLE_SLACK = 4
BYTE_LENGTH_BLOCK = 1 << 20
WHOLE_TEXT_CHARS = 1 << 16
"""Texts up to this many characters (or 16 per token of the limit) are tokenised whole."""
LOOKAHEAD_CHARS = 1024
"""A token found in a text's first characters is taken as one of the whole text's only when
the same tokens come out with this many more characters after them (see :meth:`count_upto`)."""


def byte_length(text: str) -> int:
    """UTF-8 length of ``text`` (without encoding ASCII text, a block at a time otherwise)."""
    if text.isascii():
        return len(text)
    if len(text) <= BYTE_LENGTH_BLOCK:
        return len(text.encode("utf-8"))
    return sum(
        len(text[i : i + BYTE_LENGTH_BLOCK].encode("utf-8"))
        for i in range(0, len(text), BYTE_LENGTH_BLOCK)
    )


def whole_text_chars(limit: int) -> int:
    """Characters up to which a text is tokenised whole when checked against ``limit``."""
    return max(WHOLE_TEXT_CHARS, 16 * (limit + 1))


class TokenCounter:
    """Token counts and truncation with one tokenizer (no special tokens added).

    Attributes:
        tokenizer: The Rust tokenizer (``tokenizers.Tokenizer``).
        slack: Most extra tokens over a text's UTF-8 bytes seen on the probes, or None when
            the bound does not hold for this tokenizer (then every text is counted).
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        extra = [n - byte_length(t) for t, n in zip(PROBES, self.count(list(PROBES)), strict=True)]
        self.slack: int | None = max(0, *extra) if max(extra) <= MAX_USABLE_SLACK else None

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts``, encoded as one batch."""
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [len(e) for e in encodings]

    def count_upto(self, text: str, limit: int) -> tuple[int, bool]:
        """The tokens of ``text``, counted only as far as ``limit`` needs.

        Returns:
            ``(n, True)``: the text has exactly ``n`` tokens; or ``(n, False)``: it has at
            least ``n`` tokens, more than ``limit`` (the rest was not tokenised).

        A text of at most :func:`whole_text_chars` characters is counted whole. A longer one
        is tokenised a prefix at a time (growing four-fold): the tokens on which a prefix and
        the same prefix with ``LOOKAHEAD_CHARS`` more characters agree are tokens of the whole
        text. That holds for tokenizers that split text into words or pieces before their
        model (byte-level BPE, SentencePiece's metaspace, WordPiece), where a token depends on
        the characters near it only; a tokenizer whose tokens do not settle within the
        lookahead gives disagreeing prefixes, and the prefix grows until the text is counted
        whole. So the count is exact, or a lower bound that is itself over the limit.
        """
        size = whole_text_chars(limit)
        while size < len(text):
            settled = self._settled_prefix(text, size)
            if len(settled) > limit:
                return len(settled), False
            size *= 4
        return self.count([text])[0], True

    def _settled_prefix(self, text: str, size: int) -> list[tuple[int, tuple[int, int]]]:
        """The tokens of ``text[:size]`` that ``LOOKAHEAD_CHARS`` more characters keep."""
        encode = self.tokenizer.encode
        short = encode(text[:size], add_special_tokens=False)
        longer = encode(text[: size + LOOKAHEAD_CHARS], add_special_tokens=False)
        tokens = list(zip(short.ids, short.offsets, strict=True))
        agreed = 0
        for token, other in zip(tokens, zip(longer.ids, longer.offsets, strict=True), strict=False):
            if token != other:
                break
            agreed += 1
        return tokens[:agreed]

    def _settled_suffix(self, text: str, size: int) -> list[tuple[int, int]]:
        """Offsets (in ``text``) of the tokens of its last ``size`` characters that settled."""
        encode = self.tokenizer.encode
        start = len(text) - size
        short = encode(text[start:], add_special_tokens=False)
        wider = max(0, start - LOOKAHEAD_CHARS)
        longer = encode(text[wider:], add_special_tokens=False)
        mine = [
            (i, (a + start, b + start)) for i, (a, b) in zip(short.ids, short.offsets, strict=True)
        ]
        theirs = [
            (i, (a + wider, b + wider))
            for i, (a, b) in zip(longer.ids, longer.offsets, strict=True)
        ]
        agreed = 0
        for token, other in zip(reversed(mine), reversed(theirs), strict=False):
            if token != other:
                break
            agreed += 1
        return [offsets for _, offsets in mine[len(mine) - agreed :]]

    def may_exceed(self, n_bytes: int, limit: int) -> bool:
        """Whether a text of ``n_bytes`` UTF-8 bytes could have more than ``limit`` tokens."""
        return self.slack is None or n_bytes + self.slack > limit

    def keep_first(self, text: str, n: int) -> str:
        """The longest prefix of ``text`` with at most ``n`` tokens.

        A long text is tokenised only as far as the cut needs (see :meth:`count_upto`).
        """
        if n <= 0:
            return ""
        size = whole_text_chars(n)
        while size < len(text):
            settled = self._settled_prefix(text, size)
            if len(settled) > n:
                return self._cut(text[: settled[n][1][0]], n, keep_end=False)
            size *= 4
        return self._cut(text, n, keep_end=False)

    def keep_last(self, text: str, n: int) -> str:
        """The longest suffix of ``text`` with at most ``n`` tokens.

        A long text is tokenised only from its end, as far as the cut needs.
        """
        if n <= 0:
            return ""
        size = whole_text_chars(n)
        while size < len(text):
            settled = self._settled_suffix(text, size)
            if len(settled) > n:
                return self._cut(text[settled[-n - 1][1] :], n, keep_end=True)
            size *= 4
        return self._cut(text, n, keep_end=True)

    def _cut(self, text: str, n: int, keep_end: bool) -> str:
        """The cut of ``text`` (tokenised whole) to at most ``n`` tokens, checked by counting."""
        if n <= 0:
            return ""
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        while n > 0:
            if len(offsets) <= n:
                return text
            cut = text[offsets[-n][0] :] if keep_end else text[: offsets[n - 1][1]]
            if self.count([cut])[0] <= n:
                return cut
            n -= 1  # re-encoding the cut text merged differently; take one token less
        return ""
