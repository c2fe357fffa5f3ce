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
from adaptune.runner.local import LocalRun, task_outputs

OUTPUTS = {
    "validated data": ("validate-dataset", "dataset"),
    "formatted data": ("format-text-to-text", "formatted"),
    "adapter": ("tune-adapter", "adapter"),
    "training report": ("tune-adapter", "training_report"),
    "predictions": ("evaluate", "predictions"),
    "eval report": ("evaluate", "report"),
}
SHOWN_METRICS = (*METRICS, *LOSS_METRICS)


def build_summary(run: LocalRun, params: dict[str, Any]) -> dict[str, Any]:
    """Collect the facts of a run from its task outputs into one JSON-able dict."""
    tasks = task_outputs(run.run_dir)

    def param(task: str, name: str) -> Any:
        return tasks.get(task, {}).get("parameters", {}).get(name)

    def artifact(task: str, name: str) -> dict[str, Any]:
        return tasks.get(task, {}).get("artifacts", {}).get(name, {})

    eval_metrics = artifact("evaluate", "eval_metrics").get("metadata", {})
    training = artifact("tune-adapter", "training_metrics").get("metadata", {})
    gate_ran = "should-deploy" in tasks
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "run_dir": str(run.run_dir),
        "status": "succeeded" if run.succeeded else "failed",
        "failed_step": run.failed_step,
        "error": run.error,
        "params": params,
        "data_sha256": param("validate-dataset", "data_sha256"),
        "records": {
            "train": param("validate-dataset", "train_records"),
            "eval": param("validate-dataset", "eval_records"),
        },
        "examples": {
            "train": param("format-text-to-text", "train_examples"),
            "eval": param("format-text-to-text", "eval_examples"),
        },
        "training": training,
        "metrics": {
            model: {m: eval_metrics.get(f"{model}_{m}") for m in SHOWN_METRICS}
            for model in ("base", "tuned")
        }
        if eval_metrics
        else {},
        # What the run was compared with: registry state, not a property of the run's model.
        "production": {
            "version": param("evaluate", "production_version"),
            "metrics": {m: eval_metrics.get(f"production_{m}") for m in SHOWN_METRICS},
        }
        if param("evaluate", "production_version")
        else None,
        "gate": {
            "deploy": param("should-deploy", "Output"),
            "reason": param("should-deploy", "reason"),
        }
        if gate_ran
        else None,
        "registry": {
            "model_ref": param("deploy", "model_ref"),
            "version": param("deploy", "version"),
            "promoted": param("deploy", "promoted"),
            "note": param("deploy", "note"),
            "vertex_model": param("deploy", "vertex_model") or None,
            "path": str(
                Path(params["registry_dir"])
                / params["model_name"]
                / f"v{param('deploy', 'version')}"
            ),
        }
        if "deploy" in tasks
        else None,
        "outputs": {
            label: artifact(task, name).get("uri")
            for label, (task, name) in OUTPUTS.items()
            if artifact(task, name)
        }
        | {"run log": str(run.run_dir / "run.log"), "parameters": str(run.run_dir / "params.yaml")},
    }
    write_json_atomic(run.run_dir / "summary.json", summary)
    return summary


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
        style = "bold green" if gate["deploy"] else "bold yellow"
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
        if registry.get("vertex_model"):
            console.print(f"vertex: deployed as {registry['vertex_model']}")
    elif gate and not gate["deploy"]:
        console.print("registry: no new version (deploy branch skipped)")
    console.print("outputs:")
    for label, path in summary["outputs"].items():
        console.print(f"  {label:16} {_short(path)}", markup=False, highlight=False)
    console.print(
        f"  {'summary':16} {_short(str(Path(summary['run_dir']) / 'summary.json'))}",
        markup=False,
        highlight=False,
    )
