"""The end-of-run summary: what was validated, how training went, base vs tuned, the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adaptune.atomic import write_json_atomic
from adaptune.evaluation.loss import LOSS_METRICS
from adaptune.evaluation.metrics import METRICS
from adaptune.lineage.recorder import OutputArtifact, TaskRecord
from adaptune.runner import dag
from adaptune.runner.dag import DagTask
from adaptune.runner.local import LocalRun
from adaptune.vertex.resource_uris import RESOURCE_NAME_KEY

SHOWN_METRICS = (*METRICS, *LOSS_METRICS)


def build_summary(
    run: LocalRun, params: dict[str, Any], tasks: dict[str, TaskRecord]
) -> dict[str, Any]:
    """Collect the facts of a run from its task records into one JSON-able dict."""

    def param(task: DagTask, name: str) -> Any:
        record = tasks.get(task.name)
        return record.outputs.get(name) if record else None

    def artifact(task: DagTask, name: str) -> OutputArtifact | None:
        record = tasks.get(task.name)
        return record.artifacts.get(name) if record else None

    def resource(task: DagTask, name: str) -> str | None:
        """The resource name a google.Vertex* artifact output names."""
        found = artifact(task, name)
        return found.metadata.get(RESOURCE_NAME_KEY) if found else None

    def ran(task: DagTask) -> bool:
        return task.name in tasks and tasks[task.name].status == "succeeded"

    metrics_artifact = artifact(dag.EVALUATE, "eval_metrics")
    eval_metrics = metrics_artifact.metadata if metrics_artifact else {}
    training_artifact = artifact(dag.TUNE, "training_metrics")
    production_version = param(dag.EVALUATE, "production_version")
    promoted, note = _release_outcome(param, ran)
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "run_dir": str(run.run_dir),
        "status": "succeeded" if run.succeeded else "failed",
        # The task's name, whether its step reported the error or not.
        "failed_step": next((t.name for t in tasks.values() if t.status == "failed"), None)
        or run.failed_step,
        "error": run.error,
        "params": params,
        "tasks": [
            {"task": t.name, "status": t.status, "start_time": t.start_time, "end_time": t.end_time}
            for t in tasks.values()
        ],
        "data_sha256": param(dag.VALIDATE, "data_sha256"),
        "records": {
            "train": param(dag.VALIDATE, "train_records"),
            "eval": param(dag.VALIDATE, "eval_records"),
        },
        "examples": {
            "train": param(dag.FORMAT, "train_examples"),
            "eval": param(dag.FORMAT, "eval_examples"),
        },
        "training": training_artifact.metadata if training_artifact else {},
        "metrics": {
            model: {m: eval_metrics.get(f"{model}_{m}") for m in SHOWN_METRICS}
            for model in ("base", "tuned")
        }
        if eval_metrics
        else {},
        # What the run was compared with: registry state, not a property of the run's model.
        "production": {
            "version": production_version,
            "metrics": {m: eval_metrics.get(f"production_{m}") for m in SHOWN_METRICS},
        }
        if production_version
        else None,
        "gate": {
            "metric": (params.get("gate") or {}).get("metric"),
            "passed": param(dag.GATE, "Output"),
            "reason": param(dag.GATE, "reason"),
        }
        if ran(dag.GATE)
        else None,
        "registry": {
            "model_ref": param(dag.REGISTER, "model_ref"),
            "version": param(dag.REGISTER, "version"),
            "promoted": promoted,
            "note": note,
            "path": str(
                Path(params["registry_dir"])
                / params["model_name"]
                / f"v{param(dag.REGISTER, 'version')}"
            ),
        }
        if ran(dag.REGISTER)
        else None,
        "vertex": {
            # Deployed and promoted: a deploy undone because production moved does not count.
            "deployed": ran(dag.DEPLOY) and param(dag.DEPLOY, "promoted") is not False,
            "reason": param(dag.WANTS_VERTEX, "reason"),
            "model": resource(dag.DEPLOY, "vertex_model"),
            "endpoint": resource(dag.DEPLOY, "vertex_endpoint"),
        }
        if ran(dag.WANTS_VERTEX)
        else None,
        "gemini": {
            "job_name": param(dag.TUNE_GEMINI, "job_name"),
            "model": resource(dag.TUNE_GEMINI, "vertex_model"),
            "endpoint": param(dag.TUNE_GEMINI, "endpoint"),
            "data_stats": tuning.metadata
            if (tuning := artifact(dag.TUNE_GEMINI, "tuning_metrics"))
            else {},
        }
        if ran(dag.TUNE_GEMINI)
        else None,
        "outputs": {
            label: found.uri
            for task in dag.BY_NAME.values()
            for name, label in task.listed.items()
            if (found := artifact(task, name))
        }
        | {"run log": str(run.run_dir / "run.log"), "parameters": str(run.run_dir / "params.yaml")},
    }
    write_json_atomic(run.run_dir / "summary.json", summary)
    return summary


def _release_outcome(param: Any, ran: Any) -> tuple[Any, Any]:
    """Whether the run's version became production, and why not: register's word, or deploy's.

    With a Vertex AI deploy, register-version leaves the version unpromoted and
    deploy-to-vertex promotes it after the deploy; a failed deploy leaves it unpromoted.
    """
    promoted, note = param(dag.REGISTER, "promoted"), param(dag.REGISTER, "note")
    if not param(dag.REGISTER, "deploy_first"):
        return promoted, note
    if ran(dag.DEPLOY):
        return bool(param(dag.DEPLOY, "promoted")), param(dag.DEPLOY, "note") or ""
    return False, "not promoted: its Vertex AI deploy did not succeed"


def _short(path: str | None) -> str:
    """``path`` relative to the current directory when it lies below it."""
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the summary for a person: a few lines, one table, where everything is."""
    console = console or Console(soft_wrap=True)
    console.rule(f"adaptune run {summary['run_id']}")
    if summary["status"] == "failed":
        console.print(f"[bold red]FAILED[/] at step [bold]{summary['failed_step'] or '?'}[/]:")
        console.print(summary["error"] or "", markup=False, highlight=False)
    records = summary["records"]
    if records["train"] is not None:
        eval_part = f", eval {records['eval']}" if records["eval"] else " (eval split off by hash)"
        console.print(
            f"records validated: train {records['train']}{eval_part}; "
            f"data sha256 {summary['data_sha256'][:16]}…"
        )
    training = summary["training"]
    if training:
        console.print(
            f"training: loss {training['first_loss']:.3f} → {training['final_loss']:.3f} over "
            f"{int(training['steps'])} steps, {training['tokens_per_second']:,.0f} tokens/s, "
            f"{training['wall_seconds']:.1f} s"
            + (
                f"; best eval loss {training['eval_loss']:.3f} at step {int(training['best_step'])}"
                if "eval_loss" in training
                else ""
            )
        )
    gemini = summary.get("gemini")
    if gemini:
        console.print(
            f"tuning job: {gemini['job_name']} made {gemini['model'] or 'a model'} on "
            f"{gemini['endpoint']}",
            markup=False,
            highlight=False,
        )
    if summary["metrics"]:
        table = Table(title="eval metrics")
        table.add_column("metric")
        columns = dict(summary["metrics"])
        production = summary.get("production")
        if production:
            columns[f"production (v{production['version']})"] = production["metrics"]
        for label in columns:
            table.add_column(label, justify="right")
        for metric in SHOWN_METRICS:
            values = [scores.get(metric) for scores in columns.values()]
            if all(v is None for v in values):
                continue
            table.add_row(metric, *("" if v is None else f"{v:.4f}" for v in values))
        console.print(table)
    gate = summary["gate"]
    if gate:
        style = "bold green" if gate["passed"] else "bold yellow"
        console.print(f"gate: [{style}]{escape(gate['reason'])}[/]")
    registry = summary["registry"]
    if registry:
        status = (
            "is now production"
            if registry.get("promoted", True)
            else f"is registered, [bold yellow]{escape(registry['note'])}[/]"
        )
        where = _short(registry["path"])
        console.print(f"registry: [bold]{registry['model_ref']}[/] {status}, at {where}")
    elif gate and not gate["passed"]:
        console.print("registry: no new version (register branch skipped)")
    vertex = summary.get("vertex")
    if vertex and vertex["deployed"]:
        console.print(f"vertex: deployed as {vertex['model']} on {vertex['endpoint']}")
    console.print("outputs:")
    for label, path in summary["outputs"].items():
        console.print(f"  {label:16} {_short(path)}", markup=False, highlight=False)
    console.print(
        f"  {'summary':16} {_short(str(Path(summary['run_dir']) / 'summary.json'))}",
        markup=False,
        highlight=False,
    )
