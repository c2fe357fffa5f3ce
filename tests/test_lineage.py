"""Lineage and reproducibility: the metadata store, manifests, --if-changed, reproduce."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLE

from adaptune.cli import main
from adaptune.hashing import sha256_file
from adaptune.lineage.store import MetadataStore

TINY = ["--train-steps", "30", "--threshold", "0", "--min-improvement", "0",
        "--tolerance", "1", "--model-name", "router"]


def _cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _data(tmp_path: Path) -> tuple[Path, Path]:
    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:160]))
    evaluation.write_text("".join((SAMPLE / "eval.jsonl").read_text().splitlines(True)[:24]))
    return train, evaluation


def _run_args(tmp_path: Path, train: Path, evaluation: Path) -> list[str]:
    return ["run", "--train-data", str(train), "--eval-data", str(evaluation), "--runs-dir",
            str(tmp_path / "runs"), "--registry-dir", str(tmp_path / "registry"), *TINY]


def _runs(tmp_path: Path) -> list[dict]:
    store = MetadataStore(tmp_path / "runs")
    try:
        return store.runs()
    finally:
        store.close()


def _data_files(node: dict) -> list[dict]:
    found = [node] if node["type"] == "data_file" else []
    for child in (node.get("produced_by") or {}).get("inputs", {}).values():
        found += _data_files(child)
    return found


def test_store_basics_and_wal(tmp_path):
    store = MetadataStore(tmp_path)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.start_run("r1", {"model_name": "m"})
    data = store.put_artifact("data_file", "/d.jsonl", "abc", {})
    assert store.put_artifact("data_file", "/d.jsonl", "abc", {}) == data
    out = store.put_artifact("dataset", "/out", "def", {})
    store.put_execution("r1", "validate-dataset", {"x": 1}, "success", None, None, None,
                        {"train_data": data}, {"dataset": out})
    store.put_execution("r1", "validate-dataset", {"x": 2}, "success", None, None, None,
                        {"train_data": data}, {"dataset": out})
    producer = store.producer(out)
    assert producer["type"] == "validate-dataset" and producer["parameters"] == {"x": 2}
    assert producer["inputs"] == {"train_data": data}
    store.finish_run("r1", "succeeded")
    assert store.run("r1")["status"] == "succeeded"
    store.start_run("r2", {})
    store.add_run_to("r1", "experiment", "baseline")
    store.add_run_to("r1", "experiment", "baseline")
    assert store.runs_in("experiment", "baseline") == ["r1"]
    assert store.runs_in("experiment", "other") == []


def test_a_run_whose_process_died_is_marked_failed_when_next_seen(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = MetadataStore(tmp_path)
    store.start_run("r-dead", {})
    store.update_run("r-dead", pid=dead.pid)
    store.start_run("r-alive", {})
    store.close()
    again = MetadataStore(tmp_path)
    assert again.run("r-dead")["status"] == "failed"
    assert again.run("r-alive")["status"] == "running"


@pytest.mark.pipeline
def test_run_reproduce_lineage_and_if_changed(tmp_path):
    train, evaluation = _data(tmp_path)
    first = _cli(*_run_args(tmp_path, train, evaluation), "--experiment", "router-v1")
    assert first.exit_code == 0, first.output
    (run_a,) = [r["run_id"] for r in _runs(tmp_path)]
    listed = _cli("runs", "list", "--experiment", "router-v1", "--runs-dir",
                  str(tmp_path / "runs"))
    assert run_a in listed.output
    assert "exact_match" in listed.output and "passed" in listed.output, listed.output

    # the same inputs again give the same adapter and metrics
    again = _cli("reproduce", run_a, "--runs-dir", str(tmp_path / "runs"))
    assert again.exit_code == 0, again.output
    assert "reproduced: adapter sha256" in again.output
    run_b = _runs(tmp_path)[0]["run_id"]
    manifest_a = json.loads((tmp_path / "runs" / run_a / "manifest.json").read_text())
    manifest_b = json.loads((tmp_path / "runs" / run_b / "manifest.json").read_text())
    assert manifest_a["adapter_sha256"] == manifest_b["adapter_sha256"]
    assert manifest_a["metrics"] == manifest_b["metrics"]
    assert manifest_a["source"]["commit"]
    assert manifest_a["packages"]["torch"].startswith("2.13.0")
    assert manifest_a["base_model"]["config_sha256"] == manifest_b["base_model"]["config_sha256"]
    compare = _cli("runs", "compare", run_a, run_b, "--runs-dir", str(tmp_path / "runs"))
    assert "no differences" in compare.output

    # lineage from the registered version down to the data file's sha256
    lineage = _cli("lineage", "router@v2", "--runs-dir", str(tmp_path / "runs"), "--json")
    chain = json.loads(lineage.output)
    assert chain["type"] == "registry_version" and chain["properties"]["version"] == 2
    assert chain["produced_by"]["task"] == "register-version"
    assert chain["produced_by"]["run_id"] == run_b
    files = {f["uri"]: f["sha256"] for f in _data_files(chain)}
    assert files[str(train.resolve())] == sha256_file(train)
    tree = _cli("lineage", "router", "--runs-dir", str(tmp_path / "runs"))
    assert sha256_file(train)[:12] in tree.output and "validate-dataset" in tree.output

    # unchanged data and parameters: nothing to do
    skip = _cli(*_run_args(tmp_path, train, evaluation), "--if-changed")
    assert skip.exit_code == 0 and "nothing to do" in skip.output
    assert len(_runs(tmp_path)) == 2

    # one changed row: a new data hash, a run (cache miss) and a new lineage chain
    rows = train.read_text().splitlines(True)
    record = json.loads(rows[5])
    rows[5] = json.dumps({**record, "input_text": record["input_text"] + " Urgent."}) + "\n"
    train.write_text("".join(rows))
    changed = _cli(*_run_args(tmp_path, train, evaluation), "--if-changed")
    assert changed.exit_code == 0, changed.output
    runs = _runs(tmp_path)
    assert len(runs) == 3 and runs[0]["fingerprint"] != runs[1]["fingerprint"]
    assert runs[0]["data_sha256"]["train_data"] == sha256_file(train)
    new_chain = json.loads(_cli("lineage", "router@v3", "--runs-dir", str(tmp_path / "runs"),
                                "--json").output)
    new_files = {f["uri"]: f["sha256"] for f in _data_files(new_chain)}
    assert new_files[str(train.resolve())] == sha256_file(train) != files[str(train.resolve())]
    dataset = new_chain["produced_by"]["inputs"]["trained_adapter"]["produced_by"]["inputs"]
    assert dataset["formatted"]["uri"].startswith(str(tmp_path / "runs" / runs[0]["run_id"]))


def _cli_process(tmp_path: Path, train: Path, evaluation: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "adaptune", *_run_args(tmp_path, train, evaluation)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.pipeline
def test_two_concurrent_runs_both_land_intact(tmp_path):
    train, evaluation = _data(tmp_path)
    processes = [_cli_process(tmp_path, train, evaluation) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=600) == 0, process.stderr.read()[-2000:]
    runs = _runs(tmp_path)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"succeeded"}
    store = MetadataStore(tmp_path / "runs")
    for run in runs:
        tasks = {e["type"]: e["status"] for e in store.executions(run["run_id"])}
        assert tasks == {"validate-dataset": "succeeded", "format-text-to-text": "succeeded",
                         "tune-adapter": "succeeded", "evaluate": "succeeded",
                         "passes-gate": "succeeded", "register-version": "succeeded",
                         "wants-vertex-deploy": "succeeded", "deploy-to-vertex": "skipped"}
    versions = {a.properties["version"] for a in store.find_artifacts("registry_version")}
    assert versions == {1, 2}
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.pipeline
def test_a_killed_run_is_marked_failed(tmp_path):
    train, evaluation = _data(tmp_path)
    process = _cli_process(tmp_path, train, evaluation)
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        try:
            runs = _runs(tmp_path) if (tmp_path / "runs" / "metadata.sqlite").exists() else []
        except sqlite3.OperationalError:
            runs = []
        if runs and MetadataStore(tmp_path / "runs").executions(runs[0]["run_id"]):
            break
        time.sleep(0.2)
    assert runs[0]["status"] == "running"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    (run,) = _runs(tmp_path)
    assert run["status"] == "failed"
    assert "ended without finishing" in run["error"]
