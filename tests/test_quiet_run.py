"""A quiet ``adaptune run``: the DAG's tasks and the summary on the console, the executor log
in the run's ``run.log`` (``--verbose`` prints it as it comes), and ``--run-id``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE
from hostile import invoke, one_line_error
from rich.console import Console

from adaptune.lineage.store import MetadataStore
from adaptune.runner.local import ANSI, LocalRun
from adaptune.runner.progress import TaskProgress
from adaptune.runner.task_table import STARTED_LINE_AFTER, TaskLines

TRAIN = str(SAMPLE / "train.jsonl")
EXECUTOR_LINE = re.compile(r"Executing task|\[KFP Executor|Streamed logs")
MAX_LINES = 40


def _printed(reporter: TaskLines) -> list[str]:
    return reporter.console.file.getvalue().splitlines()


def test_off_a_terminal_each_task_state_change_is_one_line(tmp_path):
    reporter = TaskLines(Console(file=io.StringIO(), width=200))
    reporter.start("run-a", tmp_path / "run-a")
    quick = STARTED_LINE_AFTER / 2
    long = STARTED_LINE_AFTER + 1
    ticks = [
        [TaskProgress("validate-dataset", "running", seconds=quick, line="reading")],
        [
            TaskProgress("validate-dataset", "succeeded", seconds=0.25),
            TaskProgress("tune-adapter", "running", seconds=quick, line="tune: 1%"),
        ],
        [
            TaskProgress("validate-dataset", "succeeded", seconds=0.25),
            TaskProgress("tune-adapter", "running", seconds=long, line="tune: 40%"),
            TaskProgress("evaluate", "pending"),
        ],
        [
            TaskProgress("validate-dataset", "succeeded", seconds=0.25),
            TaskProgress("tune-adapter", "running", seconds=long + 5, line="tune: 90%"),
            TaskProgress("evaluate", "pending"),
        ],
        [
            TaskProgress("validate-dataset", "succeeded", seconds=0.25),
            TaskProgress("tune-adapter", "succeeded", seconds=28.14),
            TaskProgress("evaluate", "failed", seconds=3.0),
            TaskProgress("deploy-to-vertex", "not run"),
            TaskProgress("register-version", "skipped"),
        ],
    ]
    for tick in ticks:
        reporter.update(tick)
    assert [" ".join(line.split()) for line in _printed(reporter)] == [
        f"run run-a: executor log in {tmp_path / 'run-a' / 'run.log'} (--verbose prints it here)",
        "validate-dataset succeeded 0.2 s",
        "tune-adapter running",
        "tune-adapter succeeded 28.1 s",
        "evaluate failed 3.0 s",
        "deploy-to-vertex not run",
        "register-version skipped",
    ]
    # The task names line up: each state starts in the same column.
    columns = {line.index(line.split()[1]) for line in _printed(reporter)[1:]}
    assert len(columns) == 1


@pytest.fixture
def stub_pipeline(monkeypatch):
    """The runner as it is, but kfp.local replaced: the pipeline fails before any task wrote."""
    from adaptune.runner import run

    started: list[dict] = []

    def run_in(compiled, params, run_dir, stream_log=False):
        started.append({"params": params, "stream_log": stream_log})
        return LocalRun(str(params["run_id"]), run_dir, False, "the stub stopped it", None)

    monkeypatch.setattr(run, "run_in", run_in)
    return started


def test_run_id_names_the_new_run(stub_pipeline, tmp_path):
    runs = tmp_path / "runs"
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", runs, "--run-id", "my-run-1")
    assert result.exit_code == 1, result.output  # the stub fails the pipeline
    (call,) = stub_pipeline
    assert call["params"]["run_id"] == "my-run-1" and call["stream_log"] is False
    manifest = json.loads((runs / "my-run-1" / "manifest.json").read_text())
    assert manifest["run_id"] == "my-run-1" and manifest["status"] == "failed"
    store = MetadataStore(runs)
    try:
        assert store.run("my-run-1")["status"] == "failed"
    finally:
        store.close()
    lines = result.output.splitlines()
    assert lines[0].startswith(f"run my-run-1: executor log in {runs.resolve() / 'my-run-1'}")
    assert "adaptune run my-run-1" in result.output  # the summary
    assert lines[-1] == (
        f"the executor log is in {runs.resolve() / 'my-run-1' / 'run.log'} (--verbose prints it)"
    )
    assert not EXECUTOR_LINE.search(result.output)


@pytest.mark.parametrize("how", ["directory", "recorded", "invalid"])
def test_a_taken_or_invalid_run_id_is_refused_in_one_line(stub_pipeline, tmp_path, how):
    runs = tmp_path / "runs"
    run_id = "taken-1"
    if how == "directory":
        (runs / run_id).mkdir(parents=True)
    elif how == "recorded":
        store = MetadataStore(runs)
        store.start_run(run_id, {})
        store.close()
    else:
        run_id = "Bad_Id"
    line = one_line_error(
        invoke("run", "--train-data", TRAIN, "--runs-dir", runs, "--run-id", run_id)
    )
    assert line.startswith("adaptune: error: ") and ("--run-id" in line or "run id" in line)
    assert stub_pipeline == []


def _bad_data(tmp_path: Path) -> Path:
    """Sample records, one missing its output: validate-dataset fails within seconds."""
    good = (SAMPLE / "train.jsonl").read_text().splitlines(True)[:30]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(good[:11]) + '{"input_text": "refund"}\n' + "".join(good[11:]))
    return bad


def _clean(text: str) -> str:
    return ANSI.sub("", text)


@pytest.mark.pipeline
def test_verbose_prints_the_executor_log_and_the_quiet_run_points_at_it(tmp_path):
    runs = tmp_path / "runs"
    args = ["--train-data", _bad_data(tmp_path), "--runs-dir", runs, "--train-steps", "5"]
    quiet = invoke("run", *args)
    assert quiet.exit_code == 1, quiet.output
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    log = run_dir / "run.log"
    assert not EXECUTOR_LINE.search(quiet.output), quiet.output
    assert "FAILED at step validate-dataset" in quiet.output
    assert re.search(r"^validate-dataset +failed +[\d.]+ s$", quiet.output, re.M), quiet.output
    assert re.search(r"^tune-adapter +not run$", quiet.output, re.M), quiet.output
    assert quiet.output.splitlines()[-1] == f"the executor log is in {log} (--verbose prints it)"
    assert "Executing task 'validate-dataset'" in _clean(log.read_text())
    before = log.read_text()

    resumed = invoke("run", "--runs-dir", runs, "--resume", run_dir.name, "--verbose")
    assert resumed.exit_code == 1, resumed.output  # the data is still bad
    assert "Executing task 'validate-dataset'" in _clean(resumed.output)
    assert "[KFP Executor" in resumed.output
    assert "the executor log is in" not in resumed.output
    assert "FAILED at step validate-dataset" in resumed.output  # and the summary
    # run.log still gets it all, this attempt after the first.
    after = log.read_text()
    assert after.startswith(before) and "Executing task" in _clean(after[len(before) :])


@pytest.mark.pipeline
@pytest.mark.slow
def test_make_run_prints_at_most_40_lines_and_keeps_the_log_in_run_log(tmp_path):
    """``make run``'s command on the sample config, its stdout a pipe (not a terminal)."""
    runs, registry = tmp_path / "runs", tmp_path / "registry"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ["PYTHONPATH"]])}
    command = [sys.executable, "-m", "adaptune", "run", "--config", "configs/sample.yaml"]
    done = subprocess.run(
        [*command, "--train-steps", "30", "--runs-dir", runs, "--registry-dir", registry],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) <= MAX_LINES, done.stdout
    assert not EXECUTOR_LINE.search(done.stdout + done.stderr), done.stdout
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    log = run_dir / "run.log"
    assert lines[0].startswith(f"run {run_dir.name}: executor log in {log}")
    for task in ("validate-dataset", "format-text-to-text", "tune-adapter", "evaluate"):
        assert re.search(rf"^{task} +succeeded +[\d.]+ s$", done.stdout, re.M), done.stdout
    assert f"adaptune run {run_dir.name}" in done.stdout  # the summary, after the tasks
    assert "records validated: train 400, eval 80" in done.stdout
    assert re.search(r"^gate: ", done.stdout, re.M) and "run log" in done.stdout
    logged = _clean(log.read_text())
    for task in ("validate-dataset", "format-text-to-text", "tune-adapter", "evaluate"):
        assert f"Executing task '{task}'" in logged
    assert "[KFP Executor" in logged and "Pipeline 'adapter-tuning' finished" in logged
