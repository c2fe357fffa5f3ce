"""A local run, start to end: manifest → kfp.local → lineage record → summary.

``run_local`` is what ``adaptune run`` does; ``unchanged_since`` is ``--if-changed``;
``plan_reproduction`` and ``reproduce`` are ``adaptune reproduce``. Each returns a result and
prints nothing itself: the CLI decides what to show, by passing a ``ProgressReporter`` (told
the run's id and, every ``WATCH_SECONDS`` and once at the end, every task's progress) and
``stream_log`` (the executor log printed as it comes; it always goes to the run's ``run.log``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.hashing import adapter_sha256, sha256_file
from adaptune.lineage.manifest import build_manifest, data_hashes, fingerprint
from adaptune.lineage.recorder import RunRecorder
from adaptune.lineage.store import MetadataStore
from adaptune.run_ids import check_run_id, new_run_id
from adaptune.runner import dag
from adaptune.runner.local import (
    LOG_FILE,
    MANIFEST_FILE,
    PIPELINE_SUBDIR,
    LocalRun,
    prepare_run_dir,
    run_in,
)
from adaptune.runner.progress import TaskProgress, task_progress
from adaptune.runner.resume import ResumePlan, restart
from adaptune.runner.summary import build_summary
from adaptune.runner.task_records import RunState, read_task_records, task_dirs

log = logging.getLogger(__name__)
WATCH_SECONDS = 1.0


class ProgressReporter(Protocol):
    """What a caller is told while a run runs (``runner.task_table`` shows it on a console)."""

    def start(self, run_id: str, run_dir: Path) -> None:
        """The run is about to run, in ``run_dir`` (its ``run.log`` holds the executor log)."""

    def update(self, tasks: list[TaskProgress]) -> None:
        """Every task of the DAG table as it stands: while it runs, then once it ended."""


@dataclass(frozen=True)
class RunResult:
    """A finished local run.

    Attributes:
        run_id: The run's id (also its directory's name).
        run_dir: ``<runs_root>/<run_id>``.
        succeeded: Whether every task that ran succeeded.
        error: The failing step's message, when a step failed.
        failed_step: The step that failed.
        manifest: The run manifest (also in ``manifest.json``).
        summary: The run summary (also in ``summary.json``).
    """

    run_id: str
    run_dir: Path
    succeeded: bool
    error: str | None
    failed_step: str | None
    manifest: dict[str, Any]
    summary: dict[str, Any]


def run_local(
    compiled: Path,
    params: dict[str, Any],
    runs_root: Path,
    experiment: str | None = None,
    run_id: str | None = None,
    *,
    reporter: ProgressReporter | None = None,
    stream_log: bool = False,
) -> RunResult:
    """Run the compiled pipeline with kfp.local, recording lineage and writing the summary.

    The manifest (what is about to run) is written to ``manifest.json`` with status
    ``running`` before anything runs, so a killed run leaves its parameters and data hashes
    behind; each task is recorded in the metadata store as it finishes; at the end the summary
    and the manifest, with the results, are written and the run is marked succeeded or failed.

    Args:
        compiled: The compiled pipeline YAML.
        params: Every pipeline parameter (see ``runner.params.pipeline_params``).
        runs_root: Holds the run directories and ``metadata.sqlite``.
        experiment: Also records the run in this experiment (a named group of runs).
        run_id: The new run's id (default: a new one); see ``check_new_run_id``.
        reporter: Told the run's id and its tasks' progress as it runs.
        stream_log: Print the executor log as it comes (it always goes to ``run.log``).

    Returns:
        The finished run, whether it succeeded or failed.

    Raises:
        UserError: If ``run_id`` is not a valid id or a run already has it.
    """
    run_id = check_new_run_id(runs_root, run_id) if run_id else new_run_id()
    full = {**params, "run_id": run_id}
    manifest = build_manifest(run_id, compiled, full)
    store = MetadataStore(runs_root)
    try:
        store.start_run(
            run_id,
            {
                "fingerprint": manifest["fingerprint"],
                "run_dir": str((Path(runs_root) / run_id).resolve()),
                "data_sha256": manifest["data_sha256"],
                "model_name": params.get("model_name"),
                "gate_metric": (params.get("gate") or {}).get("metric"),
            },
        )
        if experiment:
            store.add_run_to(run_id, "experiment", experiment)
            manifest["experiment"] = experiment
        run_dir = prepare_run_dir(runs_root, run_id, params)
        manifest |= {"status": "running", "attempts": 1}
        write_json_atomic(run_dir / MANIFEST_FILE, manifest)
        started = datetime.now().astimezone()
        return _attempt(store, compiled, full, run_dir, manifest, started, reporter, stream_log)
    finally:
        store.close()


def check_new_run_id(runs_root: Path, run_id: str) -> str:
    """Return ``run_id`` if it is a valid run id that no run in ``runs_root`` has.

    Raises:
        UserError: Otherwise.
    """
    check_run_id(run_id)
    if (Path(runs_root) / run_id).exists():
        raise UserError(f"--run-id {run_id}: {Path(runs_root) / run_id} already exists")
    store = MetadataStore(runs_root, create=False) if Path(runs_root).is_dir() else None
    try:
        if store is not None and store.run(run_id) is not None:
            raise UserError(f"--run-id {run_id}: a run with this id is already recorded")
    finally:
        if store is not None:
            store.close()
    return run_id


def _attempt(
    store: MetadataStore,
    compiled: Path,
    full: dict[str, Any],
    run_dir: Path,
    manifest: dict[str, Any],
    started: datetime,
    reporter: ProgressReporter | None,
    stream_log: bool,
) -> RunResult:
    """Run the pipeline once in ``run_dir``, record its tasks, write the summary and manifest."""
    run_id = str(full["run_id"])
    spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
    data_files = {
        p: (str(full[p]), digest) for p, digest in manifest["data_sha256"].items() if digest
    }
    recorder = RunRecorder(store, run_id, run_dir / LOG_FILE, data_files)
    if reporter is not None:
        reporter.start(run_id, run_dir)
    with _recording_while_running(recorder, run_dir, spec, full, started, reporter):
        run = run_in(compiled, full, run_dir, stream_log)
    settled = settle_own_release(full)
    state = RunState(started, datetime.now().astimezone(), run.succeeded, _task_of(run))
    if reporter is not None:
        reporter.update(task_progress(run_dir, spec, full, state))
    tasks = read_task_records(run_dir, spec, full, state)
    ids = recorder.record(tasks.values())
    summary = build_summary(run, full, tasks)
    adapter = summary["outputs"].get("adapter")
    results = {
        "status": "succeeded" if run.succeeded else "failed",
        "failed_step": summary.get("failed_step"),
        "error": run.error,
        "metrics": summary.get("metrics"),
        "production": summary.get("production"),
        "data_sha256_normalised": summary.get("data_sha256"),
        "gate": summary.get("gate"),
        "registry": summary.get("registry"),
        "vertex": summary.get("vertex"),
        "adapter_sha256": adapter_sha256(Path(adapter)) if adapter else None,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if settled:
        results["release_settled"] = settled
    manifest |= results
    if manifest.get("resumes"):
        manifest["resumes"][-1]["reused"] = reused_tasks(run_dir)
    write_json_atomic(run_dir / MANIFEST_FILE, manifest)
    store.finish_run(
        run_id,
        results["status"],
        **{k: v for k, v in results.items() if k != "status"},
        artifacts=len(ids),
    )
    return RunResult(
        run_id, run.run_dir, run.succeeded, run.error, run.failed_step, manifest, summary
    )


def settle_own_release(params: dict[str, Any]) -> str | None:
    """After an attempt: settle the run's own Vertex AI release if its task died in between.

    A deploy-to-vertex task killed between its deploy and its promotion (or its undo) leaves a
    pending-release record naming this run (``registry.pending_release``). The attempt is over,
    so that task is gone: the deployment is undone unless its version is production (the
    resume deploys and promotes it again). Returns what was done, or why settling failed (the
    record then stays for the next release or resume); None when there was nothing to settle.
    """
    from adaptune.registry.pending_release import read_pending_release
    from adaptune.vertex.deployment import settle_pending_release

    model, registry = params.get("model_name"), params.get("registry_dir")
    if not params.get("vertex_deploy") or not model or not registry:
        return None
    try:
        pending = read_pending_release(Path(registry), str(model))
        if pending is None or pending.run_id != params.get("run_id") or not pending.interrupted():
            return None
        return settle_pending_release(Path(registry), pending)
    except UserError as exc:
        return str(exc)


def resume_local(
    plan: ResumePlan,
    runs_root: Path,
    *,
    reporter: ProgressReporter | None = None,
    stream_log: bool = False,
) -> RunResult:
    """Run a planned resume: one more attempt of the run, in place, under the same id.

    The run's record goes back to ``running`` (``attempts`` counts this one), its cache entries
    that failed their check are removed, the manifest is rewritten with status ``running``, and
    the pipeline runs again: kfp.local reuses the tasks whose entries remain, tune-adapter
    continues from its newest checkpoint. At the end the summary and manifest are rewritten and
    the run is marked succeeded or failed, as any run. ``reporter`` and ``stream_log`` are as
    for ``run_local``.

    Raises:
        UserError: If the run started running or succeeded since it was planned.
    """
    manifest = restart(runs_root, plan)
    write_json_atomic(plan.run_dir / MANIFEST_FILE, manifest)
    store = MetadataStore(runs_root)
    try:
        return _attempt(
            store,
            plan.compiled,
            plan.params,
            plan.run_dir,
            manifest,
            plan.started,
            reporter,
            stream_log,
        )
    finally:
        store.close()


def reused_tasks(run_dir: Path) -> list[str]:
    """Tasks whose outputs the newest attempt took from an earlier one (kfp.local cache hits)."""
    attempts = sorted(p for p in (run_dir / PIPELINE_SUBDIR).glob("*") if p.is_dir())
    if len(attempts) < 2:
        return []
    return sorted(name for name, d in task_dirs(run_dir).items() if d.parent != attempts[-1])


def _task_of(run: LocalRun) -> str | None:
    """The task a failed step ran in: step ``validate_dataset`` is task ``validate-dataset``."""
    if run.failed_step is None:
        return None
    name = run.failed_step.replace("_", "-")
    return name if name in dag.BY_NAME else None


@contextmanager
def _recording_while_running(
    recorder: RunRecorder,
    run_dir: Path,
    spec: dict[str, Any],
    params: dict[str, Any],
    started: datetime,
    reporter: ProgressReporter | None,
) -> Iterator[None]:
    """Record the tasks that finished, every ``WATCH_SECONDS``, until the block ends.

    The reporter, if any, is told every task's progress at each tick too.
    """
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(WATCH_SECONDS):
            if not run_dir.is_dir():
                continue
            try:
                records = read_task_records(run_dir, spec, params, RunState(started))
                recorder.record(records.values())
                if reporter is not None:
                    reporter.update(task_progress(run_dir, spec, params, RunState(started)))
            except (OSError, ValueError, sqlite3.Error) as exc:
                # A file caught half-written, a busy store: the next tick or the final record
                # after the run covers it.
                log.debug("recording while running skipped a tick: %s", exc)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def unchanged_since(compiled: Path, params: dict[str, Any], runs_root: Path) -> str | None:
    """The id of the last successful run, when its data content and parameters equal these.

    ``None`` when there is no such run, or when anything that decides the result changed:
    the data files' bytes, a parameter (the run id aside) or the compiled pipeline.
    """
    store = MetadataStore(runs_root)
    try:
        last = next((r for r in store.runs() if r.get("status") == "succeeded"), None)
    finally:
        store.close()
    current = fingerprint(params, data_hashes(params), sha256_file(compiled))
    if last and last.get("fingerprint") == current:
        return last["run_id"]
    return None


def read_manifest(runs_root: Path, run_id: str) -> dict[str, Any]:
    """A run's manifest.

    Raises:
        UserError: If the run id is invalid, or the run has none or it is damaged.
    """
    check_run_id(run_id)
    path = Path(runs_root) / run_id / MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"no manifest for run {run_id!r} in {runs_root}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path} is damaged: not a JSON object")
    return manifest


@dataclass(frozen=True)
class ReproductionPlan:
    """What rerunning a run will run.

    Attributes:
        run_id: The run to reproduce.
        compiled: The compiled pipeline it ran.
        params: Its parameters (without its run id).
        expected_sha256: Its adapter's sha256 (None when it made no adapter).
        spec_changed: Whether the compiled pipeline's bytes changed since (or it is gone).
    """

    run_id: str
    compiled: Path
    params: dict[str, Any]
    expected_sha256: str | None
    spec_changed: bool


@dataclass(frozen=True)
class Reproduction:
    """A rerun and whether it made the same adapter."""

    plan: ReproductionPlan
    result: RunResult

    @property
    def adapter_sha256(self) -> str | None:
        """The rerun's adapter sha256."""
        return self.result.manifest.get("adapter_sha256")

    @property
    def reproduced(self) -> bool:
        """Whether the rerun's adapter has the original's sha256."""
        return bool(self.plan.expected_sha256) and self.plan.expected_sha256 == self.adapter_sha256


