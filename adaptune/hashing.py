"""Content hashes: the one sha256 scheme for bytes, JSON values, files and sets of files.

A set of files hashes as ``name NUL sha256(content) NUL`` per file, in the order given (sorted
relative paths for a directory), so the same files under the same names always give the same
digest, whoever computes it: the validated data, an adapter, a registry version staged for
Vertex AI, a pipeline's input files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ADAPTER_CONTENT = ("adapter_config.json", "adapter_model.safetensors")
BLOCK = 1 << 20


def sha256_text(text: str) -> str:
    """sha256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    """sha256 of a JSON value with sorted keys (``default=str`` for paths and the like)."""
    return sha256_text(json.dumps(value, sort_keys=True, default=str))


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_named_files(files: Iterable[tuple[str, Path]]) -> str:
    """sha256 of several files: each one's name and content digest, in the given order."""
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode("utf-8") + b"\0" + sha256_file(path).encode() + b"\0")
    return digest.hexdigest()


def tree_files(path: Path, only: tuple[str, ...] | None = None) -> list[tuple[str, Path]]:
    """A directory's files as (POSIX path relative to it, path), sorted; ``only`` filters."""
    path = Path(path)
    found = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    return [(name, p) for name, p in found if only is None or name in only]


def sha256_tree(path: Path, only: tuple[str, ...] | None = None) -> str:
    """sha256 of a file's bytes, or of a directory's files (see ``sha256_named_files``)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    return sha256_named_files(tree_files(path, only))


def adapter_sha256(directory: Path) -> str:
    """sha256 of an adapter's config and weights: what makes two adapters the same model.

    Reports and training history beside them (wall times, plots) are left out.
    """
    return sha256_tree(directory, only=ADAPTER_CONTENT)
