"""Content hashes of files, directories and adapters."""

from __future__ import annotations

import hashlib
from pathlib import Path

ADAPTER_CONTENT = ("adapter_config.json", "adapter_model.safetensors")
BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path, only: tuple[str, ...] | None = None) -> str:
    """sha256 of a file, or of a directory's relative paths and file contents (sorted)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix()
        if only is not None and relative not in only:
            continue
        digest.update(relative.encode() + b"\0" + sha256_file(file).encode() + b"\0")
    return digest.hexdigest()


def adapter_sha256(directory: Path) -> str:
    """sha256 of an adapter's config and weights: what makes two adapters the same model.

    Reports and training history beside them (wall times, plots) are left out.
    """
    return sha256_tree(directory, only=ADAPTER_CONTENT)
