"""Where a local run stands, task by task: what the quiet ``adaptune run`` and the studio show.

Each task of the DAG table is ``pending`` (not started yet), ``running``, ``succeeded``,
``failed``, ``cancelled`` (it was running when the run was cancelled), ``skipped`` (its
condition was false) or ``not run`` (an earlier task failed, or the run was cancelled), with
its times from kfp.local's files (``task_records``) and, for the running task, the last line it
printed (its progress bar or log line), read from the tail of the run's ``run.log``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from adaptune.runner.dag import tasks_for
from adaptune.runner.local import ANSI
from adaptune.runner.task_records import RunState, read_task_records

STATES = ("pending", "running", "succeeded", "failed", "cancelled", "skipped", "not run")
TAIL_BYTES = 8192
"""How much of the end of ``run.log`` is read for the running task's last line."""
LINE_CHARS = 120
"""A progress line is cut to this many characters."""


@dataclass(frozen=True)
class TaskProgress:
    """One task of a run, as a table row.

    Attributes:
        name: The task's name (``dag.TASKS``).
        state: One of ``STATES``.
        start_time: ISO time it started (None before).
        end_time: ISO time it ended (None before).
        seconds: How long it ran, or has been running so far.
        line: The last line the running task printed ("" for the others).
    """

    name: str
    state: str
    start_time: str | None = None
    end_time: str | None = None
    seconds: float | None = None
    line: str = ""


def task_progress(
    run_dir: Path,
    spec: dict[str, Any],
    params: dict[str, Any],
    state: RunState,
    now: datetime | None = None,
) -> list[TaskProgress]:
    """Every task of the DAG table with its state, in the table's order.

    Args:
        run_dir: The run's directory.
        spec: The compiled pipeline (parsed YAML).
        params: Every pipeline parameter, with the run id.
        state: When the run started and, once it ended, how.
        now: The time a running task's seconds count to (default: now).
    """
    records = read_task_records(run_dir, spec, params, state)
    now = now or datetime.now().astimezone()
    line = last_line(run_dir / "run.log")
    rows = []
    for task in tasks_for(spec):
        record = records.get(task.name)
        if record is None:
            ended = state.ended is not None
            rows.append(TaskProgress(task.name, "not run" if ended else "pending"))
            continue
        start = _parse(record.start_time)
        end = _parse(record.end_time)
        seconds = ((end or now) - start).total_seconds() if start else None
        rows.append(
            TaskProgress(
                task.name,
                record.status,
                record.start_time,
                record.end_time,
                None if seconds is None else max(seconds, 0.0),
                line if record.status == "running" else "",
            )
        )
    return rows


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def last_line(log_path: Path) -> str:
    """The last non-empty line in the log's last ``TAIL_BYTES``, without colours, cut short.

    A progress bar redraws its line with carriage returns: the text after the last one counts.
    """
    try:
        with log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - TAIL_BYTES))
            tail = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    for raw in reversed(tail.replace("\r\n", "\n").split("\n")):
        redraws = [ANSI.sub("", part).strip() for part in raw.split("\r")]
        text = next((part for part in reversed(redraws) if part), "")
        if text:
            return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"
    return ""
