"""Reading and writing JSONL files: atomic writes and content hashes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adaptune.atomic import write_text_atomic


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` as JSONL atomically (a temporary file, then a rename).

    Args:
        path: Destination file; its directory is created when missing.
        records: JSON-serialisable dicts, written one per line in a canonical form.

    Returns:
        The number of records written.
    """
    lines = [canonical_json(record) + "\n" for record in records]
    write_text_atomic(path, "".join(lines))
    return len(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by :func:`write_jsonl` (already validated)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def canonical_json(record: dict[str, Any]) -> str:
    """One record as compact JSON with sorted keys, so equal records give equal bytes."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
