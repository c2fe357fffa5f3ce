"""What the Runs and run pages show, read from the runs directory and the studio's jobs.

A run's status comes from the metadata store (a run whose process died is marked failed
there), except for the studio's own jobs: ``queued`` before its process started, ``cancelled``
once the studio cancelled it, ``failed`` when its ``adaptune run`` process ended before
recording the run (a refused setting, say). Tasks come from ``runner.progress``, the loss curve
from the run's ``training_loss.jsonl`` (or the tune step's metrics once it finished), the gate,
version and reports from the tasks' outputs. Every path read is inside the run's directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from adaptune.lineage.recorder import TaskRecord
from adaptune.lineage.store import MetadataStore
from adaptune.run_ids import check_run_id
from adaptune.runner import dag
from adaptune.runner.local import MANIFEST_FILE
from adaptune.runner.progress import TaskProgress, task_progress
from adaptune.runner.task_records import RunState, read_task_records
from adaptune.studio.dag_graph import dag_svg, task_edges
from adaptune.studio.jobs import Job, JobQueue
from adaptune.studio.loss_chart import LossChart, loss_chart
from adaptune.studio.settings import StudioSettings
from adaptune.tuning.loss_log import LOSS_LOG_FILE, read_loss_log

SUMMARY_FILE = "summary.json"
FINAL = ("succeeded", "failed", "cancelled")
REPORTS = {
    "validation": (dag.VALIDATE.name, "report", "Validation report"),
    "training": (dag.TUNE.name, "training_report", "Training report"),
    "evaluation": (dag.EVALUATE.name, "report", "Evaluation report"),
}
OUTPUT_TAIL_LINES = 15
OUTPUT_TAIL_BYTES = 8192


@dataclass(frozen=True)
class RunRow:
    """One row of the Runs table."""

    run_id: str
    status: str
    model_name: str
    started: str
    ended: str


@dataclass
class RunView:
    """Everything the run page shows."""

    run_id: str
    status: str
    model_name: str = ""
    started: str = ""
    ended: str = ""
    job: Job | None = None
    tasks: list[TaskProgress] = field(default_factory=list)
    dag: str = ""
    loss: list[tuple[int, float]] = field(default_factory=list)
    chart: LossChart | None = None
    reports: list[tuple[str, str]] = field(default_factory=list)
    gate: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    version: dict[str, Any] | None = None
    output_tail: str = ""
    started_run: bool = False

    @property
    def cancellable(self) -> bool:
        """Whether the page offers "Cancel run" (a studio job, queued or running)."""
        return (
            self.job is not None
            and self.job.state in ("queued", "running")
            and self.status not in FINAL
        )

    @property
    def final(self) -> bool:
        """Whether the run ended (the page stops polling)."""
        return self.status in FINAL

    def to_json(self) -> dict[str, Any]:
        """The view as JSON (``/runs/<id>.json``)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "model_name": self.model_name,
            "started": self.started,
            "ended": self.ended,
            "job": self.job.to_dict() if self.job else None,
            "tasks": [t.__dict__ for t in self.tasks],
            "loss": [[s, v] for s, v in self.loss],
            "reports": {kind: f"/runs/{self.run_id}/reports/{kind}" for kind, _ in self.reports},
            "gate": self.gate,
            "error": self.error,
            "version": self.version,
            "cancellable": self.cancellable,
        }


def status_of(job: Job | None, record: dict[str, Any] | None) -> str:
    """A run's status: the studio's word for its own queued or cancelled jobs, else the store's."""
    if job is not None and job.state in ("queued", "cancelled"):
        return job.state
    if record is not None:
        return str(record.get("status") or "unknown")
    if job is not None and job.state == "running":
        return "running"
    return "failed"  # a job whose process ended without recording a run


def _store_runs(settings: StudioSettings) -> list[dict[str, Any]]:
    store = MetadataStore(settings.runs_dir, create=False)
    try:
        return store.runs()
    finally:
        store.close()


