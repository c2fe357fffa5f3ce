"""Task records of a local run, read from kfp.local's files: statuses, times, inputs, outputs."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from conftest import COMPILED

from adaptune.runner.task_records import EXECUTOR_OUTPUT, RunState, read_task_records

SPEC = yaml.safe_load(COMPILED.read_text())
PARAMS = {
    "train_data": "/data/train.jsonl",
    "eval_data": "",
    "registry_dir": "/registry",
    "model_name": "router",
    "run_id": "adaptune-20261231-235900-abcdef",
}


def _finish(root: Path, task: str, when: datetime, parameters: dict, artifacts=()) -> None:
    task_dir = root / "pipeline" / "adapter-tuning-1" / task
    task_dir.mkdir(parents=True)
    output = {"parameterValues": parameters, "artifacts": {}}
    for name in artifacts:
        (task_dir / name).mkdir()
        output["artifacts"][name] = {"artifacts": [{"uri": str(task_dir / name), "metadata": {}}]}
    (task_dir / EXECUTOR_OUTPUT).write_text(json.dumps(output))
    os.utime(task_dir / EXECUTOR_OUTPUT, (when.timestamp(), when.timestamp()))


def test_times_carry_the_full_date_across_midnight(tmp_path):
    start = datetime(2026, 12, 31, 23, 59, 0).astimezone()
    _finish(tmp_path, "validate-dataset", start + timedelta(seconds=30), {"data_sha256": "ab"},
            ["dataset", "report"])
    _finish(tmp_path, "format-text-to-text", start + timedelta(seconds=90), {}, ["formatted"])
    records = read_task_records(tmp_path, SPEC, PARAMS, RunState(start))
    validate, formatting = records["validate-dataset"], records["format-text-to-text"]
    assert validate.start_time == start.isoformat(timespec="milliseconds")
    assert validate.end_time.startswith("2026-12-31T23:59:30")
    # the next task started when the one before it ended, and ended on the next day
    assert formatting.start_time == validate.end_time
    assert formatting.end_time.startswith("2027-01-01T00:00:30")
    assert validate.status == formatting.status == "succeeded"
    assert validate.inputs == {"train_data": "data.train_data"}, "eval_data is empty"
    assert formatting.inputs == {"dataset": "validate-dataset.dataset"}
    assert formatting.parameters["data_sha256"] == "ab"
    assert set(validate.artifacts) == {"dataset", "report"}
    assert "tune-adapter" not in records, "not started: nothing is known of it yet"


def test_a_failed_step_and_the_tasks_after_it(tmp_path):
    start = datetime(2026, 12, 1, 9, 0, 0).astimezone()
    _finish(tmp_path, "validate-dataset", start + timedelta(seconds=5), {}, ["dataset"])
    ended = start + timedelta(seconds=9)
    state = RunState(start, ended, succeeded=False, failed_task="format-text-to-text")
    records = read_task_records(tmp_path, SPEC, PARAMS, state)
    assert list(records) == ["validate-dataset", "format-text-to-text"]
    failed = records["format-text-to-text"]
    assert failed.status == "failed"
    assert failed.start_time == records["validate-dataset"].end_time
    assert failed.end_time == ended.isoformat(timespec="milliseconds")


def test_a_task_that_failed_before_writing_anything_and_reported_no_step(tmp_path):
    """A register step that crashed (no UserError line, no output directory) is still named."""
    start = datetime(2026, 12, 1, 9, 0, 0).astimezone()
    for offset, task in enumerate(
        ("validate-dataset", "format-text-to-text", "tune-adapter", "evaluate", "passes-gate"),
        start=1,
    ):
        _finish(tmp_path, task, start + timedelta(seconds=offset), {"Output": True})
    state = RunState(start, start + timedelta(seconds=9), succeeded=False, failed_task=None)
    records = read_task_records(tmp_path, SPEC, PARAMS, state)
    assert records["register-version"].status == "failed"
    assert "deploy-to-vertex" not in records, "after a failure, later tasks did not run"


def test_a_skipped_branch_is_recorded_as_skipped(tmp_path):
    start = datetime(2026, 12, 1, 9, 0, 0).astimezone()
    for offset, task in enumerate(
        ("validate-dataset", "format-text-to-text", "tune-adapter", "evaluate", "passes-gate"),
        start=1,
    ):
        _finish(tmp_path, task, start + timedelta(seconds=offset), {"Output": False})
    state = RunState(start, start + timedelta(seconds=9), succeeded=True)
    records = read_task_records(tmp_path, SPEC, PARAMS, state)
    skipped = [name for name, record in records.items() if record.status == "skipped"]
    assert skipped == ["register-version", "wants-vertex-deploy", "deploy-to-vertex"]


def test_a_registering_task_outputs_its_registry_version(tmp_path):
    start = datetime(2026, 12, 1, 9, 0, 0).astimezone()
    _finish(tmp_path, "register-version", start + timedelta(seconds=1), {"version": 3})
    records = read_task_records(tmp_path, SPEC, PARAMS, RunState(start))
    version = records["register-version"].artifacts["registry_version"]
    assert version.kind == "registry_version"
    assert version.uri == str(Path("/registry/router/v3").resolve())
    assert version.metadata == {"model": "router", "version": 3}
    assert records["register-version"].inputs == {
        "eval_metrics": "evaluate.eval_metrics",
        "trained_adapter": "tune-adapter.trained_adapter",
    }


def test_inputs_are_followed_through_two_levels_of_sub_dags(tmp_path):
    start = datetime(2026, 12, 1, 9, 0, 0).astimezone()
    _finish(tmp_path, "register-version", start + timedelta(seconds=1), {"version": 3})
    _finish(tmp_path, "wants-vertex-deploy", start + timedelta(seconds=2), {"Output": True})
    _finish(tmp_path, "deploy-to-vertex", start + timedelta(seconds=3), {"promoted": True})
    # The typed Vertex outputs point at Vertex AI, not at the task's directory.
    name = "projects/p/locations/europe-west4/models/7@2"
    uri = f"https://europe-west4-aiplatform.googleapis.com/v1/{name}"
    written = tmp_path / "pipeline" / "adapter-tuning-1" / "deploy-to-vertex" / EXECUTOR_OUTPUT
    output = json.loads(written.read_text())
    output["artifacts"]["vertex_model"] = {
        "artifacts": [{"uri": uri, "metadata": {"resourceName": name}}]
    }
    written.write_text(json.dumps(output))
    params = {**PARAMS, "vertex_deploy": {"project": "p"}}
    deploy = read_task_records(tmp_path, SPEC, params, RunState(start))["deploy-to-vertex"]
    assert deploy.parameters["version"] == 3, "register-version → condition-1 → condition-2"
    assert deploy.parameters["vertex_deploy"] == {"project": "p"}
    assert deploy.parameters["serving_image"] == "ghcr.io/adaptune/adaptune:0.1.0"
    assert deploy.inputs == {"trained_adapter": "tune-adapter.trained_adapter"}
    assert deploy.outputs == {"promoted": True}
    model = deploy.artifacts["vertex_model"]
    assert (model.uri, model.kind, model.metadata) == (uri, "vertex_model", {"resourceName": name})



def test_a_vertex_artifact_is_recorded_by_its_uri_unhashed(tmp_path):
    from adaptune.lineage.recorder import OutputArtifact, RunRecorder, TaskRecord
    from adaptune.lineage.store import MetadataStore

    name = "projects/p/locations/europe-west4/endpoints/5"
    uri = f"https://europe-west4-aiplatform.googleapis.com/v1/{name}"
    local = tmp_path / "report"
    local.mkdir()
    (local / "index.html").write_text("<p>report</p>")
    store = MetadataStore(tmp_path / "runs")
    try:
        recorder = RunRecorder(store, "run-1", tmp_path / "run.log", {})
        artifacts = {
            "vertex_endpoint": OutputArtifact(uri, "vertex_endpoint", {"resourceName": name}),
            "report": OutputArtifact(str(local), "report"),
        }
        ids = recorder.record([TaskRecord("deploy-to-vertex", "succeeded", artifacts=artifacts)])
        endpoint = store.artifact(ids["deploy-to-vertex.vertex_endpoint"])
        assert (endpoint.uri, endpoint.sha256) == (uri, None)  # not "https:/...", not hashed
        assert endpoint.properties["resourceName"] == name
        report = store.artifact(ids["deploy-to-vertex.report"])
        assert report.uri == str(local) and report.sha256  # a local one is hashed as before
    finally:
        store.close()
