"""Vertex settings resolution, staging plans, labels and states: pure functions, no network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adaptune.errors import UserError
from adaptune.hashing import sha256_file
from adaptune.run_ids import check_run_id, new_run_id
from adaptune.vertex import jobs, staging
from adaptune.vertex.schedules import ScheduleSpec
from adaptune.vertex.settings import resolve_settings


def test_flags_beat_environment_beat_file(tmp_path):
    config = tmp_path / "vertex.yaml"
    config.write_text(
        "project: file-p\nlocation: file-l\npipeline_root: gs://file/r\n"
        "experiment: file-e\nenable_caching: true\n"
    )
    env = {
        "ADAPTUNE_VERTEX_CONFIG": str(config),
        "ADAPTUNE_LOCATION": "env-l",
        "ADAPTUNE_EXPERIMENT": "env-e",
        "ADAPTUNE_ENABLE_CACHING": "false",
        "ADAPTUNE_LABELS": "a=1,b=2",
    }
    settings = resolve_settings({"experiment": "flag-e", "project": None}, env)
    assert settings.project == "file-p"
    assert settings.location == "env-l"
    assert settings.experiment == "flag-e"
    assert settings.enable_caching is False
    assert settings.labels == {"a": "1", "b": "2"}
    assert settings.bucket == "file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("project: p\nzone: x\n", "unknown setting"),
        ("- a\n", "expected a mapping"),
        ("project: p\nenable_caching: maybe\n", "true or false"),
        ("project: p\nlabels: {Bad: x}\n", "label key"),
    ],
)
def test_bad_settings_files_are_user_errors(tmp_path, text, message):
    config = tmp_path / "v.yaml"
    config.write_text(text)
    with pytest.raises(UserError, match=message):
        resolve_settings({}, {}, config)


def test_missing_settings_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        resolve_settings({}, {}, tmp_path / "nope.yaml")


def test_plan_inputs_is_content_addressed_and_maps_gs_to_the_fuse_mount(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"input_text": "a", "output_text": "b"}\n')
    params = {
        "train_data": str(train),
        "eval_data": "gs://other/eval.jsonl",
        "registry_dir": str(tmp_path / "registry"),
        "seed": 1,
    }
    files, staged = staging.plan_inputs(params, "gs://bkt/root/")
    sha = sha256_file(train)
    assert files == {"train_data": train}
    assert staged.uploads == {"train_data": f"gs://bkt/root/inputs/{sha[:16]}/train.jsonl"}
    assert staged.params["train_data"] == f"/gcs/bkt/root/inputs/{sha[:16]}/train.jsonl"
    assert staged.params["eval_data"] == "/gcs/other/eval.jsonl"
    assert staged.params["registry_dir"] == "/gcs/bkt/root/registry"
    assert staged.params["seed"] == 1
    assert len(staged.data_sha256) == 64
    with pytest.raises(UserError, match="file not found"):
        staging.plan_inputs({"train_data": str(tmp_path / "missing")}, "gs://bkt/root")


def test_labels_and_run_ids():
    labels = jobs.job_labels("adaptune-x", "ab" * 32, {"team": "ml"})
    assert labels == {
        "adaptune-run-id": "adaptune-x",
        "adaptune-version": "0_1_0",
        "adaptune-data-sha256": "ab" * 16,
        "team": "ml",
    }
    when = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    assert new_run_id(when, suffix="abc123") == "adaptune-20260105-030000-abc123"
    first, second = new_run_id(when), new_run_id(when)
    assert first != second and first.startswith("adaptune-20260105-030000-")
    with pytest.raises(UserError):
        check_run_id("Has_Upper")


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        ("PIPELINE_STATE_SUCCEEDED", True),
        ("PIPELINE_STATE_FAILED", True),
        ("PIPELINE_STATE_CANCELLED", True),
        ("JOB_STATE_EXPIRED", True),
        ("PIPELINE_STATE_PARTIALLY_SUCCEEDED", True),
        ("PIPELINE_STATE_RUNNING", False),
        ("PIPELINE_STATE_CANCELLING", False),
        ("PIPELINE_STATE_PAUSED", False),
        ("PIPELINE_STATE_UNSPECIFIED", False),
    ],
)
def test_terminal_states(state, terminal):
    assert jobs.is_terminal(state) is terminal


def test_wait_for_job_times_out_with_a_user_error():
    status = jobs.JobStatus("projects/p/locations/l/pipelineJobs/j", "PIPELINE_STATE_RUNNING")
    with pytest.raises(UserError, match="still RUNNING"):
        jobs.wait_for_job(lambda: status, lambda s: None, poll_seconds=0, timeout_seconds=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "weekly"}, "5 fields"),
        ({"cron": "0 3 * * 1", "max_concurrent_run_count": 0}, "at least 1"),
        ({"cron": "0 3 * * 1", "start_time": "2026-01-01"}, "time zone"),
        ({"cron": "0 3 * * 1", "end_time": "soon"}, "RFC 3339"),
        (
            {
                "cron": "0 3 * * 1",
                "start_time": "2026-02-01T00:00:00Z",
                "end_time": "2026-01-01T00:00:00Z",
            },
            "after start_time",
        ),
    ],
)
def test_schedule_spec_refuses_bad_values(kwargs, message):
    with pytest.raises(UserError, match=message):
        ScheduleSpec(display_name="s", **kwargs)
