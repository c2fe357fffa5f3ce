"""``adaptune runs list|show|compare``: the local runs and their manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import EXPERIMENT, runs_dir_option

GATE = {True: "passed", False: "failed"}


def open_store(runs_dir: Path) -> Any:
    """The metadata store of ``runs_dir``."""
    from adaptune.lineage.store import MetadataStore

    return MetadataStore(runs_dir)


def gate_score(record: dict[str, Any]) -> str:
    """The metric the run's gate compares and the tuned model's value of it: ``NAME 0.8000``.

    Empty until the run has metrics (still running, killed, or failed before evaluation).
    """
    metric = record.get("gate_metric") or (record.get("gate") or {}).get("metric")
    tuned = (record.get("metrics") or {}).get("tuned") or {}
    if not metric or not tuned:
        return ""
    value = tuned.get(metric)
    return f"{metric} {value:.4f}" if isinstance(value, int | float) else f"{metric} -"


def _print_wide(table: Any) -> None:
    from rich.console import Console

    Console(width=max(160, Console().width)).print(table)


@click.group()
def runs() -> None:
    """List, show and compare local runs."""


@runs.command("list")
@runs_dir_option
@click.option(
    "--experiment",
    help=f"Only the runs of this experiment (`adaptune run --experiment NAME`). {EXPERIMENT}",
)
@reports_errors
def runs_list(runs_dir: Path, experiment: str | None) -> None:
    """Every run, newest first: the gate's metric and tuned score, its decision, the version."""
    from rich.table import Table

    table = Table()
    for column in ("run", "status", "started", "model", "gate metric", "gate", "version"):
        table.add_column(column)
    store = open_store(runs_dir)
    keep = set(store.runs_in("experiment", experiment)) if experiment else None
    for record in store.runs():
        if keep is not None and record["run_id"] not in keep:
            continue
        table.add_row(
            record["run_id"],
            record.get("status", ""),
            (record.get("start_time") or "")[:19],
            record.get("model_name") or "",
            gate_score(record),
            GATE.get((record.get("gate") or {}).get("passed"), ""),
            (record.get("registry") or {}).get("model_ref") or "",
        )
    _print_wide(table)


@runs.command("show")
@click.argument("run_id")
@runs_dir_option
@reports_errors
def runs_show(run_id: str, runs_dir: Path) -> None:
    """A run's manifest and its tasks."""
    from adaptune.runner.run import read_manifest

    manifest = read_manifest(runs_dir, run_id)
    store = open_store(runs_dir)
    record = store.run(run_id) or {}
    tasks = [
        {k: e[k] for k in ("type", "status", "start_time", "end_time")}
        for e in store.executions(run_id)
    ]
    shown = {**manifest, "status": record.get("status", manifest.get("status")), "tasks": tasks}
    click.echo(json.dumps(shown, indent=2, default=str))


@runs.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@runs_dir_option
@reports_errors
def runs_compare(run_a: str, run_b: str, runs_dir: Path) -> None:
    """Parameters, data hashes and metrics that differ between two runs."""
    from rich.table import Table

    from adaptune.lineage.query import compare_runs
    from adaptune.runner.run import read_manifest

    rows = compare_runs(read_manifest(runs_dir, run_a), read_manifest(runs_dir, run_b))
    if not rows:
        click.echo("no differences in parameters, data or metrics")
        return
    table = Table()
    table.add_column("field")
    table.add_column(run_a)
    table.add_column(run_b)
    for key, a, b in rows:
        table.add_row(key, str(a), str(b))
    _print_wide(table)
