"""runner.progress: the task table the quiet run and the studio show."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import yaml

from adaptune.runner.dag import TASKS
from adaptune.runner.progress import LINE_CHARS, last_line, task_progress
from adaptune.runner.task_records import EXECUTOR_OUTPUT, RunState

REPO = Path(__file__).resolve().parent.parent
SPEC = yaml.safe_load((REPO / "compiled" / "adapter_tuning.yaml").read_text(encoding="utf-8"))


def test_last_line_takes_the_text_after_a_progress_bar_redraw(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("first\nstep 1/9\r\x1b[32mstep 2/9 4.1 it/s\x1b[0m\r\n\n  \n", encoding="utf-8")
    assert last_line(log) == "step 2/9 4.1 it/s"
    log.write_text("x" * 500 + "\n", encoding="utf-8")
    assert len(last_line(log)) == LINE_CHARS and last_line(log).endswith("…")
    assert last_line(tmp_path / "missing.log") == ""


def test_last_line_reads_only_the_tail_of_a_huge_log(tmp_path):
    log = tmp_path / "run.log"
    with log.open("w", encoding="utf-8") as out:
        out.write(("noise\n" * 1000) * 200)  # ~1.2 MB
        out.write("the end\n")
    assert last_line(log) == "the end"


def test_a_run_that_has_not_started_a_task_is_all_pending(tmp_path):
    rows = task_progress(tmp_path, SPEC, {}, RunState(datetime.now().astimezone()))
    assert [r.name for r in rows] == [t.name for t in TASKS]
    assert {r.state for r in rows} == {"pending"}


def test_a_running_task_has_its_progress_line_and_finished_ones_their_times(tmp_path):
    started = datetime.now().astimezone() - timedelta(seconds=30)
    attempt = tmp_path / "pipeline" / "adapter-tuning-2026-12-01-10-00-00-000000"
    validate = attempt / "validate-dataset"
    validate.mkdir(parents=True)
    (validate / EXECUTOR_OUTPUT).write_text(
        '{"parameterValues": {"train_records": 3}}', encoding="utf-8"
    )
    (attempt / "format-text-to-text").mkdir()
    (tmp_path / "run.log").write_text("formatting 2/3\n", encoding="utf-8")
    rows = {r.name: r for r in task_progress(tmp_path, SPEC, {}, RunState(started))}
    assert rows["validate-dataset"].state == "succeeded"
    assert rows["validate-dataset"].seconds is not None
    assert rows["validate-dataset"].line == ""
    assert rows["format-text-to-text"].state == "running"
    assert rows["format-text-to-text"].line == "formatting 2/3"
    assert rows["tune-adapter"].state == "pending"
    ended = RunState(started, datetime.now().astimezone(), False, "format-text-to-text")
    after = {r.name: r for r in task_progress(tmp_path, SPEC, {}, ended)}
    assert after["format-text-to-text"].state == "failed"
    assert after["tune-adapter"].state == "not run"
    cancelled = RunState(started, datetime.now().astimezone(), False, None, cancelled=True)
    stopped = {r.name: r for r in task_progress(tmp_path, SPEC, {}, cancelled)}
    assert stopped["validate-dataset"].state == "succeeded"
    assert stopped["format-text-to-text"].state == "cancelled"  # it was running, not failing
    assert stopped["tune-adapter"].state == "not run"


def test_the_gemini_pipeline_shows_its_own_tasks(tmp_path):
    gemini = yaml.safe_load((REPO / "compiled" / "gemini_tuning.yaml").read_text(encoding="utf-8"))
    rows = task_progress(tmp_path, gemini, {}, RunState(datetime.now().astimezone()))
    assert [r.name for r in rows] == [
        "validate-dataset",
        "tune-gemini",
        "evaluate",
        "passes-gate",
        "register-version",
    ]
    assert {r.state for r in rows} == {"pending"}
