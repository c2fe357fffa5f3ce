"""What makes a text empty to a model though not to Python: NUL, and only invisible characters.

A text of zero-width spaces, joiners, byte order marks, soft hyphens, other format (Cf) and
control (Cc) characters and whitespace reads as nothing, yet ``str.strip`` keeps it: the
validator refuses such a text (``invisible_only``) and any text holding a NUL
(``nul_character``), the same in every format and every field.
"""

from __future__ import annotations

import re

INVISIBLE_RANGES = (
    (0x0000, 0x0020),  # C0 controls and space
    (0x007F, 0x00A0),  # DEL, C1 controls, no-break space
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x0600, 0x0605),  # Arabic number signs (format)
    (0x061C, 0x061C),  # Arabic letter mark
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),  # Hangul fillers
    (0x1680, 0x1680),  # Ogham space mark
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x2000, 0x200F),  # spaces, zero-width space, (non-)joiners, direction marks
    (0x2028, 0x202F),  # line and paragraph separators, embeddings, narrow no-break space
    (0x205F, 0x2064),  # medium math space, word joiner, invisible operators
    (0x2066, 0x206F),  # isolates, deprecated format characters
    (0x2800, 0x2800),  # braille blank
    (0x3000, 0x3000),  # ideographic space
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # byte order mark, zero-width no-break space
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF9, 0xFFFB),  # interlinear annotation
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x13438),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0001, 0xE0001),  # language tag
    (0xE0020, 0xE007F),  # tag characters
    (0xE0100, 0xE01EF),  # variation selectors supplement
)
"""Every Cc, Cf, Zs, Zl and Zp character and whitespace (Unicode 14, Python 3.11's), and the
default-ignorable fillers and variation selectors of other categories, as inclusive ranges."""

_VISIBLE = re.compile("[^" + "".join(f"\\U{a:08X}-\\U{b:08X}" for a, b in INVISIBLE_RANGES) + "]")


def has_visible(text: str) -> bool:
    """Whether ``text`` has a character outside ``INVISIBLE_RANGES`` (found from its start)."""
    return _VISIBLE.search(text) is not None


def nul_position(text: str) -> int:
    """The index of the first NUL in ``text``, or -1."""
    return text.find("\x00")
