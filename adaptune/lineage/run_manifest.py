"""Reading a run's ``manifest.json`` back, with every fault named: path and reason, one line.

A run directory can be missing, its manifest garbage, binary, not a JSON object, or missing
the fields a command needs (``reproduce`` needs the compiled spec, the parameters and the data
hashes; ``runs compare`` the parameters and results). Each is a ``UserError`` before the
command does anything; nothing is rewritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptune.errors import UserError

MANIFEST_FILE = "manifest.json"
"""Written by the runner into each run directory (``runner/run.py``)."""
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
"""A manifest is a few kilobytes; anything this large is not one."""

MAPPING, TEXT, OPTIONAL_MAPPING, OPTIONAL_TEXT = (
    "mapping",
    "text",
    "mapping or null",
    "text or null",
)
FIELDS = {
    "params": MAPPING,
    "compiled_spec": MAPPING,
    "data_sha256": OPTIONAL_MAPPING,
    "metrics": OPTIONAL_MAPPING,
    "gate": OPTIONAL_MAPPING,
    "adapter_sha256": OPTIONAL_TEXT,
}
"""The type each field must have, when a command reads it."""
COMPARED = ("params", "data_sha256", "metrics", "gate", "adapter_sha256")
"""What ``runs compare`` reads."""
DATA_FILES = "data files"
"""Not a field: each file ``data_sha256`` hashes is named by a text in ``params``."""
REPRODUCED = ("params", "compiled_spec", "data_sha256", "adapter_sha256", DATA_FILES)
"""What ``reproduce`` reads."""


def check_run_name(run_id: str) -> str:
    """``run_id`` if it can name a directory inside the runs directory (no path, no ``..``).

    Raises:
        UserError: Otherwise.
    """
    if not run_id or run_id in (".", "..") or any(c in run_id for c in "/\\\0"):
        raise UserError(
            f"run id {run_id!r} is not a run id: give one that `adaptune runs list` shows"
        )
    return run_id


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _fits(value: Any, kind: str) -> bool:
    if value is None:
        return kind in (OPTIONAL_MAPPING, OPTIONAL_TEXT)
    if kind in (MAPPING, OPTIONAL_MAPPING):
        return isinstance(value, dict)
    return isinstance(value, str)


def read_run_manifest(
    runs_root: Path, run_id: str, needs: tuple[str, ...] = (), store_record: bool = False
) -> dict[str, Any]:
    """A run's manifest, checked for the fields in ``needs`` (see ``FIELDS``).

    Args:
        runs_root: The runs directory.
        run_id: The run.
        needs: Fields the caller reads: each must be there with its type.
        store_record: Whether the metadata store records the run (its message then says the
            directory went missing rather than that the run is unknown).

    Raises:
        UserError: If the run directory or manifest is missing, unreadable, not JSON, not an
            object, or a needed field is missing or of the wrong type: the path and reason.
    """
    run_dir = Path(runs_root) / check_run_name(run_id)
    path = run_dir / MANIFEST_FILE
    if not run_dir.is_dir():
        if store_record:
            raise UserError(f"run {run_id} is recorded, but its directory {run_dir} is missing")
        raise UserError(f"no run {run_id!r} in {runs_root} (no directory {run_dir})")
    if not path.is_file():
        what = "not a file" if path.exists() else "missing (the run did not finish)"
        raise UserError(f"{path}: the manifest of run {run_id} is {what}")
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise UserError(f"{path} is not a run manifest: {size} bytes")
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a run manifest: not UTF-8 text ({exc.reason})") from None
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path} is not a run manifest: not JSON ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path} is unreadable: {exc.strerror or exc}") from None
    if not isinstance(manifest, dict):
        raise UserError(
            f"{path} is not a run manifest: a JSON {_type_name(manifest)}, not an object"
        )
    for field in (n for n in needs if n != DATA_FILES):
        kind = FIELDS[field]
        if field not in manifest and kind in (MAPPING, TEXT):
            raise UserError(f"{path} is not a complete run manifest: it has no {field!r}")
        if not _fits(manifest.get(field), kind):
            raise UserError(
                f"{path}: {field!r} is a {_type_name(manifest.get(field))}, not a {kind}"
            )
    if "compiled_spec" in needs:
        _check_texts(path, manifest["compiled_spec"], "compiled_spec", ("path", "sha256"))
    if "data_sha256" in needs:
        _check_data(path, manifest, files=DATA_FILES in needs)
    return manifest


def _check_texts(path: Path, mapping: dict[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = mapping.get(key)
        if not isinstance(value, str) or not value:
            raise UserError(f"{path}: '{where}.{key}' is a {_type_name(value)}, not a text")


def _check_data(path: Path, manifest: dict[str, Any], files: bool) -> None:
    """Each recorded data hash is a text (or null); with ``files``, of a parameter's file."""
    params = manifest.get("params") or {}
    for key, digest in (manifest.get("data_sha256") or {}).items():
        if digest is not None and not isinstance(digest, str):
            raise UserError(f"{path}: 'data_sha256.{key}' is a {_type_name(digest)}, not a text")
        if files and digest and not isinstance(params.get(key), str):
            raise UserError(
                f"{path}: 'params.{key}' (the file 'data_sha256.{key}' hashes) is a "
                f"{_type_name(params.get(key))}, not a path"
            )
