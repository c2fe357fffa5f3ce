"""Each model's index: the one file that says which versions exist and where aliases point.

``<registry>/<model>/index.json`` is the registry's commit point. A version directory is part of
the registry only once the index lists it, and the index is replaced atomically (write, then
rename), so a deploy interrupted at any moment leaves the registry as it was: at worst an
unlisted directory, which the next writer removes. Writers hold ``<model>/.lock`` (a file lock)
from reading the index to replacing it, so concurrent deploys and promotions serialise.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.pids import pid_alive
from adaptune.registry.refs import VERSION_PATTERN, check_model_name

INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
METADATA_FILE = "version.json"
STAGING_PREFIX = ".staging-"
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


def read_index(registry_dir: Path, model: str) -> ModelIndex:
    """The model's index; empty when the model has none yet."""
    path = model_dir(registry_dir, model) / INDEX_FILE
    if not path.is_file():
        return ModelIndex()
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
    """Names of the models that have at least an index, sorted."""
    root = Path(registry_dir)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{INDEX_FILE}"))


def _remove_leftovers(directory: Path, index: ModelIndex) -> None:
    """Remove what interrupted writers left: unlisted versions of ours, dead stagings."""
    for child in directory.iterdir():
        if child.name.startswith(STAGING_PREFIX):
            pid = child.name[len(STAGING_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(child, ignore_errors=True)
        elif (match := VERSION_PATTERN.match(child.name)) and int(
            match.group(1)
        ) not in index.versions:
            # Ours only if it carries our metadata for this very slot; anything else is kept.
            try:
                meta = json.loads((child / METADATA_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if meta.get("model") == directory.name and meta.get("version") == int(match.group(1)):
                shutil.rmtree(child, ignore_errors=True)


@contextmanager
def locked_index(registry_dir: Path, model: str) -> Iterator[ModelIndex]:
    """Hold the model's lock; yield its index; write it back when the block changed it.

    Raises:
        UserError: If another writer holds the lock for longer than ``LOCK_TIMEOUT_S``.
    """
    directory = model_dir(registry_dir, model)
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