def run_rows(settings: StudioSettings, queue: JobQueue) -> list[RunRow]:
    """Every run of the store and every studio job, newest first."""
    jobs = {job.id: job for job in queue.jobs()}
    records = {r["run_id"]: r for r in _store_runs(settings)}
    rows = []
    for run_id in set(jobs) | set(records):
        job, record = jobs.get(run_id), records.get(run_id) or {}
        started = str(record.get("start_time") or (job.started_at or job.created_at if job else ""))
        ended = str(record.get("end_time") or (job.ended_at if job else "") or "")
        model = record.get("model_name") or (job.params.get("model_name") if job else "") or ""
        rows.append(RunRow(run_id, status_of(job, record or None), str(model), started, ended))
    return sorted(rows, key=lambda r: (r.started, r.run_id), reverse=True)


@lru_cache(maxsize=4)
def _spec(path: Path, mtime_ns: int) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compiled_spec(settings: StudioSettings) -> dict[str, Any] | None:
    """The compiled pipeline the studio runs (parsed, cached by modification time)."""
    try:
        return _spec(settings.compiled, settings.compiled.stat().st_mtime_ns)
    except (OSError, yaml.YAMLError):
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _time(stamp: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(stamp)) if stamp else None
    except ValueError:
        return None


def run_dir_of(settings: StudioSettings, run_id: str) -> Path:
    """The run's directory (the id is checked: never a path outside the runs directory)."""
    return Path(settings.runs_dir).resolve() / check_run_id(run_id)


def load_view(settings: StudioSettings, queue: JobQueue, run_id: str) -> RunView | None:
    """The run page's content; None when there is no such run or job.

    Raises:
        UserError: If ``run_id`` is not a valid run id.
    """
    run_dir = run_dir_of(settings, run_id)
    job = queue.get(run_id)
    record = next((r for r in _store_runs(settings) if r["run_id"] == run_id), None)
    if job is None and record is None and not run_dir.is_dir():
        return None
    manifest = _read_json(run_dir / MANIFEST_FILE)
    if job is None and record is None:  # a run directory the store does not know (yet)
        status = str(manifest.get("status") or "unknown")
    else:
        status = status_of(job, record)
    started_run = record is not None
    record = record or {}
    view = RunView(
        run_id,
        status,
        model_name=str(record.get("model_name") or (job.params.get("model_name") if job else "")),
        started=str(record.get("start_time") or (job.started_at or job.created_at if job else "")),
        ended=str(record.get("end_time") or (job.ended_at if job else "") or ""),
        job=job,
        started_run=started_run,
    )
    summary = _read_json(run_dir / SUMMARY_FILE)
    records = _tasks(settings, view, run_dir, manifest, summary, record)
    view.loss = read_loss_log(run_dir / LOSS_LOG_FILE) or _final_losses(records, run_dir)
    view.chart = loss_chart(view.loss)
    view.reports = [
        (kind, label)
        for kind, (_, _, label) in REPORTS.items()
        if report_path(records, run_dir, kind)
    ]
    view.gate = _gate(records)
    view.version = _version(records)
    view.error = _error(view, summary, manifest, record)
    if job is not None and view.status == "failed" and not record:
        view.output_tail = _tail(queue.output(run_id))
    return view


def _tasks(
    settings: StudioSettings,
    view: RunView,
    run_dir: Path,
    manifest: dict[str, Any],
    summary: dict[str, Any],
    record: dict[str, Any],
) -> dict[str, TaskRecord]:
    """Fill in the view's task table and DAG; return the task records read."""
    spec = compiled_spec(settings)
    params = manifest.get("params")
    records: dict[str, TaskRecord] = {}
    if spec is not None and isinstance(params, dict) and run_dir.is_dir():
        started = (
            _time(record.get("start_time"))
            or datetime.fromtimestamp((run_dir / MANIFEST_FILE).stat().st_mtime).astimezone()
        )
        ended = _time(record.get("end_time")) if view.status != "running" else None
        if view.status in ("failed", "cancelled") and ended is None:
            ended = datetime.now().astimezone()
        failed = str(summary.get("failed_step") or record.get("failed_step") or "")
        failed = failed.replace("_", "-")
        state = RunState(
            started,
            ended,
            view.status == "succeeded",
            failed if failed in dag.BY_NAME else None,
            cancelled=view.status == "cancelled",
        )
        try:
            view.tasks = task_progress(run_dir, spec, params, state)
            records = read_task_records(run_dir, spec, params, state)
        except (OSError, ValueError, KeyError, TypeError):
            view.tasks = []  # files caught half-written: the next poll reads them
    if not view.tasks:
        never = "not run" if view.status in FINAL else "pending"  # e.g. cancelled at start
        view.tasks = [TaskProgress(t.name, never) for t in dag.TASKS]
    view.dag = dag_svg(view.tasks, task_edges(spec) if spec else [])
    return records


