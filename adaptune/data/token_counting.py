"""Counting and cutting tokens with the base model's tokenizer, fast on large data.

Token counts come from the fast (Rust) tokenizer's batch encoder, a chunk at a time. Most texts
need no count at all for the limit checks: a probe at start measures how many more tokens than
UTF-8 bytes this tokenizer can give a text (``slack``; byte-level BPE and SentencePiece give at
most one more), so a text of ``b`` bytes with ``b + slack <= limit`` cannot be over the limit.
Only texts that could be over are counted for the checks; length statistics use a sample.
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


def byte_length(text: str) -> int:
    """UTF-8 length of ``text`` (without encoding ASCII text)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


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

    def may_exceed(self, n_bytes: int, limit: int) -> bool:
        """Whether a text of ``n_bytes`` UTF-8 bytes could have more than ``limit`` tokens."""
        return self.slack is None or n_bytes + self.slack > limit

    def keep_first(self, text: str, n: int) -> str:
        """The longest prefix of ``text`` with at most ``n`` tokens."""
        return self._cut(text, n, keep_end=False)

    def keep_last(self, text: str, n: int) -> str:
        """The longest suffix of ``text`` with at most ``n`` tokens."""
        return self._cut(text, n, keep_end=True)

    def _cut(self, text: str, n: int, keep_end: bool) -> str:
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
