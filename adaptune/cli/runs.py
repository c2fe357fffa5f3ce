"""``adaptune runs list|show|compare``: the local runs and their manifests.

These only read: they create no store, and one broken run does not hide the others. ``runs
list`` lists a run whose record is unreadable or has wrong-typed fields with a warning line
naming the run and the fault (exit 0); ``runs show`` and ``runs compare`` refuse a run whose
directory or manifest is missing or broken in one line (exit 2). A store that is not one is
refused with its path and how to move it aside, never replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import EXPERIMENT, runs_dir_option
from adaptune.errors import UserError

GATE = {True: "passed", False: "failed"}


def open_store(runs_dir: Path) -> Any:
    """The metadata store of ``runs_dir``, to read (nothing is created when there is none).

    Raises:
        UserError: If ``runs_dir`` is not a directory, or its store is not a usable one.
    """
    from adaptune.lineage.store import MetadataStore

    if runs_dir.exists() and not runs_dir.is_dir():
        raise UserError(f"--runs-dir {runs_dir} is not a directory")
    return MetadataStore(runs_dir, create=False)


TEXT_FIELDS = ("status", "start_time", "model_name", "gate_metric")
MAPPING_FIELDS = ("gate", "metrics", "registry")


def record_problems(record: dict[str, Any]) -> list[str]:
    """What is wrong with a run's record: a field of the wrong type, a missing directory.

    The fields shown by ``runs list`` must be texts (or absent), mappings where they hold
    more; ``runs list`` shows the rest of the row and these notes.
    """
    problems = [record["problem"]] if "problem" in record else []
    for key in TEXT_FIELDS:
        value = record.get(key, "")
        if not isinstance(value, str) and (value is not None or key == "status"):
            problems.append(f"{key} is {_shown(record[key])}, not a text")
    for key in MAPPING_FIELDS:
        if record.get(key) is not None and not isinstance(record[key], dict):
            problems.append(f"{key} is {_shown(record[key])}, not a mapping")
    run_dir = record.get("run_dir")
    if isinstance(run_dir, str) and run_dir and not Path(run_dir).is_dir():
        problems.append(f"its directory {run_dir} is missing")
    return problems


def _shown(value: Any) -> str:
    text = repr(value)
    kind = "null" if value is None else type(value).__name__
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({kind})"


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def gate_score(record: dict[str, Any]) -> str:
    """The metric the run's gate compares and the tuned model's value of it: ``NAME 0.8000``.

    Empty until the run has metrics (still running, killed, or failed before evaluation).
    """
    metric = _text(record, "gate_metric") or _text(_mapping(record.get("gate")), "metric")
    tuned = _mapping(_mapping(record.get("metrics")).get("tuned"))
    if not metric or not tuned:
        return ""
    value = tuned.get(metric)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{metric} {value:.4f}" if number else f"{metric} -"


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
    from rich.text import Text

    table = Table()
    for column in ("run", "status", "started", "model", "gate metric", "gate", "version"):
        table.add_column(column)
    store = open_store(runs_dir)
    try:
        keep = set(store.runs_in("experiment", experiment)) if experiment else None
        records = store.runs()
    finally:
        store.close()
    warnings = []
    for record in records:
        if keep is not None and record["run_id"] not in keep:
            continue
        passed = _mapping(record.get("gate")).get("passed")
        cells = (
            record["run_id"],
            _text(record, "status") or ("?" if "status" in record else ""),
            _text(record, "start_time")[:19],
            _text(record, "model_name"),
            gate_score(record),
            GATE.get(passed, "") if isinstance(passed, bool) else "",
            _text(_mapping(record.get("registry")), "model_ref"),
        )
        table.add_row(*(Text(cell) for cell in cells))  # Text: a name is never read as markup
        warnings += [f"run {record['run_id']}: {p}" for p in record_problems(record)]
    if table.row_count:
        _print_wide(table)
    else:
        where = f" of experiment {experiment!r}" if experiment else ""
        click.echo(f"no runs{where} in {runs_dir}")
    for warning in warnings:
        click.echo(f"adaptune: warning: {warning}", err=True)


@runs.command("show")
@click.argument("run_id")
@runs_dir_option
@reports_errors
def runs_show(run_id: str, runs_dir: Path) -> None:
    """A run's manifest and its tasks."""
    from adaptune.lineage.run_manifest import check_run_name, read_run_manifest

    store = open_store(runs_dir)
    try:
        record = store.run(check_run_name(run_id))
        executions = store.executions(run_id)
    finally:
        store.close()
    manifest = read_run_manifest(runs_dir, run_id, store_record=record is not None)
    record = record or {}
    tasks = [{k: e[k] for k in ("type", "status", "start_time", "end_time")} for e in executions]
    status = record.get("status") if isinstance(record.get("status"), str) else None
    shown = {**manifest, "status": status or manifest.get("status"), "tasks": tasks}
    for problem in record_problems(record):
        click.echo(f"adaptune: warning: run {run_id}: {problem}", err=True)
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
    from adaptune.lineage.run_manifest import COMPARED, read_run_manifest

    rows = compare_runs(
        read_run_manifest(runs_dir, run_a, COMPARED), read_run_manifest(runs_dir, run_b, COMPARED)
    )
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
