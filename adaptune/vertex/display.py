"""Rich renderings of a pipeline job's status and of schedules."""

from __future__ import annotations

from rich.table import Table

from adaptune.vertex.jobs import JobStatus, short_state

STATE_STYLES = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "EXPIRED": "red",
    "PARTIALLY_SUCCEEDED": "yellow",
    "RUNNING": "cyan",
    "SKIPPED": "dim",
    "NOT_TRIGGERED": "dim",
}


def _state(state: str) -> str:
    short = short_state(state)
    style = STATE_STYLES.get(short, "")
    return f"[{style}]{short}[/{style}]" if style else short


def status_table(status: JobStatus) -> Table:
    """The job's state as the title, one row per task."""
    table = Table(title=f"{status.name.rsplit('/', 1)[-1]}: {_state(status.state)}")
    for column in ("task", "state", "started", "ended", "error"):
        table.add_column(column)
    for task in status.tasks:
        table.add_row(task.name, _state(task.state), task.start_time, task.end_time, task.error)
    if status.error:
        table.caption = f"[red]{status.error}[/red]"
    return table


def schedules_table(rows: list[dict[str, str]]) -> Table:
    """One row per schedule."""
    table = Table(title="pipeline job schedules")
    for column in ("name", "display_name", "state", "cron", "next_run", "runs"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(row[c] for c in ("name", "display_name", "state", "cron", "next_run", "runs"))
        )
    return table
