"""``adaptune run --resume``: a killed run and a failed run, continued in place to success.

Both through the command line a user types; the resumed adapter's sha256 equals an
uninterrupted run's with the same parameters (CPU training is deterministic, and a resume
continues from the checkpoint's optimizer, scheduler, data-order and RNG states).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE
from hostile import invoke

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

TRAINING = {"steps": 40, "batch_size": 8, "checkpoint_every": 4, "eval_every": 20}


def _data(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    train, evaluation = root / "train.jsonl", root / "eval.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:64]))
    evaluation.write_text("".join((SAMPLE / "eval.jsonl").read_text().splitlines(True)[:16]))
    return train, evaluation


def _args(data: tuple[Path, Path], runs: Path, registry: Path) -> list[str]:
    return [
        "run",
        "--runs-dir", str(runs),
        "--train-data", str(data[0]),
        "--eval-data", str(data[1]),
        "--registry-dir", str(registry),
        "--model-name", "router",
        "--training", json.dumps(TRAINING),
        "--threshold", "0",
        "--min-improvement", "-1",
    ]  # fmt: skip


def _only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _attempts(run_dir: Path) -> list[Path]:
    return sorted(p for p in (run_dir / "pipeline").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """One uninterrupted run: its data, adapter sha256 and registry (router@v1 in production)."""
    root = tmp_path_factory.mktemp("reference")
    data = _data(root / "data")
    result = invoke(*_args(data, root / "runs", root / "registry"))
    assert result.exit_code == 0, result.output
    manifest = _manifest(_only_run(root / "runs"))
    assert manifest["status"] == "succeeded" and manifest["adapter_sha256"]
    return {"data": data, "sha256": manifest["adapter_sha256"], "registry": root / "registry"}


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_adapter(reference, tmp_path):
    runs, registry = tmp_path / "runs", tmp_path / "registry"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ["PYTHONPATH"]])}
    process = subprocess.Popen(
        [sys.executable, "-m", "adaptune", *_args(reference["data"], runs, registry)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group: kfp.local's task processes with it
    )
    deadline = time.monotonic() + 600
    while not list(runs.glob("*/checkpoints/tune-adapter/*/checkpoint-*")):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    run_dir = _only_run(runs)
    run_id = run_dir.name
    # Killed: its manifest (parameters, data hashes) is there from the start, marked running.
    killed = _manifest(run_dir)
    assert killed["status"] == "running" and killed["params"]["run_id"] == run_id
    assert killed["data_sha256"]["train_data"]
    assert not list(registry.glob("router/v*"))

    result = invoke("run", "--runs-dir", runs, "--resume", run_id)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    reusable = "format-text-to-text, validate-dataset"
    assert first == f"resuming run {run_id}: outputs checked and reusable: {reusable}"
    manifest = _manifest(run_dir)
    assert manifest["status"] == "succeeded" and manifest["attempts"] == 2
    assert {"validate-dataset", "format-text-to-text"} <= set(manifest["resumes"][-1]["reused"])
    newest = _attempts(run_dir)[-1]
    assert not (newest / "validate-dataset").exists()  # cache hits: not run again
    assert not (newest / "format-text-to-text").exists()
    tuning = json.loads((newest / "tune-adapter" / "executor_output.json").read_text())
    metrics = tuning["artifacts"]["training_metrics"]["artifacts"][0]["metadata"]
    assert metrics["resumed_from_step"] > 0
    assert manifest["adapter_sha256"] == reference["sha256"]
    (version,) = registry.glob("router/v*")
    assert json.loads((version / "version.json").read_text())["run_id"] == run_id

    shown = invoke("runs", "show", run_id, "--runs-dir", runs)
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["status"] == "succeeded" and record["attempts"] == 2
    assert {t["type"]: t["status"] for t in record["tasks"]}["tune-adapter"] == "succeeded"


def test_a_run_failed_at_evaluate_resumes_to_success_reusing_its_tuning(reference, tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(reference["registry"], registry)
    # A transient fault: the production version's record is unreadable while the run evaluates.
    record = registry / "router" / "v1" / "version.json"
    good = record.read_bytes()
    record.chmod(0o644)
    record.write_text("garbage")
    runs = tmp_path / "runs"
    failed = invoke(*_args(reference["data"], runs, registry))
    assert failed.exit_code == 1, failed.output
    run_dir = _only_run(runs)
    assert _manifest(run_dir)["failed_step"] == "evaluate"
    record.write_bytes(good)  # the fault is gone

    result = invoke("run", "--runs-dir", runs, "--resume", run_dir.name)
    assert result.exit_code == 0, result.output
    manifest = _manifest(run_dir)
    assert manifest["status"] == "succeeded" and manifest["attempts"] == 2
    assert manifest["error"] is None and manifest["failed_step"] is None
    reused = set(manifest["resumes"][-1]["reused"])
    assert {"validate-dataset", "format-text-to-text", "tune-adapter"} <= reused
    newest = _attempts(run_dir)[-1]
    assert not (newest / "tune-adapter").exists()
    assert (newest / "evaluate" / "executor_output.json").is_file()
    assert manifest["adapter_sha256"] == reference["sha256"]
    assert manifest["production"]["version"] == 1  # compared with the version in production
    shown = json.loads(invoke("runs", "show", run_dir.name, "--runs-dir", runs).output)
    assert shown["status"] == "succeeded" and shown["attempts"] == 2
