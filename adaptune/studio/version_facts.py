"""What the Models pages show of a registered version: its facts as plain, printable values.

Everything comes from the version's own records (``version.json``, ``lineage.json`` and the
adapter's config), read the way ``adaptune models show`` reads them.
"""

from __future__ import annotations

import json
from typing import Any

from adaptune.registry import RegisteredVersion, read_version_lineage

SHORT_HASH = 12
SETTINGS = ("base_model", "prompt_template", "seed", "adapter", "training", "gate", "data")
"""The run parameters the comparison shows, from the version's lineage record."""


def aliases_of(aliases: dict[str, int], version: int) -> list[str]:
    """The alias names pointing at ``version``, sorted."""
    return sorted(name for name, number in aliases.items() if number == version)


def number_text(value: Any) -> str:
    """A metric's value as the CLI prints it (4 decimals), anything else as text."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metrics_of(version: RegisteredVersion) -> list[tuple[str, str]]:
    """Every metric the version carries, name and value, in its stored order."""
    metrics = version.metadata.get("metrics")
    if not isinstance(metrics, dict):
        return []
    return [(str(name), number_text(value)) for name, value in metrics.items()]


def run_params(version: RegisteredVersion) -> dict[str, Any]:
    """The registering run's parameters from ``lineage.json`` (empty when it has none)."""
    try:
        record = read_version_lineage(version.path)
    except ValueError:
        return {}
    params = (record or {}).get("params")
    return params if isinstance(params, dict) else {}


def method_of(version: RegisteredVersion, params: dict[str, Any]) -> str:
    """The adapter method: the run's ``adapter.method``, else the adapter config's type."""
    adapter = params.get("adapter")
    if isinstance(adapter, dict) and adapter.get("method"):
        return str(adapter["method"])
    try:
        config = json.loads((version.path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(config, dict):
        return ""
    method = config.get("adaptune_method")
    if isinstance(method, dict) and method.get("method"):
        return str(method["method"])
    return str(config.get("peft_type") or "").lower()


def version_facts(version: RegisteredVersion, aliases: dict[str, int]) -> dict[str, Any]:
    """One row of a model's versions table (and one column of a comparison)."""
    meta = version.metadata
    params = run_params(version)
    settings = [
        (
            key,
            json.dumps(params[key], sort_keys=True)
            if isinstance(params[key], dict)
            else str(params[key]),
        )
        for key in SETTINGS
        if key in params
    ]
    return {
        "number": version.version,
        "ref": version.ref,
        "aliases": aliases_of(aliases, version.version),
        "created": str(meta.get("created_at", ""))[:19].replace("T", " "),
        "run_id": str(meta.get("run_id") or ""),
        "base_model": str(meta.get("base_model") or ""),
        "method": method_of(version, params),
        "description": str(meta.get("description") or ""),
        "data_sha256": str(meta.get("data_sha256") or "")[:SHORT_HASH],
        "gate_reason": str(meta.get("gate_reason") or ""),
        "metrics": metrics_of(version),
        "settings": settings,
    }
