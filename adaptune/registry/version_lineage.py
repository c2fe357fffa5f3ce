"""A version's own lineage record, ``lineage.json``, written before the version becomes visible.

The metadata store learns of a registration only after the register task ended (the runner
records finished tasks), so a runner killed just after the commit would leave a production
version the store knows nothing about. ``lineage.json`` closes that gap: it is written into the
staging directory before ``version.json`` and the rename, so every complete version carries it.
It holds what the registering run knew: run id, base model, data hash, prompt template and
style, metrics, the gate's reason, the production version the gate compared with, each adapter
file's sha256 and, when the run's ``params.yaml`` is found above the adapter (a local run's
directory), the run's parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from adaptune.hashing import ADAPTER_CONTENT, sha256_file

LINEAGE_FILE = "lineage.json"
PARAMS_FILE = "params.yaml"
MAX_PARAMS_BYTES = 1 << 20
LINEAGE_KEYS = (
    "run_id",
    "pipeline_job_name",
    "base_model",
    "data_sha256",
    "prompt_template",
    "prompt_style",
    "metrics",
    "gate_reason",
    "evaluated_against",
)
KIND_KEYS = ("kind", "tuned_model", "tuning_job")
"""Recorded when the registration was told them (a ``vertex_gemini`` version's model and job)."""


def find_run_params(adapter_dir: Path, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The parameters of the run that made ``adapter_dir``, from its run directory's params.yaml.

    A local run's outputs lie below ``<runs>/<run_id>/``, which holds ``params.yaml`` from the
    run's start. Returns (params, path), or (None, None) when no such file is found or it cannot
    be read (a Vertex AI run: the pipeline job holds its parameters).
    """
    if not run_id:
        return None, None
    for directory in Path(adapter_dir).resolve().parents:
        if directory.name != run_id:
            continue
        path = directory / PARAMS_FILE
        try:
            if not path.is_file() or path.stat().st_size > MAX_PARAMS_BYTES:
                return None, None
            params = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            return None, None
        return (params, str(path)) if isinstance(params, dict) else (None, None)
    return None, None


def lineage_record(
    model: str, version: int, adapter_dir: Path, version_dir: Path, metadata: dict[str, Any]
) -> dict[str, Any]:
    """What ``lineage.json`` holds for ``model@v<version>``, copied from ``adapter_dir``.

    Args:
        model: Model name.
        version: Version number.
        adapter_dir: Where the adapter was registered from (below its run's directory).
        version_dir: The version's (staging) directory, whose adapter files are hashed.
        metadata: What the registration was told (run id, data hash, metrics, ...).
    """
    run_id = str(metadata.get("run_id") or "")
    params, params_file = find_run_params(adapter_dir, run_id)
    return {
        "model": model,
        "version": version,
        **{key: metadata.get(key) for key in LINEAGE_KEYS},
        **{key: metadata[key] for key in KIND_KEYS if key in metadata},
        "adapter_files": {
            name: sha256_file(Path(version_dir) / name)
            for name in ADAPTER_CONTENT
            if (Path(version_dir) / name).is_file()
        },
        "params": params,
        "params_file": params_file,
    }


def read_version_lineage(version_dir: Path) -> dict[str, Any] | None:
    """A version's ``lineage.json``; None when it has none (registered before it existed).

    Raises:
        ValueError: If the file exists but is not a JSON object (the message says which file).
    """
    path = Path(version_dir) / LINEAGE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data