def plan_reproduction(runs_root: Path, run_id: str) -> ReproductionPlan:
    """Read what a run ran, checking its data files are still there with the same bytes.

    Raises:
        UserError: If the run has no manifest, or a data file is missing or changed.
    """
    manifest = read_manifest(runs_root, run_id)
    compiled = Path(manifest["compiled_spec"]["path"])
    spec_changed = (
        not compiled.is_file() or sha256_file(compiled) != manifest["compiled_spec"]["sha256"]
    )
    params = {k: v for k, v in manifest["params"].items() if k != "run_id"}
    for key, digest in (manifest.get("data_sha256") or {}).items():
        path = Path(params[key])
        if digest and (not path.is_file() or sha256_file(path) != digest):
            raise UserError(f"{key} {path} is missing or its content changed since run {run_id}")
    return ReproductionPlan(run_id, compiled, params, manifest.get("adapter_sha256"), spec_changed)


def reproduce(
    plan: ReproductionPlan,
    runs_root: Path,
    *,
    reporter: ProgressReporter | None = None,
    stream_log: bool = False,
) -> Reproduction:
    """Run the plan's pipeline with its parameters again, as a new run.

    ``reporter`` and ``stream_log`` are as for ``run_local``.

    Raises:
        UserError: If the compiled pipeline is gone.
    """
    if not plan.compiled.is_file():
        raise UserError(f"compiled pipeline not found: {plan.compiled}")
    result = run_local(
        plan.compiled, plan.params, runs_root, reporter=reporter, stream_log=stream_log
    )
    return Reproduction(plan, result)
