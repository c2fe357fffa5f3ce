"""Each model's index: the one file that says which versions exist and where aliases point.

``<registry>/<model>/index.json`` is the registry's commit point. A registration stages its copy
in a hidden directory, renames it to ``vN`` and then replaces the index atomically (write, then
rename), so aliases only ever move by a complete index write.

Recovery never deletes a version: a ``vN`` directory holding the adapter files and
``version.json`` *is* a version, whether or not it still carries the pending marker (a
registration killed after its commit leaves the marker; one killed between the rename and the
commit leaves a complete, unpromoted version). The next writer lists such a directory in the
index (history action ``recover``; no alias moves) rather than removing it, and a missing index
is rebuilt from the versions on disk (action ``rebuild``; the aliases it held are lost, the
versions are not). What a writer removes is only what can hold no version: staging directories of
dead processes, temporary index files, and pending ``vN`` directories without complete files.
Writers hold ``<model>/.lock`` (a file lock) from reading the index to replacing it, so
concurrent registrations and promotions serialise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.hashing import ADAPTER_CONTENT
from adaptune.pids import pid_alive
from adaptune.registry.refs import NAME_PATTERN, VERSION_PATTERN, check_model_name

INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
METADATA_FILE = "version.json"
STAGING_PREFIX = ".staging-"
PENDING_FILE = ".pending"
"""Inside a version directory until the index lists it: the mark of an uncommitted version."""
LOCK_TIMEOUT_S = 300.0


class BrokenRecord(UserError):
    """A registry record that exists but cannot be trusted: its path and the reason.

    An unreadable index, or a version whose ``version.json`` or files are missing, corrupt or
    changed since registration. The registry's fault, not the caller's: the server answers it
    with 503 (a name that matches nothing is 404).
    """


@dataclass
class ModelIndex:
    """What a model's index holds.

    Attributes:
        versions: Registered version numbers, ascending.
        aliases: Alias name to version number (``production``, ``previous``).
        history: Every alias change, oldest first: action, version, aliases after, time.
    """

    versions: list[int] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def model_dir(registry_dir: Path, model: str) -> Path:
    """The directory of ``model`` (the name is validated first)."""
    return Path(registry_dir) / check_model_name(model)


def is_complete_version(path: Path) -> bool:
    """Whether ``path`` holds a version: the adapter files and ``version.json``.

    The pending marker does not matter: a registration killed after its commit leaves it behind.
    """
    return all((path / name).is_file() for name in (*ADAPTER_CONTENT, METADATA_FILE))


def _versions_on_disk(directory: Path) -> list[int]:
    """The version directories: ``vN`` with complete files (see ``is_complete_version``)."""
    if not directory.is_dir():
        return []
    return sorted(
        int(m.group(1))
        for c in directory.iterdir()
        if (m := VERSION_PATTERN.match(c.name)) and is_complete_version(c)
    )


def read_index(registry_dir: Path, model: str) -> ModelIndex:
    """The model's index; empty when the model has none yet.

    A model directory without ``index.json`` (written before indexes existed, or the index was
    lost) is read as listing its complete versions, with no aliases; the next write stores that
    index.

    Raises:
        UserError: If ``index.json`` exists but cannot be read: its path and the reason.
    """
    path = model_dir(registry_dir, model) / INDEX_FILE
    if not path.is_file():
        return ModelIndex(versions=_versions_on_disk(path.parent))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        index = ModelIndex(
            versions=sorted({int(v) for v in data["versions"]}),
            aliases={str(k): int(v) for k, v in data.get("aliases", {}).items()},
            history=list(data.get("history", [])),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc)
        raise BrokenRecord(
            f"{path} is not a registry index ({reason}); move it aside to rebuild it from the "
            "versions on disk (its aliases are then lost)"
        ) from None
    if any(v < 1 for v in index.versions):
        raise BrokenRecord(f"{path} is not a registry index (version numbers start at 1)")
    return index


def list_models(registry_dir: Path) -> list[str]:
    """Names of the models with at least one version, sorted (other directories are skipped)."""
    root = Path(registry_dir)
    if not root.is_dir():
        return []
    return sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir()
        and NAME_PATTERN.match(d.name)
        and ".." not in d.name
        and ((d / INDEX_FILE).is_file() or _versions_on_disk(d))
    )


def staging_prefix() -> str:
    """``.staging-<host>-<pid>-``: whose staging directory it is, for the leftover cleanup."""
    return f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _note(index: ModelIndex, action: str, version: int | None) -> None:
    index.history.append(
        {
            "action": action,
            "version": version,
            "aliases": dict(index.aliases),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )


def _recover(directory: Path, index: ModelIndex, rebuilt: bool) -> None:
    """Repair what interrupted writers left (called under the lock); never remove a version.

    A complete ``vN`` directory the index does not list is added to it (no alias moves) and
    loses its pending marker. Removed: pending ``vN`` directories without complete files (an
    uncommitted copy), staging directories of dead processes on this host (another host's are
    left alone: its pids are not ours to judge), temporary index files of an interrupted write.
    Nothing else is ever removed.
    """
    if rebuilt and index.versions:
        _note(index, "rebuild", None)
    host_prefix = f"{STAGING_PREFIX}{socket.gethostname()}-"
    for child in directory.iterdir():
        if child.name.startswith(host_prefix):
            pid = child.name[len(host_prefix) :].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(f".{INDEX_FILE}.") and child.name.endswith(".tmp"):
            child.unlink(missing_ok=True)
        elif match := VERSION_PATTERN.match(child.name):
            number = int(match.group(1))
            if is_complete_version(child):
                if number not in index.versions:
                    index.versions = sorted([*index.versions, number])
                    _note(index, "recover", number)
                marker = child / PENDING_FILE
                if marker.exists():
                    with suppress(OSError):  # a read-only directory: the marker is harmless now
                        marker.unlink(missing_ok=True)
            elif number not in index.versions and (child / PENDING_FILE).exists():
                shutil.rmtree(child, ignore_errors=True)


@contextmanager
def locked_index(registry_dir: Path, model: str, create: bool = False) -> Iterator[ModelIndex]:
    """Hold the model's lock; yield its index; write it back when the block changed it.

    Args:
        registry_dir: Root of the registry.
        model: Model name (validated).
        create: Create the model's directory when missing (a first registration); otherwise a
            missing model is an error and nothing is created.

    Raises:
        UserError: If the model does not exist (without ``create``), or another writer holds
            the lock for longer than ``LOCK_TIMEOUT_S``.
    """
    directory = model_dir(registry_dir, model)
    if not create and not directory.is_dir():
        raise UserError(f"no model {model!r} in registry {registry_dir}")
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(directory / LOCK_FILE, timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(
            f"registry model {model!r} is locked by another writer for over "
            f"{LOCK_TIMEOUT_S:.0f} s ({directory / LOCK_FILE})"
        ) from None
    try:
        rebuilt = not (directory / INDEX_FILE).is_file()
        index = read_index(registry_dir, model)
        before = asdict(index)
        _recover(directory, index, rebuilt)
        yield index
        if asdict(index) != before:
            write_json_atomic(directory / INDEX_FILE, asdict(index))
    finally:
        lock.release()


def _is_model_dir(path: Path) -> bool:
    return (path / INDEX_FILE).is_file() or bool(_versions_on_disk(path))


def registry_part(path: Path, scan_limit: int = 100_000) -> Path | None:
    """The registry model or version directory ``path`` is, lies in, or holds; None if none.

    ``path`` and its parents are checked; below it, directories are scanned for a model's
    ``index.json`` or a complete version (at most ``scan_limit`` entries: a larger tree is
    reported as itself, since it cannot be shown to hold none).
    """
    path = Path(path).resolve()
    for candidate in (path, *path.parents):
        if _is_model_dir(candidate) or (
            VERSION_PATTERN.match(candidate.name) and is_complete_version(candidate)
        ):
            return candidate
    if not path.is_dir():
        return None
    seen = 0
    for root, dirs, files in os.walk(path):
        seen += len(dirs) + len(files)
        here = Path(root)
        version_like = VERSION_PATTERN.match(here.name) and METADATA_FILE in files
        marked = INDEX_FILE in files or version_like
        if marked and (_is_model_dir(here) or is_complete_version(here)):
            return here
        if seen > scan_limit:
            return path
    return None
