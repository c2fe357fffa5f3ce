"""Run ``compiled/adapter_tuning.yaml`` with ``kfp.local`` (the same file Vertex AI runs).

Each run gets ``<runs_root>/<run-id>/``: ``params.yaml`` (the resolved parameters),
``run.log`` (every task's log), ``pipeline/`` (kfp.local's outputs) and ``summary.json``.
"""

from __future__ import annotations

import io
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from adaptune.atomic import write_text_atomic
from adaptune.run_ids import new_run_id
from adaptune.step_errors import parse_error_line

ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""kfp.local colours its messages; an error shown or stored keeps only the text."""
PIPELINE_SUBDIR = "pipeline"
LOG_FILE = "run.log"


@dataclass
class LocalRun:
    """A finished local run.

    Attributes:
        run_id: The run's id (also its directory name).
        run_dir: ``<runs_root>/<run_id>``.
        succeeded: Whether every task that ran succeeded.
        error: The failing step's message, when a step failed.
        failed_step: Name of the step that failed.
    """

    run_id: str
    run_dir: Path
    succeeded: bool
    error: str | None = None
    failed_step: str | None = None


class _Tee(io.TextIOBase):
    """A text stream writing to the console and a log file at once."""

    def __init__(self, console: TextIO, log: TextIO):
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        self.console.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.console.isatty()


@contextmanager
def _teed_stdout(log_path: Path) -> Iterator[None]:
    """Copy everything printed (kfp.local prints each task's log) into ``log_path``."""
    with log_path.open("a", encoding="utf-8") as log:
        console = sys.stdout
        sys.stdout = _Tee(console, log)
        try:
            yield
        finally:
            sys.stdout = console


def find_error(log_path: Path) -> dict[str, str] | None:
    """The last step error reported in a run log, if any."""
    found = None
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            found = parse_error_line(line) or found
    return found


def run_pipeline(
    compiled: Path, params: dict[str, Any], runs_root: Path, run_id: str | None = None
) -> LocalRun:
    """Execute the compiled pipeline with kfp.local's SubprocessRunner in this environment.

    Args:
        compiled: The compiled pipeline YAML.
        params: Every pipeline parameter (see ``resolve_params``); ``run_id`` is filled in.
        runs_root: Parent of the run directory.
        run_id: Use this id instead of a new one.

    Returns:
        Where the run is and whether it succeeded.
    """
    from kfp import components, local

    run_id = run_id or new_run_id()
    run_dir = (runs_root / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    params = {**params, "run_id": run_id}
    write_text_atomic(run_dir / "params.yaml", yaml.safe_dump(params, sort_keys=True))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(run_dir / PIPELINE_SUBDIR),
        raise_on_error=True,
    )
    pipeline = components.load_component_from_file(str(compiled))
    log_path = run_dir / LOG_FILE
    try:
        with _teed_stdout(log_path), warnings.catch_warnings():
            # The image is ours and this environment is what it holds; kfp.local warns anyway.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            pipeline(**params)
    except RuntimeError as exc:
        error = find_error(log_path)
        return LocalRun(
            run_id,
            run_dir,
            succeeded=False,
            error=error["message"] if error else ANSI.sub("", str(exc)),
            failed_step=error["step"] if error else None,
        )
    return LocalRun(run_id, run_dir, succeeded=True)
