"""Model names and references: ``name``, ``name@vN``, ``name@N`` or ``name@<alias>``."""

from __future__ import annotations

import re

from adaptune.errors import UserError

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
VERSION_PATTERN = re.compile(r"^v([1-9][0-9]*)$")
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
            f"invalid model name {name!r}: use 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@ref`` into a checked name and the part after ``@`` (None when absent)."""
    name, at, rest = ref.partition("@")
    check_model_name(name)
    if at and not rest:
        raise UserError(f"bad model reference {ref!r}: nothing after '@'")
    return name, rest or None


def version_number(ref: str) -> int | None:
    """``vN`` or ``N`` as N; None for an alias or ``latest``; ``UserError`` for anything else."""
    if ref in REFS:
        return None
    match = VERSION_PATTERN.match(ref if ref.startswith("v") else f"v{ref}")
    if not match:
        raise UserError(f"bad version {ref!r}: use vN, N, {', '.join(REFS)}")
    return int(match.group(1))