def _inside(path: Path, run_dir: Path) -> Path | None:
    """``path`` resolved, if it is a file inside ``run_dir``; else None."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(run_dir.resolve()) or not resolved.is_file():
        return None
    return resolved


def report_path(records: dict[str, TaskRecord], run_dir: Path, kind: str) -> Path | None:
    """The HTML report of this kind the run's tasks wrote, if it lies inside the run's directory."""
    if kind not in REPORTS:
        return None
    task, output, _ = REPORTS[kind]
    record = records.get(task)
    artifact = record.artifacts.get(output) if record else None
    return _inside(Path(artifact.uri), run_dir) if artifact and artifact.uri else None


def find_report(settings: StudioSettings, queue: JobQueue, run_id: str, kind: str) -> Path | None:
    """The run's report file of this kind (``validation``, ``training``, ``evaluation``)."""
    run_dir = run_dir_of(settings, run_id)
    spec = compiled_spec(settings)
    manifest = _read_json(run_dir / MANIFEST_FILE)
    params = manifest.get("params")
    if kind not in REPORTS or spec is None or not isinstance(params, dict):
        return None
    try:
        records = read_task_records(run_dir, spec, params, RunState(datetime.now().astimezone()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report_path(records, run_dir, kind)


def _final_losses(records: dict[str, TaskRecord], run_dir: Path) -> list[tuple[int, float]]:
    """The losses in tune-adapter's metrics file (runs without a live loss log)."""
    record = records.get(dag.TUNE.name)
    artifact = record.artifacts.get("training_metrics") if record else None
    path = _inside(Path(artifact.uri), run_dir) if artifact and artifact.uri else None
    losses = _read_json(path).get("losses") if path else None
    if not isinstance(losses, list):
        return []
    return [(i, float(v)) for i, v in enumerate(losses, 1) if isinstance(v, int | float)]


def _output(records: dict[str, TaskRecord], task: str, name: str) -> Any:
    record = records.get(task)
    return record.outputs.get(name) if record and record.status == "succeeded" else None


def _gate(records: dict[str, TaskRecord]) -> dict[str, Any] | None:
    passed = _output(records, dag.GATE.name, "Output")
    if passed is None:
        return None
    if isinstance(passed, str):
        passed = passed.strip().lower() == "true"
    reason = _output(records, dag.GATE.name, "reason") or ""
    return {"passed": bool(passed), "reason": str(reason)}


def _version(records: dict[str, TaskRecord]) -> dict[str, Any] | None:
    ref = _output(records, dag.REGISTER.name, "model_ref")
    if not ref or "@v" not in str(ref):
        return None
    model, _, number = str(ref).rpartition("@v")
    return {
        "model": model,
        "version": number,
        "text": f"{model} v{number}",
        "href": f"/models/{quote(model, safe='')}",
    }


def _error(
    view: RunView, summary: dict[str, Any], manifest: dict[str, Any], record: dict[str, Any]
) -> dict[str, str] | None:
    if view.status != "failed":
        return None
    failed_task = next((t.name for t in view.tasks if t.state == "failed"), "")
    step = summary.get("failed_step") or manifest.get("failed_step") or record.get("failed_step")
    message = summary.get("error") or manifest.get("error") or record.get("error")
    if not message and view.job is not None and not record:
        code = view.job.exit_code
        message = "adaptune run ended before the run started" + (
            f" (exit status {code})" if code is not None else ""
        )
    return {"step": str(step or failed_task or "unknown"), "message": str(message or "unknown")}


def _tail(path: Path) -> str:
    """The last lines of a job's output."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - OUTPUT_TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-OUTPUT_TAIL_LINES:])
