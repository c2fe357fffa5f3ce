"""Each model's index: the one file that says which versions exist and where aliases point.

``<registry>/<model>/index.json`` is the registry's commit point. A version directory is part of
the registry only once the index lists it, and the index is replaced atomically (write, then
rename), so a registration interrupted at any moment leaves the registry as it was: at worst an
unlisted directory marked pending, which the next writer removes. A registry written before the
index existed (version directories only) reads as if its index listed every complete version.
Writers hold ``<model>/.lock`` (a file lock) from reading the index to replacing it, so
concurrent registrations and promotions serialise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.pids import pid_alive
from adaptune.registry.refs import NAME_PATTERN, VERSION_PATTERN, check_model_name

INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
METADATA_FILE = "version.json"
STAGING_PREFIX = ".staging-"
PENDING_FILE = ".pending"
"""Inside a version directory until the index lists it: the mark of an uncommitted version."""
LOCK_TIMEOUT_S = 300.0


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


def _versions_on_disk(directory: Path) -> list[int]:
    """Complete, committed version directories: ``vN`` with ``version.json``, not pending."""
    if not directory.is_dir():
        return []
    return sorted(
        int(m.group(1))
        for c in directory.iterdir()
        if (m := VERSION_PATTERN.match(c.name))
        and (c / METADATA_FILE).is_file()
        and not (c / PENDING_FILE).exists()
    )


def read_index(registry_dir: Path, model: str) -> ModelIndex:
    """The model's index; empty when the model has none yet.

    A model directory without ``index.json`` (written before indexes existed) is read as
    listing its complete versions, with no aliases; the next write stores that index.
    """
    path = model_dir(registry_dir, model) / INDEX_FILE
    if not path.is_file():
        return ModelIndex(versions=_versions_on_disk(path.parent))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelIndex(
            versions=[int(v) for v in data["versions"]],
            aliases={str(k): int(v) for k, v in data.get("aliases", {}).items()},
            history=list(data.get("history", [])),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path} is not a registry index: {exc}") from None


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


def _remove_leftovers(directory: Path, index: ModelIndex) -> None:
    """Remove what interrupted writers left (called under the lock).

    That is: unlisted version directories still marked pending; staging directories of dead
    processes on this host (another host's are left alone: its pids are not ours to judge);
    temporary index files of an interrupted write. Nothing else is ever removed.
    """
    host_prefix = f"{STAGING_PREFIX}{socket.gethostname()}-"
    for child in directory.iterdir():
        if child.name.startswith(host_prefix):
            pid = child.name[len(host_prefix) :].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(f".{INDEX_FILE}.") and child.name.endswith(".tmp"):
            child.unlink(missing_ok=True)
        elif (
            (match := VERSION_PATTERN.match(child.name))
            and int(match.group(1)) not in index.versions
            and (child / PENDING_FILE).exists()
        ):
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
        index = read_index(registry_dir, model)
        before = asdict(index)
        _remove_leftovers(directory, index)
        yield index
        if asdict(index) != before:
            write_json_atomic(directory / INDEX_FILE, asdict(index))
    finally:
        lock.release()
