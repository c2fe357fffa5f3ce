"""A model registry in a directory: ``<registry>/<model>/v<N>/`` holds one immutable version.

Each version holds the adapter files and ``version.json`` (base model, run id, data hash,
metrics, time). A version is assembled in a hidden temporary directory and renamed into place,
so a reader never sees half a version; rename refuses to replace a non-empty directory, so two
writers racing for the same number cannot overwrite each other (the loser takes the next one).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
VERSION_PATTERN = re.compile(r"^v([1-9][0-9]*)$")
METADATA_FILE = "version.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MAX_RACE_RETRIES = 100


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered version.

    Attributes:
        model: Model name.
        version: Version number, from 1.
        path: The version's directory.
        metadata: Contents of ``version.json``.
    """

    model: str
    version: int
    path: Path
    metadata: dict[str, Any]

    @property
    def ref(self) -> str:
        """``model@vN``."""
        return f"{self.model}@v{self.version}"


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


def list_versions(registry_dir: Path, model: str) -> list[RegisteredVersion]:
    """All versions of ``model``, oldest first (empty when the model is unknown)."""
    model_dir = Path(registry_dir) / check_model_name(model)
    versions = []
    if model_dir.is_dir():
        for child in model_dir.iterdir():
            match = VERSION_PATTERN.match(child.name)
            if match and (child / METADATA_FILE).is_file():
                metadata = json.loads((child / METADATA_FILE).read_text(encoding="utf-8"))
                versions.append(RegisteredVersion(model, int(match.group(1)), child, metadata))
    return sorted(versions, key=lambda v: v.version)


def _next_version(model_dir: Path) -> int:
    numbers = [int(m.group(1)) for c in model_dir.iterdir() if (m := VERSION_PATTERN.match(c.name))]
    return max(numbers, default=0) + 1


def _make_read_only(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def register_version(
    registry_dir: Path, model: str, adapter_dir: Path, metadata: dict[str, Any]
) -> RegisteredVersion:
    """Register the adapter in ``adapter_dir`` as the next version of ``model``.

    Args:
        registry_dir: Root of the registry; created when missing.
        model: Model name (validated).
        adapter_dir: A PEFT adapter directory; every file in it is copied.
        metadata: Facts stored in ``version.json`` (run id, data hash, metrics, ...); the model
            name, version number and creation time are added.

    Returns:
        The new version.

    Raises:
        UserError: If the name is invalid or the adapter files are missing.
    """
    model_dir = Path(registry_dir) / check_model_name(model)
    missing = [f for f in ADAPTER_FILES if not (Path(adapter_dir) / f).is_file()]
    if missing:
        raise UserError(f"{adapter_dir} is not a PEFT adapter: missing {', '.join(missing)}")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=".staging-"))
    staging.chmod(0o755)
    try:
        shutil.copytree(adapter_dir, staging, dirs_exist_ok=True)
        for _ in range(MAX_RACE_RETRIES):
            number = _next_version(model_dir)
            record = {
                **metadata,
                "model": model,
                "version": number,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            write_json_atomic(staging / METADATA_FILE, record)
            try:
                os.rename(staging, model_dir / f"v{number}")
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    continue
                raise
            final = model_dir / f"v{number}"
            _make_read_only(final)
            return RegisteredVersion(model, number, final, record)
        raise RuntimeError(f"could not claim a version number in {model_dir}")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
