"""Uploaded training data: kept under ``<uploads_dir>/<sha256>/<safe name>``, bounded in size.

The upload is copied in chunks to a temporary file in the uploads directory while its sha256 is
computed, then renamed into place: a half-written upload never has the final name, and the same
bytes uploaded twice are kept once. The name keeps letters, digits, ``.``, ``-`` and ``_`` of
the file's own name (its extension tells validation the format).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from adaptune.errors import UserError

MAX_UPLOAD_BYTES = 256 << 20
CHUNK_BYTES = 1 << 20
NAME_CHARS = 100
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(filename: str | None) -> str:
    """The upload's file name reduced to a safe one (no directories, no leading dots)."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = UNSAFE.sub("_", base).lstrip(".")[-NAME_CHARS:].lstrip(".")
    return name or "upload.jsonl"


def save_upload(source: BinaryIO, filename: str | None, uploads_dir: Path) -> Path:
    """Copy an uploaded file to ``uploads_dir/<sha256>/<safe name>``; return that path.

    Raises:
        UserError: If it is empty or over ``MAX_UPLOAD_BYTES``.
    """
    uploads_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=uploads_dir, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise UserError(
                        f"the uploaded file is over {MAX_UPLOAD_BYTES >> 20} MiB: give its path "
                        "in Training data instead"
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise UserError(f"the uploaded file {safe_name(filename)!r} is empty")
        target = uploads_dir / digest.hexdigest() / safe_name(filename)
        target.parent.mkdir(exist_ok=True)
        if target.is_file():
            Path(tmp).unlink()
        else:
            os.replace(tmp, target)
        return target
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
