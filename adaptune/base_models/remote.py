"""Checkpoints on ``gs://``: copied once into a local cache keyed by the objects' checksums."""

from __future__ import annotations

import os
from pathlib import Path

from adaptune.atomic import staged_directory
from adaptune.errors import UserError
from adaptune.hashing import sha256_json

DONE_MARKER = ".adaptune-complete"


def cache_root() -> Path:
    """Where fetched checkpoints live: ``$ADAPTUNE_CACHE_DIR/models`` or ``~/.cache/adaptune``."""
    base = os.environ.get("ADAPTUNE_CACHE_DIR") or Path.home() / ".cache" / "adaptune"
    return Path(base) / "models"


def fetch_checkpoint(uri: str) -> Path:
    """Copy the checkpoint directory at ``uri`` (``gs://bucket/dir``) to the local cache.

    The cache key hashes each object's name, size and checksum, so a changed checkpoint is
    fetched again and an unchanged one is reused; the copy is staged and renamed into place.

    Raises:
        UserError: If nothing is found at ``uri`` or it holds no ``config.json``.
    """
    from adaptune.gcs import gcs_filesystem

    fs = gcs_filesystem()
    prefix = uri.removeprefix("gs://").rstrip("/")
    try:
        found = fs.find(prefix, detail=True)
    except (FileNotFoundError, OSError) as exc:
        raise UserError(f"base model {uri}: cannot list it ({exc})") from None
    files = {path: info for path, info in found.items() if info.get("type") != "directory"}
    if not any(p.endswith("/config.json") for p in files):
        raise UserError(f"base model {uri}: no config.json there (not a checkpoint directory)")
    identity = sorted(
        (p, info.get("size"), info.get("md5Hash") or info.get("crc32c") or info.get("etag"))
        for p, info in files.items()
    )
    key = sha256_json([prefix, identity])[:24]
    target = cache_root() / key
    if (target / DONE_MARKER).is_file():
        return target
    with staged_directory(target) as staging:
        for path in files:
            local = staging / path[len(prefix) :].lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get(path, str(local))
        (staging / DONE_MARKER).write_text(uri, encoding="utf-8")
    return target
