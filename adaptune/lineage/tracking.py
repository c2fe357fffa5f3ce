"""A tracked local run: the pipeline run plus its manifest and lineage in the metadata store."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from adaptune.atomic import write_json_atomic
from adaptune.hashing import adapter_sha256
from adaptune.lineage.manifest import build_manifest
from adaptune.lineage.recorder import RunRecorder
from adaptune.lineage.store import MetadataStore
from adaptune.run_ids import new_run_id
from adaptune.runner.local import LocalRun, run_pipeline

WATCH_SECONDS = 1.0


@dataclass
class TrackedRun:
    """A finished run with its manifest.

    Attributes:
        run: Where the run is and whether it succeeded.
        manifest: The run manifest (also in ``manifest.json``).
        summary: What ``summarise`` returned.
    """

    run: LocalRun
    manifest: dict[str, Any]
    summary: dict[str, Any]


def last_successful_run(store: MetadataStore) -> dict[str, Any] | None:
    """The newest run that succeeded."""
    return next((r for r in store.runs() if r.get("status") == "succeeded"), None)


def run_tracked(
    compiled: Path,
    params: dict[str, Any],
    runs_root: Path,
    summarise: Any = None,
    experiment: str | None = None,
) -> TrackedRun:
    """Run the pipeline, recording each task into the store as it finishes.

    Args:
        compiled: The compiled pipeline YAML.
        params: Every pipeline parameter.
        runs_root: Holds the run directories and ``metadata.sqlite``.
        summarise: ``f(run, params) -> summary dict`` whose metrics and gate go into the
            manifest and the store.
        experiment: Records the run in this experiment context.

    Returns:
        The run and its manifest.
    """
    run_id = new_run_id()
    spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
    full = {**params, "run_id": run_id}
    manifest = build_manifest(run_id, compiled, full)
    store = MetadataStore(runs_root)
    store.start_run(
        run_id,
        {
            "fingerprint": manifest["fingerprint"],
            "run_dir": str((runs_root / run_id).resolve()),
            "data_sha256": manifest["data_sha256"],
            "model_name": params.get("model_name"),
        },
    )
    if experiment:
        store.add_run_to(run_id, "experiment", experiment)
        manifest["experiment"] = experiment
    recorder = RunRecorder(
        store,
        run_id,
        runs_root / run_id,
        spec,
        full,
        datetime.now().astimezone(),
        manifest["data_sha256"],
    )
    stop = threading.Event()

    def watch() -> None:  # record tasks as they finish
        while not stop.wait(WATCH_SECONDS):
            if (runs_root / run_id).is_dir():
                recorder.record()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = run_pipeline(compiled, params, runs_root, run_id=run_id)
    finally:
        stop.set()
        watcher.join()
    ids = recorder.record()
    summary = summarise(run, full) if summarise else {}
    adapter = summary.get("outputs", {}).get("adapter")
    results = {
        "status": "succeeded" if run.succeeded else "failed",
        "error": run.error,
        "metrics": summary.get("metrics"),
        "production": summary.get("production"),
        "data_sha256_normalised": summary.get("data_sha256"),
        "gate": summary.get("gate"),
        "registry": summary.get("registry"),
        "adapter_sha256": adapter_sha256(Path(adapter)) if adapter else None,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    manifest |= results
    write_json_atomic(run.run_dir / "manifest.json", manifest)
    store.finish_run(
        run_id,
        results["status"],
        **{k: v for k, v in results.items() if k != "status"},
        artifacts=len(ids),
    )
    store.close()
    return TrackedRun(run, manifest, summary)
