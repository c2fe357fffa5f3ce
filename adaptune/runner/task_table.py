"""The DAG's tasks on the console while a local run runs: what a quiet ``adaptune run`` shows.

On a terminal, a live table (task, state, time, the running task's last line); elsewhere (CI,
a pipe, a background process) one line per task state change, so logs stay short. Both first
say the run's id and where its ``run.log`` is; each is a ``ProgressReporter`` for
``runner.run``. The executor log itself goes only to ``run.log``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich import box
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from adaptune.runner.dag import TASKS
from adaptune.runner.local import LOG_FILE
from adaptune.runner.progress import TaskProgress

STARTED_LINE_AFTER = 10.0
"""Seconds a task runs before its ``running`` line is printed (off a terminal): a quick step
takes one line, its result, and a long one says it is under way."""
NAME_WIDTH = max(len(task.name) for task in TASKS)
STYLES = {
    "running": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "bold yellow",
    "skipped": "dim",
    "not run": "dim",
    "pending": "dim",
}


def started_line(run_id: str, run_dir: Path) -> str:
    """The first line a quiet run prints: its id and where the executor log goes."""
    return f"run {run_id}: executor log in {run_dir / LOG_FILE} (--verbose prints it here)"


def task_line(task: TaskProgress) -> str:
    """One task's state as a line: ``tune-adapter         succeeded  28.1 s``."""
    line = f"{task.name:<{NAME_WIDTH}}  {task.state}"
    if task.state in ("succeeded", "failed") and task.seconds is not None:
        line += f"  {task.seconds:.1f} s"
    return line


class TaskLines:
    """Prints one line per task state change (a ``ProgressReporter``), for a non-terminal."""

    def __init__(self, console: Console):
        self.console = console
        self.shown: dict[str, str] = {}
        self.lock = threading.Lock()

    def start(self, run_id: str, run_dir: Path) -> None:
        """Say which run this is and where its log goes."""
        self._print(started_line(run_id, run_dir))

    def update(self, tasks: list[TaskProgress]) -> None:
        """Print each task whose state changed since the last update.

        ``pending`` is not printed, and ``running`` only once the task has run for
        ``STARTED_LINE_AFTER`` seconds.
        """
        with self.lock:
            for task in tasks:
                if task.state == "pending" or self.shown.get(task.name) == task.state:
                    continue
                if task.state == "running" and (task.seconds or 0.0) < STARTED_LINE_AFTER:
                    continue
                self.shown[task.name] = task.state
                self._print(task_line(task))

    def _print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def table(tasks: list[TaskProgress]) -> Table:
    """The tasks as a table, one row each: task, state, time, the running task's last line."""
    shown = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    shown.add_column("task", no_wrap=True)
    shown.add_column("state", no_wrap=True)
    shown.add_column("time", justify="right", no_wrap=True)
    shown.add_column("progress", no_wrap=True, overflow="ellipsis", ratio=1)
    for task in tasks:
        seconds = "" if task.seconds is None else f"{task.seconds:.1f} s"
        state = f"[{STYLES.get(task.state, '')}]{escape(task.state)}[/]"
        shown.add_row(task.name, state, seconds, escape(task.line))
    return shown


class LiveTable:
    """A live table of the tasks on a terminal (a ``ProgressReporter``); ``close`` ends it."""

    def __init__(self, console: Console):
        self.console = console
        self.live = Live(
            table([TaskProgress(task.name, "pending") for task in TASKS]),
            console=console,
            refresh_per_second=4,
            redirect_stdout=False,  # the runner sends stdout to run.log while the run runs
        )

    def start(self, run_id: str, run_dir: Path) -> None:
        """Say which run this is and where its log goes, then show the table."""
        self.console.print(started_line(run_id, run_dir), markup=False, highlight=False)
        self.live.start()

    def update(self, tasks: list[TaskProgress]) -> None:
        """Show the tasks as they stand."""
        self.live.update(table(tasks), refresh=True)

    def close(self) -> None:
        """Stop updating; the last table stays on the screen."""
        self.live.stop()


@contextmanager
def task_table(console: Console) -> Iterator[TaskLines | LiveTable]:
    """A reporter for ``console``: the live table on a terminal, lines elsewhere."""
    if not console.is_terminal:
        yield TaskLines(console)
        return
    live = LiveTable(console)
    try:
        yield live
    finally:
        live.close()
