"""Model names and references: ``name``, ``name@vN``, ``name@N`` or ``name@<alias>``."""

from __future__ import annotations

import re

from adaptune.errors import UserError

# \Z, not $: "$" also matches before a trailing newline, so "alpha\n" would pass.
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?\Z")
VERSION_PATTERN = re.compile(r"^v([1-9][0-9]*)\Z")
MAX_VERSION_DIGITS = 18
"""Longest version number accepted in a reference (no registry holds 10**18 versions)."""
ALIASES = ("production", "previous")
"""The aliases a model can have: what serves now, and what served before it."""
REFS = (*ALIASES, "latest")


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model name, else raise ``UserError``.

    Names are lower-case letters, digits, ``.``, ``_`` and ``-``, 1 to 64 characters, starting
    and ending with a letter or digit: no path separators, no ``..``.
    """
    if not NAME_PATTERN.match(name) or ".." in name:
        raise UserError(
            f"invalid model name {shown(name)}: use 1-64 lower-case letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit"
        )
    return name


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a one-line message: escaped (``repr``), cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@ref`` into a checked name and the part after ``@`` (None when absent).

    The part after ``@`` is checked too (``vN``, ``N``, an alias or ``latest``): a malformed
    reference (``name@v0``, ``name@-1``, ``name@v01``, ``name@``, ``@v1``, ``name@v1@v2``) is a
    ``UserError`` naming the whole reference, before any registry is read.
    """
    name, at, rest = ref.partition("@")
    try:
        check_model_name(name)
        if at and not rest:
            raise UserError("nothing after '@'")
        if rest:
            version_number(rest)
    except UserError as exc:
        raise UserError(f"bad model reference {shown(ref)}: {exc}") from None
    return name, rest or None


def version_number(ref: str) -> int | None:
    """``vN`` or ``N`` as N; None for an alias or ``latest``; ``UserError`` for anything else.

    N is a whole number from 1, without leading zeros, of at most ``MAX_VERSION_DIGITS`` digits.
    """
    if ref in REFS:
        return None
    match = VERSION_PATTERN.match(ref if ref.startswith("v") else f"v{ref}")
    if not match or len(match.group(1)) > MAX_VERSION_DIGITS:
        raise UserError(
            f"bad version {shown(ref)}: use vN or N (N a whole number from 1, no leading zeros), "
            f"or {', '.join(REFS)}"
        )
    return int(match.group(1))
