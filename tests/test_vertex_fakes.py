"""Submit, dry-run, schedules and status with the real Google clients against local fakes.

The Vertex AI SDK talks REST with anonymous credentials to ``fake_vertex.FakeVertex``; Cloud
Storage goes to gcp-storage-emulator. Both listen on 127.0.0.1; the socket guard stays on.
"""

from __future__ import annotations

import json
import logging
import socket

import pytest
from conftest import COMPILED, SAMPLE
from fake_vertex import FakeVertex

from adaptune import __version__
from adaptune.runner.params import declared_parameters
from adaptune.vertex import jobs, schedules, staging
from adaptune.vertex.settings import VertexSettings

PROJECT = "test-project"
LOCATION = "europe-west4"
BUCKET = "adaptune-test-bucket"
SA = "pipelines@test-project.iam.gserviceaccount.com"
KMS = "projects/test-project/locations/europe-west4/keyRings/ring/cryptoKeys/key"
PROJECT_NUMBER = "123456"
NETWORK = f"projects/{PROJECT_NUMBER}/global/networks/vpc"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gcs_emulator():
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, project_number=PROJECT_NUMBER)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def fake_vertex():
    server = FakeVertex().start()
    yield server
    server.stop()


@pytest.fixture
def cloud(gcs_emulator, fake_vertex, monkeypatch):
    """Both fakes, the clients pointed at them, and a bucket for the pipeline root."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from google.cloud.aiplatform.utils import resource_manager_utils

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    # The SDK checks that the pipeline root's bucket belongs to the project by comparing the
    # bucket's project number (from the emulator) with the Cloud Resource Manager's answer
    # (over gRPC to a Google host, which the socket guard blocks): that one lookup is faked.
    lookups = []

    def get_project_number(project_id, credentials=None):
        lookups.append(project_id)
        return {PROJECT: PROJECT_NUMBER}.get(project_id, "999")

    monkeypatch.setattr(resource_manager_utils, "get_project_number", get_project_number)
    credentials = AnonymousCredentials()
    client = storage.Client(project=PROJECT, credentials=credentials)
    if client.lookup_bucket(BUCKET) is None:
        client.create_bucket(BUCKET)
    settings = VertexSettings(
        project=PROJECT,
        location=LOCATION,
        pipeline_root=f"gs://{BUCKET}/root",
        service_account=SA,
        network=NETWORK,
        kms_key=KMS,
        enable_caching=False,
        labels={"team": "ml"},
        api_endpoint=fake_vertex.endpoint,
    )
    jobs.init_vertex(settings, credentials)
    return {
        "settings": settings,
        "storage": client,
        "credentials": credentials,
        "vertex": fake_vertex,
        "lookups": lookups,
    }


def _params(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_bytes((SAMPLE / "train.jsonl").read_bytes())
    params = declared_parameters(COMPILED)
    params.update(train_data=str(train), eval_data=str(SAMPLE / "eval.jsonl"), seed=7)
    return params


def _build(cloud, tmp_path, run_id="adaptune-test-1"):
    settings = cloud["settings"]
    files, staged = staging.plan_inputs(_params(tmp_path), settings.pipeline_root)
    uploaded = staging.upload_inputs(cloud["storage"], files, staged.uploads)
    labels = jobs.job_labels(run_id, staged.data_sha256, settings.labels)
    job = jobs.build_pipeline_job(
        settings, COMPILED, staged.params, run_id, labels, cloud["credentials"]
    )
    return job, staged, uploaded


def test_submit_sends_the_template_parameters_labels_and_settings(cloud, tmp_path, caplog):
    settings, fake = cloud["settings"], cloud["vertex"]
    job, staged, uploaded = _build(cloud, tmp_path)
    dry_run = jobs.request_body(job, settings)
    with caplog.at_level(logging.ERROR):
        url = jobs.submit_job(job, settings)

    # The SDK's bucket check ran against the emulator and did not fall back to creating one
    # (which would look the project number up through the resource manager).
    assert not [r for r in caplog.records if "GCS bucket" in r.getMessage()]
    assert cloud["lookups"] == [PROJECT]
    assert url == (
        f"https://console.cloud.google.com/vertex-ai/locations/{LOCATION}"
        f"/pipelines/runs/adaptune-test-1?project={PROJECT}"
    )
    (create,) = fake.calls("POST", f"{PARENT}/pipelineJobs")
    assert create.query["pipelineJobId"] == ["adaptune-test-1"]
    body = create.body
    assert body == dry_run
    assert body["displayName"] == "adaptune-test-1"
    assert body["serviceAccount"] == SA
    assert body["network"] == NETWORK
    assert body["encryptionSpec"] == {"kmsKeyName": KMS}
    assert body["labels"] == {
        "adaptune-run-id": "adaptune-test-1",
        "adaptune-version": __version__.replace(".", "_"),
        "adaptune-data-sha256": staged.data_sha256[:32],
        "team": "ml",
    }
    template = json.loads(json.dumps(body["pipelineSpec"]))
    assert template["pipelineInfo"]["name"] == "adapter-tuning"
    executors = template["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {
        "ghcr.io/adaptune/adaptune:0.1.0"
    }
    runtime = body["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == f"gs://{BUCKET}/root"
    values = runtime["parameterValues"]
    assert values["train_data"] == staged.params["train_data"]
    assert values["train_data"].startswith(f"/gcs/{BUCKET}/root/inputs/")
    assert values["registry_dir"] == f"/gcs/{BUCKET}/root/registry"
    assert values["seed"] == 7
    assert values["adapter"]["method"] == "lora"
    # caching off: every task's caching option is false in the sent template
    tasks = template["root"]["dag"]["tasks"]
    assert all(t["cachingOptions"].get("enableCache", False) is False for t in tasks.values())

    # The input files are in the emulator, byte for byte.
    assert sorted(uploaded) == sorted(staged.uploads.values())
    bucket_name, blob_name = staging.split_gs_uri(staged.uploads["train_data"])
    blob = cloud["storage"].bucket(bucket_name).blob(blob_name)
    assert blob.download_as_bytes() == (SAMPLE / "train.jsonl").read_bytes()


def test_staging_uploads_an_unchanged_file_once(cloud, tmp_path):
    _build(cloud, tmp_path, "adaptune-a")
    _, _, uploaded_again = _build(cloud, tmp_path, "adaptune-b")
    assert uploaded_again == []


def test_status_follows_the_job_to_an_end_state_the_sdk_misses(cloud, tmp_path):
    settings, fake = cloud["settings"], cloud["vertex"]
    job, _, _ = _build(cloud, tmp_path, "adaptune-status")
    jobs.submit_job(job, settings)
    name = f"{PARENT}/pipelineJobs/adaptune-status"
    task = {"taskName": "tune-adapter", "state": "RUNNING", "startTime": "2026-01-01T00:00:00Z"}
    fake.script(
        name,
        {"state": "PIPELINE_STATE_RUNNING", "jobDetail": {"taskDetails": [task]}},
        {
            "state": "PIPELINE_STATE_FAILED",
            "error": {"code": 9, "message": "tune-adapter failed"},
            "jobDetail": {"taskDetails": [{**task, "state": "FAILED"}]},
        },
    )
    seen = []
    final = jobs.wait_for_job(
        lambda: jobs.get_job_status(settings, "adaptune-status", cloud["credentials"]),
        seen.append,
        poll_seconds=0,
    )
    assert [s.state for s in seen] == ["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_FAILED"]
    assert seen[0].tasks == [
        jobs.TaskStatus("tune-adapter", "RUNNING", "2026-01-01T00:00:00+00:00", "", "")
    ]
    assert final.ended and not final.succeeded
    assert final.error == "tune-adapter failed"
    assert final.tasks[0].state == "FAILED"
    assert all(r.path.endswith(name) for r in fake.calls("GET", "pipelineJobs"))


def test_status_of_an_unknown_job_is_a_user_error(cloud):
    from adaptune.errors import UserError

    with pytest.raises(UserError, match="not found"):
        jobs.get_job_status(cloud["settings"], "adaptune-nope", cloud["credentials"])


def test_schedule_create_list_pause_resume_delete(cloud, tmp_path):
    settings, fake = cloud["settings"], cloud["vertex"]
    job, staged, _ = _build(cloud, tmp_path, "adaptune-weekly")
    spec = schedules.ScheduleSpec(
        display_name="weekly-retrain",
        cron="TZ=Europe/Amsterdam 0 3 * * 1",
        start_time="2026-01-05T00:00:00Z",
        end_time="2026-12-28T00:00:00Z",
    )
    schedule = schedules.create_schedule(job, spec, settings)
    (create,) = fake.calls("POST", f"{PARENT}/schedules")
    body = create.body
    assert body["displayName"] == "weekly-retrain"
    assert body["cron"] == "TZ=Europe/Amsterdam 0 3 * * 1"
    assert body["maxConcurrentRunCount"] == "1"
    assert body["startTime"] == "2026-01-05T00:00:00Z"
    assert body["endTime"] == "2026-12-28T00:00:00Z"
    request = body["createPipelineJobRequest"]
    assert request["parent"] == PARENT
    pipeline_job = request["pipelineJob"]
    assert pipeline_job["serviceAccount"] == SA
    assert pipeline_job["network"] == NETWORK
    assert pipeline_job["encryptionSpec"] == {"kmsKeyName": KMS}
    assert pipeline_job["labels"]["adaptune-data-sha256"] == staged.data_sha256[:32]
    values = pipeline_job["runtimeConfig"]["parameterValues"]
    assert values["train_data"] == staged.params["train_data"]
    assert pipeline_job["pipelineSpec"]["pipelineInfo"]["name"] == "adapter-tuning"

    schedule_id = schedule.resource_name.rsplit("/", 1)[-1]
    (row,) = schedules.list_schedules(settings, cloud["credentials"])
    assert (row["name"], row["state"], row["cron"]) == (schedule_id, "ACTIVE", spec.cron)
    schedules.change_schedule(settings, schedule_id, "pause", cloud["credentials"])
    assert fake.resources[schedule.resource_name]["state"] == "PAUSED"
    schedules.change_schedule(settings, schedule_id, "resume", cloud["credentials"])
    assert fake.resources[schedule.resource_name]["state"] == "ACTIVE"
    schedules.change_schedule(settings, schedule_id, "delete", cloud["credentials"])
    assert schedule.resource_name not in fake.resources
    assert schedules.list_schedules(settings, cloud["credentials"]) == []
