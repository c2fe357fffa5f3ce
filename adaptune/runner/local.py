"""Run ``compiled/adapter_tuning.yaml`` with ``kfp.local`` (the same file Vertex AI runs).

Each run gets ``<runs_root>/<run-id>/``: ``params.yaml`` (the resolved parameters),
``run.log`` (every task's log; printed as well only when the caller asks), ``pipeline/``
(kfp.local's outputs, one timestamped directory per attempt), ``cache/`` (kfp.local's task
cache, this run's alone), ``checkpoints/`` (tuning's resumable checkpoints) and
``summary.json``.

kfp.local's cache keys on paths and arguments, not content, so each run has its own cache
root: an entry is only ever reused by a resume of the same run (``adaptune run --resume``),
which first checks the data files' bytes and each entry's outputs against their recorded
sha256. ``validate-dataset`` is compiled with caching off (on Vertex AI the data behind a path
may change); the local runner turns caching on for it in the spec it loads (the compiled file
is unchanged), so its entry exists when a resume has checked the data files it read.
"""

from __future__ import annotations

import io
import os
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
CACHE_SUBDIR = "cache"
CHECKPOINTS_SUBDIR = "checkpoints"
LOG_FILE = "run.log"
PARAMS_FILE = "params.yaml"
MANIFEST_FILE = "manifest.json"
RUN_DIR_ENV = "ADAPTUNE_RUN_DIR"
"""Set for the tasks of a local run: where tune-adapter keeps checkpoints a resume finds."""
CACHED_LOCALLY = ("validate-dataset",)
"""Tasks compiled with caching off whose entries a resume may reuse once it checked their input
files' bytes (validate-dataset reads only the data files; evaluate and the release read the
registry, which a resume cannot check, so they always run again)."""


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
    """A text stream writing to a log file and, when given, to the console too."""

    def __init__(self, log: TextIO, console: TextIO | None):
        self.log, self.console = log, console

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.console is not None:
            self.console.write(text)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.console is not None:
            self.console.flush()

    def isatty(self) -> bool:
        return self.console is not None and self.console.isatty()


@contextmanager
def _captured_stdout(log_path: Path, stream_log: bool) -> Iterator[None]:
    """Write everything printed (kfp.local prints each task's log) into ``log_path``.

    kfp.local's logger writes to ``sys.stdout`` as it is when a pipeline starts, and each
    task's output (its stderr merged in) is printed, so this catches all of it. With
    ``stream_log`` it also still goes to the console.
    """
    with log_path.open("a", encoding="utf-8") as log:
        console = sys.stdout
        sys.stdout = _Tee(log, console if stream_log else None)
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


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value shared by two parameters twice: ``params.yaml`` is read without aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def prepare_run_dir(runs_root: Path, run_id: str, params: dict[str, Any]) -> Path:
    """Create ``<runs_root>/<run_id>/`` (it must not exist) with ``params.yaml``.

    Returns:
        The run directory.
    """
    run_dir = (Path(runs_root) / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    params = {**params, "run_id": run_id}
    text = yaml.dump(params, Dumper=_NoAliasDumper, sort_keys=True)
    write_text_atomic(run_dir / PARAMS_FILE, text)
    return run_dir


def local_spec(compiled: Path) -> str:
    """The compiled YAML as the local runner loads it: ``CACHED_LOCALLY`` tasks cache."""
    spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
    for name in CACHED_LOCALLY:
        if name in tasks:
            tasks[name]["cachingOptions"] = {"enableCache": True}
    return yaml.safe_dump(spec, sort_keys=False)


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set an environment variable (the tasks' subprocesses inherit it) for the block."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def run_pipeline(
    compiled: Path,
    params: dict[str, Any],
    runs_root: Path,
    run_id: str | None = None,
    stream_log: bool = False,
) -> LocalRun:
    """Execute the compiled pipeline with kfp.local's SubprocessRunner in this environment.

    Args:
        compiled: The compiled pipeline YAML.
        params: Every pipeline parameter (see ``resolve_params``); ``run_id`` is filled in.
        runs_root: Parent of the run directory.
        run_id: Use this id instead of a new one.
        stream_log: Also print the executor log (it always goes to ``run.log``).

    Returns:
        Where the run is and whether it succeeded.
    """
    run_id = run_id or new_run_id()
    run_dir = prepare_run_dir(runs_root, run_id, params)
    return run_in(compiled, {**params, "run_id": run_id}, run_dir, stream_log)


def run_in(
    compiled: Path, params: dict[str, Any], run_dir: Path, stream_log: bool = False
) -> LocalRun:
    """Execute the compiled pipeline in an existing run directory (a new run or a resume).

    Each call is one attempt: kfp.local writes a new timestamped directory under
    ``pipeline/``; tasks whose entry in ``cache/`` is still there are reused, not rerun.

    Args:
        compiled: The compiled pipeline YAML.
        params: Every pipeline parameter, ``run_id`` included.
        run_dir: The run's directory.
        stream_log: Also print the executor log to ``sys.stdout`` as it comes (it always
            goes to ``run.log``); without it nothing is printed.

    Returns:
        Where the run is and whether it succeeded.
    """
    from kfp import components, local

    run_id = str(params["run_id"])
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(run_dir / PIPELINE_SUBDIR),
        raise_on_error=True,
        enable_caching=True,
        cache_root=str(run_dir / CACHE_SUBDIR),
    )
    pipeline = components.load_component_from_text(local_spec(compiled))
    log_path = run_dir / LOG_FILE
    try:
        with (
            _captured_stdout(log_path, stream_log),
            warnings.catch_warnings(),
            _environment(RUN_DIR_ENV, str(run_dir)),
        ):
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
