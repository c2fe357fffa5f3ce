"""``adaptune run --resume RUN_ID``: continue a killed or failed local run in place.

A resume runs the same pipeline with the same parameters, under the same run id, in the same
run directory, as one more attempt. Before anything runs it checks that the run exists, is not
running and did not succeed, that its ``manifest.json`` and ``params.yaml`` are intact and agree
with each other and with the fingerprint the metadata store recorded when it started, that its
data files still have the sha256 in its manifest and that the compiled pipeline is the one it
ran. Any of these failing is a one-line refusal and nothing is changed.

Then each entry of the run's own kfp.local cache (``<run_dir>/cache/``) is checked: every output
artifact it names must lie in the run's directory and still have the sha256 the lineage store
recorded for it. An entry that fails is removed (the run made it), so that task runs again;
kfp.local reuses the others. tune-adapter, when it runs again, continues from its newest
checkpoint under ``<run_dir>/checkpoints/`` (made with the same data and settings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptune.errors import UserError
from adaptune.hashing import sha256_file
from adaptune.lineage.manifest import data_hashes, fingerprint, git_state
from adaptune.lineage.recorder import artifact_digest
from adaptune.lineage.store import STORE_FILE, MetadataStore, RunNotRestartable
from adaptune.run_ids import check_run_id
from adaptune.runner.local import (
    CACHE_SUBDIR,
    CACHED_LOCALLY,
    MANIFEST_FILE,
    PARAMS_FILE,
    PIPELINE_SUBDIR,
)
from adaptune.runner.params import load_config

ARTIFACT_MARKER = "__kfp_artifact__"
"""How kfp.local's cache entries mark an artifact output (``kfp/local/cache.py``)."""
ARTIFACT_LIST_MARKER = "__kfp_artifact_list__"
RESULT_KEYS = (
    "status",
    "failed_step",
    "error",
    "metrics",
    "production",
    "data_sha256_normalised",
    "gate",
    "registry",
    "vertex",
    "adapter_sha256",
    "finished_at",
    "release_settled",
)
"""What an attempt adds to the manifest at its end; a resume clears them first."""


@dataclass(frozen=True)
class CacheEntry:
    """One kfp.local cache entry of the run, checked.

    Attributes:
        path: The entry's file.
        task: The task whose outputs it holds (None when it names no artifact of this run).
        problem: Why it cannot be reused (None: its outputs match their recorded sha256).
    """

    path: Path
    task: str | None
    problem: str | None


@dataclass(frozen=True)
class ResumePlan:
    """What a resume will run.

    Attributes:
        run_id: The run.
        run_dir: Its directory.
        compiled: The compiled pipeline it ran (same sha256).
        params: Its parameters, run id included.
        manifest: Its manifest as it stands (the last attempt's results cleared).
        started: When its first attempt started.
        entries: Its cache entries, checked.
    """

    run_id: str
    run_dir: Path
    compiled: Path
    params: dict[str, Any]
    manifest: dict[str, Any]
    started: datetime
    entries: list[CacheEntry] = field(default_factory=list)

    @property
    def reusable(self) -> list[str]:
        """Tasks whose outputs a resume may reuse."""
        return sorted({e.task for e in self.entries if e.task and not e.problem})

    @property
    def dropped(self) -> list[CacheEntry]:
        """Entries a resume removes (their task runs again)."""
        return [e for e in self.entries if e.problem]


def _refuse(run_id: str, why: str) -> UserError:
    return UserError(f"cannot resume run {run_id}: {why}")


def _read_manifest(run_id: str, run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        raise _refuse(run_id, f"{path} is {'not a file' if path.exists() else 'missing'}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(run_id, f"{path} is not valid JSON ({exc})") from None
    compiled = manifest.get("compiled_spec") if isinstance(manifest, dict) else None
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("params"), dict)
        or not isinstance(compiled, dict)
        or not isinstance(compiled.get("path"), str)
        or not isinstance(compiled.get("sha256"), str)
        or not isinstance(manifest.get("data_sha256"), dict)
    ):
        raise _refuse(run_id, f"{path} is damaged (params, compiled_spec or data_sha256)")
    return manifest


def _read_params(run_id: str, run_dir: Path) -> dict[str, Any]:
    """``params.yaml``, read as a config file is (UTF-8, 1 MiB at most, no YAML aliases)."""
    path = run_dir / PARAMS_FILE
    if not path.is_file():
        raise _refuse(run_id, f"{path} is {'not a file' if path.exists() else 'missing'}")
    try:
        return load_config(path)
    except UserError as exc:
        raise _refuse(run_id, str(exc)) from None


def _started(record: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(record.get("start_time"))).astimezone()
    except ValueError:
        return datetime.now().astimezone()


