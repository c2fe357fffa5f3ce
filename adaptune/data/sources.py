"""Where data comes from: local files, globs and ``gs://`` URIs, opened as binary streams.

``gs://`` is read through :func:`adaptune.gcs.gcs_filesystem`.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterable
from typing import IO

from adaptune.data.problems import FILE_NOT_FOUND, Problem
from adaptune.gcs import GCS_PREFIX, gcs_filesystem, is_gcs

GLOB_CHARS = set("*?[")
READ_BLOCK = 8 << 20


def expand_sources(specs: Iterable[str]) -> tuple[list[str], list[Problem]]:
    """Expand paths and globs (local or ``gs://``) into files, in a stable order.

    Args:
        specs: Paths, glob patterns or ``gs://`` URIs; empty strings are skipped.

    Returns:
        The files found, and a ``file_not_found`` problem for each spec that matched nothing.
    """
    files: list[str] = []
    problems: list[Problem] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        has_glob = bool(GLOB_CHARS & set(spec))
        if is_gcs(spec):
            fs = gcs_filesystem()
            if has_glob:
                found = [GCS_PREFIX + p for p in sorted(fs.glob(spec))]
            else:
                found = [spec] if fs.isfile(spec) else []
        elif has_glob:
            found = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        else:
            found = [spec] if os.path.isfile(spec) else []
        if not found:
            if has_glob:
                what = "no file matches this pattern"
            elif not is_gcs(spec) and os.path.isdir(spec):
                what = "is a directory: give its files or a glob (e.g. DIR/*.jsonl)"
            elif not is_gcs(spec) and os.path.exists(spec):
                what = "is not a regular file (a device, pipe or socket): give a data file"
            else:
                what = "file not found"
            problems.append(Problem(FILE_NOT_FOUND, what, spec))
        files.extend(p for p in found if p not in files)
    return files, problems


def open_binary(path: str) -> IO[bytes]:
    """Open a local file or ``gs://`` object for binary reading."""
    if is_gcs(path):
        # Wrapped so it reads lines up to a size (``readline(n)``), as a local file does.
        remote = gcs_filesystem().open(path, "rb", block_size=READ_BLOCK)
        return io.BufferedReader(remote, buffer_size=1 << 20)  # type: ignore[arg-type]
    return open(path, "rb", buffering=READ_BLOCK)
