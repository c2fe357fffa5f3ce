"""The ``production`` and ``previous`` aliases: promote a version, roll back to the one before.

Every change goes through the model's locked index (``index.py``), so it is atomic and
serialised with registrations, and is appended to the index's history for audit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adaptune.errors import UserError
from adaptune.registry.index import ModelIndex, locked_index, read_index
from adaptune.registry.refs import version_number


def read_aliases(registry_dir: Path, model: str) -> dict[str, int]:
    """Alias name to version number, e.g. ``{"production": 3, "previous": 2}``."""
    return dict(read_index(registry_dir, model).aliases)


def move_production(index: ModelIndex, number: int, action: str) -> None:
    """Point ``production`` at ``number`` and ``previous`` at what served before; log it."""
    current = index.aliases.get("production")
    if current != number:
        if current is not None:
            index.aliases["previous"] = current
        index.aliases["production"] = number
    index.history.append(
        {
            "action": action,
            "version": number,
            "aliases": dict(index.aliases),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )


def promote(registry_dir: Path, model: str, ref: str) -> dict[str, int]:
    """Make version ``ref`` (``vN`` or ``N``) serve: ``production`` → it, ``previous`` → the old.

    Returns:
        The aliases after the change.

    Raises:
        UserError: If the model or version does not exist, or ``ref`` is not a version number.
    """
    number = version_number(ref)
    if number is None:
        raise UserError(f"promote takes a version number (vN), got {ref!r}")
    with locked_index(registry_dir, model) as index:
        if number not in index.versions:
            raise UserError(f"{model} has no version v{number} (versions: {index.versions})")
        move_production(index, number, "promote")
        return dict(index.aliases)


def rollback(registry_dir: Path, model: str) -> dict[str, int]:
    """Serve ``previous`` again; the rolled-back version becomes ``previous`` (so it can return).

    Returns:
        The aliases after the change.

    Raises:
        UserError: If the model has no ``previous`` version.
    """
    with locked_index(registry_dir, model) as index:
        if not index.versions:
            raise UserError(f"no model {model!r} in registry {registry_dir}")
        if "previous" not in index.aliases:
            raise UserError(f"{model} has no previous version to roll back to")
        move_production(index, index.aliases["previous"], "rollback")
        return dict(index.aliases)