def plan_resume(runs_root: Path, run_id: str) -> ResumePlan:
    """Check that a run can be resumed as it ran, and which of its cache entries still hold.

    Reads only: nothing is changed.

    Raises:
        UserError: If the run id is invalid or unknown, the run is running or succeeded, its
            manifest or parameters are missing, damaged or disagree, a data file changed, or
            the compiled pipeline changed.
    """
    check_run_id(run_id)
    root = Path(runs_root)
    if not (root / STORE_FILE).is_file():
        raise UserError(f"unknown run {run_id}: no runs recorded in {root}")
    store = MetadataStore(root)
    try:
        record = store.run(run_id)
        if record is None:
            raise UserError(f"unknown run {run_id} in {root} (adaptune runs list shows them)")
        if record.get("status") == "running":
            raise _refuse(run_id, f"it is running now (process {record.get('pid')})")
        if record.get("status") == "succeeded":
            raise _refuse(run_id, "it succeeded: there is nothing to resume")
        run_dir = (root / run_id).resolve()
        if not run_dir.is_dir():
            raise _refuse(run_id, f"its directory {run_dir} is gone")
        manifest = _read_manifest(run_id, run_dir)
        params = manifest["params"]
        if params.get("run_id") != run_id or manifest.get("run_id") != run_id:
            raise _refuse(run_id, f"{run_dir / MANIFEST_FILE} names another run")
        if _read_params(run_id, run_dir) != params:
            raise _refuse(run_id, f"{run_dir / PARAMS_FILE} and {MANIFEST_FILE} disagree")
        compiled = Path(manifest["compiled_spec"]["path"])
        if not compiled.is_file() or sha256_file(compiled) != manifest["compiled_spec"]["sha256"]:
            raise _refuse(
                run_id, f"the compiled pipeline {compiled} is gone or changed since it ran"
            )
        recorded = manifest["data_sha256"]
        current = data_hashes(params)
        for key, digest in recorded.items():
            if digest and current.get(key) != digest:
                raise _refuse(run_id, f"{key} {params.get(key)} is missing or its content changed")
        if fingerprint(params, current, sha256_file(compiled)) != record.get("fingerprint"):
            raise _refuse(run_id, f"its {MANIFEST_FILE} differs from what it started with")
        unchecked = [
            k for k in ("train_data", "eval_data") if params.get(k) and not recorded.get(k)
        ]
        entries = check_cache(store, run_id, run_dir, unchecked)
    finally:
        store.close()
    manifest = {k: v for k, v in manifest.items() if k not in RESULT_KEYS}
    return ResumePlan(run_id, run_dir, compiled, params, manifest, _started(record), entries)


def check_cache(
    store: MetadataStore, run_id: str, run_dir: Path, unchecked_data: list[str]
) -> list[CacheEntry]:
    """Check every entry of the run's kfp.local cache against the lineage store.

    Args:
        store: The metadata store (the recorded sha256 of each artifact).
        run_id: The run.
        run_dir: Its directory.
        unchecked_data: Data parameters whose bytes could not be checked (a glob, a gs:// URI):
            the entries of tasks that read them are not reused.
    """
    cache = run_dir / CACHE_SUBDIR
    if not cache.is_dir():
        return []
    pipeline = run_dir / PIPELINE_SUBDIR
    entries = []
    for path in sorted(cache.glob("*.json")):
        task, problem = _check_entry(store, run_id, pipeline, path)
        if problem is None and task in CACHED_LOCALLY and unchecked_data:
            problem = f"the bytes of {', '.join(unchecked_data)} cannot be checked"
        entries.append(CacheEntry(path, task, problem))
    return entries


def _artifacts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for value in entry.values():
        if isinstance(value, dict) and value.get(ARTIFACT_MARKER):
            found.append(value)
        elif isinstance(value, dict) and value.get(ARTIFACT_LIST_MARKER):
            found += [a for a in value.get("artifacts") or [] if isinstance(a, dict)]
    return found


def _check_entry(
    store: MetadataStore, run_id: str, pipeline: Path, path: Path
) -> tuple[str | None, str | None]:
    """The entry's task and why it cannot be reused (None: it can)."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, "not a readable cache entry"
    if not isinstance(entry, dict):
        return None, "not a cache entry"
    artifacts = _artifacts(entry)
    if not artifacts:
        return None, "names no output artifact to check"
    task = None
    for artifact in artifacts:
        uri = artifact.get("uri")
        if not isinstance(uri, str) or not uri:
            return task, "an output has no URI"
        resolved = Path(uri).resolve()
        try:
            parts = resolved.relative_to(pipeline.resolve()).parts
        except ValueError:
            return task, f"{uri} is not in this run's directory"
        if len(parts) < 3:
            return task, f"{uri} is not a task output"
        task = parts[1]
        if not resolved.exists():
            return task, f"{uri} is missing"
        mine = [a for a in store.artifacts_at(uri) if a.properties.get("run_id") == run_id]
        if not mine or not mine[0].sha256:
            return task, f"{uri} has no recorded sha256"
        if artifact_digest(mine[0].type, resolved) != mine[0].sha256:
            return task, f"{uri} changed since it was recorded"
    return task, None


def restart(runs_root: Path, plan: ResumePlan) -> dict[str, Any]:
    """Put the run back to running, drop the cache entries that failed their check.

    The restart is atomic: of two resumes of one run, only one gets it.

    Returns:
        The manifest of this attempt (status ``running``).

    Raises:
        UserError: If the run started running or succeeded since the plan was made.
    """
    store = MetadataStore(runs_root)
    try:
        try:
            before = store.restart_run(plan.run_id)
        except RunNotRestartable as exc:
            raise _refuse(plan.run_id, str(exc)) from None
    finally:
        store.close()
    for entry in plan.dropped:
        entry.path.unlink(missing_ok=True)
    attempts = int(before.get("attempts") or 1) + 1
    resumes = [r for r in plan.manifest.get("resumes") or [] if isinstance(r, dict)]
    resumes.append(
        {
            "attempt": attempts,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": git_state(),
            "reusable": plan.reusable,
            "rerun": {e.task or e.path.name: e.problem for e in plan.dropped},
        }
    )
    return {**plan.manifest, "status": "running", "attempts": attempts, "resumes": resumes}
