"""Hostile resumes: every ``adaptune run --resume`` that must be refused is, in one line, exit 2.

One real run failed at format-text-to-text (its eval split is empty), once for the module; each
case copies its runs directory, breaks one thing (the run's state, its files, its data, the id,
the flags) and checks the refusal: exit 2, one line, no traceback, and nothing changed, the run's
own directory and its record in the metadata store included. A tampered cache entry is not a
refusal: the resume drops it (the step runs again) and changes nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import COMPILED, SAMPLE
from hostile import invoke, one_line_error, tree

from adaptune.lineage.store import MetadataStore, RunNotRestartable

pytestmark = pytest.mark.hostile
STORE_FILES = frozenset({"metadata.sqlite", "metadata.sqlite-wal", "metadata.sqlite-shm"})


def _failed_run(root: Path) -> dict:
    """A real run that failed at format-text-to-text, after validate-dataset succeeded."""
    train = root / "data" / "train.jsonl"
    train.parent.mkdir(parents=True)
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:20]))
    compiled = root / "compiled.yaml"
    shutil.copyfile(COMPILED, compiled)
    result = invoke(
        "run",
        "--runs-dir", root / "runs",
        "--compiled", compiled,
        "--train-data", train,
        "--registry-dir", root / "registry",
        "--data", json.dumps({"eval_fraction": 0.0001, "min_examples": 16}),
        "--train-steps", "2",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    (run_dir,) = [p for p in (root / "runs").iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["failed_step"] == "format-text-to-text"
    assert list((run_dir / "cache").glob("*.json")), "validate-dataset left no cache entry"
    return {"root": root, "run_id": run_dir.name, "train": train, "compiled": compiled}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> dict:
    """The failed run the refusal cases copy."""
    return _failed_run(tmp_path_factory.mktemp("failed"))


class Case:
    """A per-test copy of the failed run's runs directory and data, and how to break it."""

    def __init__(self, failed: dict, tmp_path: Path):
        self.root = tmp_path
        self.runs = tmp_path / "runs"
        shutil.copytree(failed["root"] / "runs", self.runs)
        self.run_id = failed["run_id"]
        self.run_dir = self.runs / self.run_id
        # Its own data and compiled pipeline, so a case may change them: the paths in the run's
        # files move here (a path is not part of the fingerprint; the bytes are).
        self.train = tmp_path / "data" / "train.jsonl"
        self.train.parent.mkdir()
        shutil.copyfile(failed["train"], self.train)
        self.compiled = tmp_path / "compiled.yaml"
        shutil.copyfile(failed["compiled"], self.compiled)
        manifest = self.manifest()
        manifest["params"]["train_data"] = str(self.train)
        manifest["compiled_spec"]["path"] = str(self.compiled)
        self.write_manifest(manifest)
        self.write_params(manifest["params"])

    def manifest(self) -> dict:
        return json.loads((self.run_dir / "manifest.json").read_text())

    def write_manifest(self, manifest: dict) -> None:
        (self.run_dir / "manifest.json").write_text(json.dumps(manifest))

    def write_params(self, params: dict) -> None:
        (self.run_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=True))

    def store(self) -> MetadataStore:
        return MetadataStore(self.runs)

    def records(self) -> list[dict]:
        if not (self.runs / "metadata.sqlite").is_file():
            return []
        store = self.store()
        try:
            return [{**r, "executions": len(store.executions(r["run_id"]))} for r in store.runs()]
        finally:
            store.close()

    def state(self) -> tuple[dict, list[dict]]:
        return tree(self.root, frozenset({".lock", "__pycache__"}) | STORE_FILES), self.records()


def _set_status(status: str, **props) -> Callable[[Case], None]:
    def apply(case: Case) -> None:
        store = case.store()
        try:
            store.update_run(case.run_id, status=status, **props)
        finally:
            store.close()

    return apply


def _running(case: Case) -> None:
    _set_status("running", pid=os.getpid(), host=socket.gethostname())(case)


def _on_manifest(change: Callable[[dict], None], params_too: bool = False):
    def apply(case: Case) -> None:
        manifest = case.manifest()
        change(manifest)
        case.write_manifest(manifest)
        if params_too:
            case.write_params(manifest["params"])

    return apply


def _write(name: str, content: bytes | None = None, directory: bool = False):
    def apply(case: Case) -> None:
        path = case.run_dir / name
        path.unlink()
        if directory:
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)

    return apply


def _data(change: Callable[[Path], None]):
    def apply(case: Case) -> None:
        change(case.train)

    return apply


def _replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _compiled_changed(case: Case) -> None:
    case.compiled.write_text(case.compiled.read_text() + "\n# changed\n")


def _compiled_gone(case: Case) -> None:
    case.compiled.unlink()


def _run_dir_gone(case: Case) -> None:
    shutil.rmtree(case.run_dir)


def _set_param(key, value):
    def change(manifest: dict) -> None:
        manifest["params"][key] = value

    return change


