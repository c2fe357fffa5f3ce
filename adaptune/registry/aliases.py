"""The ``production`` and ``previous`` aliases: promote a version, roll back to the one before.

Every change goes through the model's locked index (``index.py``), so it is atomic and
serialised with registrations, and is appended to the index's history for audit. An alias only
moves to a version whose files match the checksums recorded when it was registered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from adaptune.errors import UserError
from adaptune.kill_points import kill_point
from adaptune.registry.index import ModelIndex, locked_index, read_index
from adaptune.registry.pending_release import (
    refuse_during_interrupted_release,
    remove_pending_release,
)
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


def _check_target(
    registry_dir: Path, model: str, number: int, on_note: Callable[[str], None] | None
) -> None:
    """Refuse (``UserError``) a version whose files are missing or changed; pass on a note."""
    from adaptune.registry.local import _load, verify_version  # local imports this module

    note = verify_version(_load(registry_dir, model, number))
    if note and on_note is not None:
        on_note(note)


def promote(
    registry_dir: Path,
    model: str,
    ref: str,
    on_note: Callable[[str], None] | None = None,
    force: bool = False,
) -> dict[str, int]:
    """Make version ``ref`` (``vN`` or ``N``) serve: ``production`` → it, ``previous`` → the old.

    Args:
        registry_dir: Root of the registry.
        model: Model name.
        ref: ``vN`` or ``N``.
        on_note: Called with a note when the version's checksums could not be verified (it was
            registered before they were recorded).
        force: Move the alias even while a release of the model is interrupted between its
            Vertex AI deploy and its promotion (its record stays: the next release settles it).

    Returns:
        The aliases after the change.

    Raises:
        UserError: If the model or version does not exist, ``ref`` is not a version number,
            the version's files are missing or differ from their recorded checksums, or
            (without ``force``) a release of the model was interrupted.
    """
    number = version_number(ref)
    if number is None:
        raise UserError(f"promote takes a version number (vN), got {ref!r}")
    with locked_index(registry_dir, model) as index:
        if number not in index.versions:
            raise UserError(f"{model} has no version v{number} (versions: {index.versions})")
        completed = (
            None
            if force
            else refuse_during_interrupted_release(registry_dir, model, "promote", number)
        )
        _check_target(registry_dir, model, number, on_note)
        move_production(index, number, "promote")
        aliases = dict(index.aliases)
    if completed is not None:  # the interrupted release of this very version is complete now
        remove_pending_release(registry_dir, model, number)
    return aliases


def rollback(
    registry_dir: Path,
    model: str,
    on_note: Callable[[str], None] | None = None,
    force: bool = False,
) -> dict[str, int]:
    """Serve ``previous`` again; the rolled-back version becomes ``previous`` (so it can return).

    Args:
        registry_dir: Root of the registry.
        model: Model name.
        on_note: As for ``promote``.
        force: As for ``promote``.

    Returns:
        The aliases after the change.

    Raises:
        UserError: If the model has no ``previous`` version, its files are missing or differ
            from their recorded checksums, or (without ``force``) a release of the model was
            interrupted.
    """
    with locked_index(registry_dir, model) as index:
        if not index.versions:
            raise UserError(f"no model {model!r} in registry {registry_dir}")
        if not force:
            refuse_during_interrupted_release(registry_dir, model, "rollback")
        if "previous" not in index.aliases:
            raise UserError(f"{model} has no previous version to roll back to")
        previous = index.aliases["previous"]
        if previous not in index.versions:
            raise UserError(f"{model}'s previous alias names v{previous}, which it does not list")
        _check_target(registry_dir, model, previous, on_note)
        move_production(index, previous, "rollback")
        return dict(index.aliases)


def promote_gated(
    registry_dir: Path,
    model: str,
    number: int,
    evaluated_against: int,
    on_note: Callable[[str], None] | None = None,
) -> tuple[bool, str]:
    """The release's last step: make ``v<number>`` production iff production did not move.

    The gate compared the version with production ``evaluated_against`` (0: none); the version
    was registered without promotion (``register_and_promote(deploy_first=True)``) and deployed
    since. Under the model's lock: when production is still ``evaluated_against`` it moves to
    the version (its files verified first), in one index write; when it is the version already
    (a retried release) nothing changes.

    Returns:
        (True, "") when production points at the version; (False, why) when production moved
        meanwhile and the comparison no longer holds (nothing changed).

    Raises:
        UserError: If the version does not exist or its files fail their checksums.
    """
    from adaptune.registry.local import stale_note  # local imports this module

    with locked_index(registry_dir, model) as index:
        if number not in index.versions:
            raise UserError(f"{model} has no version v{number} (versions: {index.versions})")
        current = index.aliases.get("production", 0)
        if current == number:
            return True, ""
        note = stale_note(evaluated_against, current)
        if note is not None:
            return False, note
        _check_target(registry_dir, model, number, on_note)
        kill_point("release:before-promote")
        move_production(index, number, "release")
    kill_point("release:after-promote")
    return True, ""
