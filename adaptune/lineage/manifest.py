"""The run manifest: everything needed to say what produced a model and to make it again."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from adaptune.hashing import sha256_file, sha256_json, sha256_text

PACKAGES = (
    "adaptune",
    "kfp",
    "torch",
    "transformers",
    "peft",
    "tokenizers",
    "safetensors",
    "rouge-score",
    "sacrebleu",
    "google-cloud-pipeline-components",
)
REPO_ROOT = Path(__file__).resolve().parents[2]


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The source tree's commit and whether it has uncommitted changes (None outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a run's result."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def base_model_identity(name: str) -> dict[str, Any]:
    """The base model's name plus a hash of its config (and tokenizer, for built-in models)."""
    from adaptune.base_models import builtin

    if builtin.is_builtin(name):
        from adaptune.base_models import load_base_model

        base = load_base_model(name)
        config = base.model.config.to_json_string(use_diff=False)
        tokenizer = base.tokenizer.backend_tokenizer.to_str()
        return {
            "name": name,
            "config_sha256": sha256_text(config),
            "tokenizer_sha256": sha256_text(tokenizer),
        }
    config_file = Path(name) / "config.json"
    return {
        "name": str(Path(name).resolve()),
        "config_sha256": sha256_file(config_file) if config_file.is_file() else None,
    }


def _base_model(params: dict[str, Any]) -> dict[str, Any]:
    """The run's base model: a managed Gemini model (backend vertex_gemini) or our own."""
    if "vertex_gemini" in params:  # Google's model: its name is all there is to record
        managed = params["vertex_gemini"] or {}
        return {"name": str(managed.get("base_model") or ""), "backend": "vertex_gemini"}
    return base_model_identity(str(params["base_model"]))


def data_hashes(params: dict[str, Any]) -> dict[str, str | None]:
    """sha256 of each data file's bytes."""
    hashes: dict[str, str | None] = {}
    for key in ("train_data", "eval_data"):
        value = params.get(key)
        if value:
            hashes[key] = sha256_file(Path(value)) if Path(value).is_file() else None
    return hashes


def fingerprint(params: dict[str, Any], data: dict[str, str | None], spec_sha256: str) -> str:
    """What decides a run's result: data content, parameters (not the run id) and the spec."""
    relevant = {k: v for k, v in params.items() if k != "run_id"}
    for key in data:  # the data's content, not where it lies, is what matters
        relevant.pop(key, None)
    return sha256_json({"params": relevant, "data": data, "spec": spec_sha256})


def build_manifest(run_id: str, compiled: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The manifest written when a run starts (results are added when it ends)."""
    spec_sha256 = sha256_file(compiled)
    data = data_hashes(params)
    return {
        "run_id": run_id,
        "compiled_spec": {"path": str(compiled.resolve()), "sha256": spec_sha256},
        "source": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "params": params,
        "seed": params.get("seed"),
        "base_model": _base_model(params),
        "data_sha256": data,
        "fingerprint": fingerprint(params, data, spec_sha256),
    }