BROKEN_RUNS = {
    # The run's state.
    "succeeded": (_set_status("succeeded"), "it succeeded"),
    "running now": (_running, "it is running now"),
    "run directory gone": (_run_dir_gone, "is gone"),
    # Its manifest.
    "manifest missing": (_write("manifest.json"), "manifest.json is missing"),
    "manifest not JSON": (_write("manifest.json", b"{not json"), "not valid JSON"),
    "manifest empty": (_write("manifest.json", b""), "not valid JSON"),
    "manifest not UTF-8": (_write("manifest.json", b"\xff\xfe\x00{"), "not valid JSON"),
    "manifest a list": (_write("manifest.json", b"[1, 2]"), "is damaged"),
    "manifest a directory": (_write("manifest.json", directory=True), "is not a file"),
    "manifest without params": (_on_manifest(lambda m: m.pop("params")), "is damaged"),
    "manifest params a string": (_on_manifest(lambda m: m.update(params="x")), "is damaged"),
    "manifest without compiled spec": (
        _on_manifest(lambda m: m.pop("compiled_spec")),
        "is damaged",
    ),
    "manifest without data hashes": (
        _on_manifest(lambda m: m.update(data_sha256=None)),
        "is damaged",
    ),
    "manifest names another run": (
        _on_manifest(_set_param("run_id", "adaptune-20200101-000000-aaaaaa"), params_too=True),
        "names another run",
    ),
    "manifest seed changed": (
        _on_manifest(_set_param("seed", 7), params_too=True),
        "differs from what it started with",
    ),
    "manifest training changed": (
        _on_manifest(_set_param("training", {"steps": 999}), params_too=True),
        "differs from what it started with",
    ),
    "manifest model name changed": (
        _on_manifest(_set_param("model_name", "other"), params_too=True),
        "differs from what it started with",
    ),
    "manifest and params.yaml disagree": (
        _on_manifest(_set_param("seed", 7)),
        "disagree",
    ),
    # Its params.yaml.
    "params.yaml missing": (_write("params.yaml"), "params.yaml is missing"),
    "params.yaml not YAML": (_write("params.yaml", b"a: [unclosed"), "not valid YAML"),
    "params.yaml a list": (_write("params.yaml", b"- 1\n- 2\n"), "expected a mapping"),
    "params.yaml empty": (_write("params.yaml", b""), "disagree"),
    "params.yaml not UTF-8": (_write("params.yaml", b"\xff\xfe: 1"), "not UTF-8"),
    "params.yaml a directory": (_write("params.yaml", directory=True), "is not a file"),
    "params.yaml an alias bomb": (
        _write("params.yaml", b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"),
        "aliases",
    ),
    # Its data.
    "data changed": (_data(lambda p: p.write_text(p.read_text() + p.read_text())), "changed"),
    "data one byte changed": (
        _data(lambda p: p.write_bytes(p.read_bytes()[:-2] + b"X\n")),
        "changed",
    ),
    "data emptied": (_data(lambda p: p.write_text("")), "changed"),
    "data deleted": (_data(lambda p: p.unlink()), "missing or its content changed"),
    "data now a directory": (_data(_replace_with_dir), "missing or its content changed"),
    # Its pipeline.
    "compiled pipeline changed": (_compiled_changed, "compiled pipeline"),
    "compiled pipeline gone": (_compiled_gone, "compiled pipeline"),
}


@pytest.mark.parametrize("name", list(BROKEN_RUNS))
def test_a_broken_run_is_not_resumed(name, failed_run, tmp_path):
    case = Case(failed_run, tmp_path)
    breaks, expected = BROKEN_RUNS[name]
    breaks(case)
    before = case.state()
    line = one_line_error(invoke("run", "--runs-dir", case.runs, "--resume", case.run_id))
    assert line.startswith("adaptune: error: ") and expected in line, line
    assert case.state() == before


BAD_IDS = {
    "empty": "",
    "parent": "..",
    "dot": ".",
    "traversal": "../x",
    "deep traversal": "../../etc/passwd",
    "absolute": "/etc",
    "slash": "adaptune-1/2",
    "upper case": "ADAPTUNE-20200101-000000-AAAAAA",
    "leading dash": "-adaptune",
    "space": "adaptune 1",
    "newline": "adaptune-1\nadaptune-2",
    "nul": "adaptune-\x00",
    "too long": "a" * 200,
    "unicode": "adaptüne-1",
    "glob": "adaptune-*",
}


@pytest.mark.parametrize("name", list(BAD_IDS))
def test_an_invalid_run_id_is_refused(name, failed_run, tmp_path):
    case = Case(failed_run, tmp_path)
    before = case.state()
    line = one_line_error(invoke("run", "--runs-dir", case.runs, "--resume", BAD_IDS[name]))
    assert "run id" in line, line
    assert case.state() == before


UNKNOWN = "adaptune-20200101-000000-abcdef"


@pytest.mark.parametrize("where", ["runs dir of other runs", "no runs dir", "runs dir a file"])
def test_an_unknown_run_is_refused_naming_it(where, failed_run, tmp_path):
    case = Case(failed_run, tmp_path)
    runs = {
        "runs dir of other runs": case.runs,
        "no runs dir": tmp_path / "nowhere",
        "runs dir a file": case.train,
    }[where]
    before = case.state()
    line = one_line_error(invoke("run", "--runs-dir", runs, "--resume", UNKNOWN))
    if where == "runs dir a file":  # refused as an option before any run is looked up
        assert "--runs-dir" in line and "is a file, not a directory" in line, line
    else:
        assert f"unknown run {UNKNOWN}" in line, line
    assert case.state() == before
    assert not (tmp_path / "nowhere").exists()


def test_a_directory_without_a_record_is_unknown(failed_run, tmp_path):
    case = Case(failed_run, tmp_path)
    shutil.copytree(case.run_dir, case.runs / UNKNOWN)
    before = case.state()
    line = one_line_error(invoke("run", "--runs-dir", case.runs, "--resume", UNKNOWN))
    assert f"unknown run {UNKNOWN}" in line, line
    assert case.state() == before


EXTRA_FLAGS = {
    "seed": ["--seed", "3"],
    "train steps": ["--train-steps", "5"],
    "train data": ["--train-data", "other.jsonl"],
    "eval data": ["--eval-data", "other.jsonl"],
    "base model": ["--base-model", "builtin:tiny-t5"],
    "prompt template": ["--prompt-template", "Q: {input_text}"],
    "learning rate": ["--learning-rate", "0.1"],
    "batch size": ["--batch-size", "4"],
    "adapter": ["--adapter", '{"method": "ia3"}'],
    "training": ["--training", '{"steps": 1}'],
    "data": ["--data", '{"format": "csv"}'],
    "gate metric": ["--gate-metric", "bleu"],
    "threshold": ["--threshold", "0.1"],
    "min improvement": ["--min-improvement", "0"],
    "tolerance": ["--tolerance", "0.1"],
    "model name": ["--model-name", "other"],
    "registry dir": ["--registry-dir", "elsewhere"],
    "set": ["--set", "seed=4"],
    "config": ["--config", "configs/sample.yaml"],
    "experiment": ["--experiment", "e"],
    "if changed": ["--if-changed"],
    "compiled": ["--compiled", "compiled/adapter_tuning.yaml"],
    "two flags": ["--seed", "3", "--train-steps", "5"],
}


@pytest.mark.parametrize("name", list(EXTRA_FLAGS))
def test_resume_takes_no_other_option(name, failed_run, tmp_path):
    case = Case(failed_run, tmp_path)
    before = case.state()
    args = ["run", "--runs-dir", case.runs, "--resume", case.run_id, *EXTRA_FLAGS[name]]
    line = one_line_error(invoke(*args))
    assert "--resume continues a run with its own parameters: drop --" in line, line
    assert case.state() == before


@pytest.mark.slow
def test_a_tampered_cache_entry_is_dropped_and_its_step_runs_again(tmp_path):
    # Its own run: cache entries name their outputs by absolute path, so a copy would not do.
    failed = _failed_run(tmp_path)
    run_dir = tmp_path / "runs" / failed["run_id"]
    (dataset,) = run_dir.glob("pipeline/*/validate-dataset/dataset")
    train = dataset / "train.jsonl"
    train.write_text(train.read_text().replace("billing", "sales"))
    outside = tree(tmp_path / "data"), tree(tmp_path / "registry"), failed["compiled"].read_bytes()
    entries = sorted(p.name for p in (run_dir / "cache").glob("*.json"))
    result = invoke("run", "--runs-dir", tmp_path / "runs", "--resume", failed["run_id"])
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output  # its eval split is still empty: it fails again
    lines = result.output.splitlines()
    assert lines[0] == f"resuming run {failed['run_id']}: outputs checked and reusable: nothing"
    assert lines[1].startswith("  runs again: validate-dataset (") and "changed" in lines[1]
    attempts = sorted((run_dir / "pipeline").iterdir())
    assert len(attempts) == 2
    assert (attempts[-1] / "validate-dataset" / "executor_output.json").is_file()  # rerun
    # The tampered entry was removed; the rerun wrote it again (same key), naming its new outputs.
    (entry,) = [run_dir / "cache" / name for name in entries]
    assert str(attempts[-1] / "validate-dataset") in entry.read_text()
    assert str(attempts[0]) not in entry.read_text()
    assert outside == (
        tree(tmp_path / "data"),
        tree(tmp_path / "registry"),
        failed["compiled"].read_bytes(),
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["attempts"] == 2
    assert "validate-dataset" in manifest["resumes"][-1]["rerun"]


def test_of_two_resumes_at_once_only_one_restarts_the_run(failed_run, tmp_path):
    case = Case(failed_run, tmp_path)
    first, second = case.store(), case.store()
    try:
        before = first.restart_run(case.run_id)  # the first resume holds the run now
        assert before["status"] == "failed"
        with pytest.raises(RunNotRestartable, match="running now"):
            second.restart_run(case.run_id)
        record = second.run(case.run_id)
        assert record["status"] == "running" and record["attempts"] == 2
        assert record["pid"] == os.getpid() and "error" not in record
    finally:
        first.close()
        second.close()
    line = one_line_error(invoke("run", "--runs-dir", case.runs, "--resume", case.run_id))
    assert "it is running now" in line, line
