"""Kinds of registry version: what a version holds, and which of its files must be there.

An ``adapter`` version (the default, and every version registered before kinds were
recorded) holds PEFT adapter files. A ``vertex_gemini`` version holds no weights: Google's
managed tuning made the model, which lives in the Vertex AI Model Registry and is served on a
Vertex AI endpoint; the version holds ``tuned_model.json`` (the tuned model, its endpoint, the
tuning job and its data statistics), so its checksum, lineage, promotion and rollback work as
any version's. ``version.json`` records the kind explicitly.
"""

from __future__ import annotations

from typing import Any

from adaptune.errors import UserError

ADAPTER = "adapter"
VERTEX_GEMINI = "vertex_gemini"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TUNED_MODEL_FILE = "tuned_model.json"
KIND_FILES = {ADAPTER: ADAPTER_FILES, VERTEX_GEMINI: (TUNED_MODEL_FILE,)}
"""Each kind's files a version must hold (and record a checksum for)."""
TUNED_MODEL_KEYS = ("model", "endpoint", "job_name", "base_model")
"""What ``version.json``'s ``tuned_model`` holds for a ``vertex_gemini`` version."""


def version_kind(metadata: dict[str, Any]) -> str:
    """A version's kind from its ``version.json`` (``adapter`` when it records none).

    Raises:
        UserError: If it records a kind adaptune does not know.
    """
    kind = metadata.get("kind", ADAPTER)
    if kind not in KIND_FILES:
        raise UserError(f"unknown version kind {kind!r}; known: {sorted(KIND_FILES)}")
    return str(kind)


def required_files(metadata: dict[str, Any]) -> tuple[str, ...]:
    """The files a version of this metadata's kind must hold."""
    return KIND_FILES[version_kind(metadata)]


def check_tuned_model(metadata: dict[str, Any]) -> dict[str, str]:
    """A ``vertex_gemini`` version's ``tuned_model`` record (model, endpoint, job, base model).

    Raises:
        UserError: If it is missing or lacks the model or the endpoint.
    """
    tuned = metadata.get("tuned_model")
    if not isinstance(tuned, dict) or not tuned.get("model") or not tuned.get("endpoint"):
        raise UserError("a vertex_gemini version needs tuned_model with its model and endpoint")
    return {k: str(tuned.get(k) or "") for k in TUNED_MODEL_KEYS}
