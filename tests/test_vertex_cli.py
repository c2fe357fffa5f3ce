"""The Vertex AI commands end to end: flags, ADAPTUNE_* variables and a settings file, through
the real Google clients to the local fakes (fixtures from test_vertex_fakes)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import COMPILED, REPO, SAMPLE
from test_cli import PARAM_FLAGS, captured_run  # noqa: F401  (fixture)
from test_vertex_fakes import (  # noqa: F401  (fixtures)
    BUCKET,
    KMS,
    LOCATION,
    PARENT,
    PROJECT,
    SA,
    cloud,
    fake_vertex,
    gcs_emulator,
)

from adaptune.cli import main


@pytest.fixture
def adc(monkeypatch):
    """Application Default Credentials → anonymous (no metadata server, no gcloud files)."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), PROJECT))


@pytest.fixture
def env(monkeypatch, cloud):  # noqa: F811
    for key in ("PROJECT", "LOCATION", "PIPELINE_ROOT", "API_ENDPOINT", "VERTEX_CONFIG"):
        monkeypatch.delenv(f"ADAPTUNE_{key}", raising=False)
    monkeypatch.setenv("ADAPTUNE_PROJECT", PROJECT)
    monkeypatch.setenv("ADAPTUNE_LOCATION", LOCATION)
    monkeypatch.setenv("ADAPTUNE_API_ENDPOINT", cloud["vertex"].endpoint)
    # Point the SDK's global config at a dead port: the commands must set it up themselves.
    from google.cloud import aiplatform

    aiplatform.init(project="elsewhere", location="us-east1", api_endpoint="http://127.0.0.1:9")
    return cloud


def test_dry_run_prints_the_request_and_calls_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    settings_file = tmp_path / "vertex.yaml"
    settings_file.write_text(
        f"project: from-file\nlocation: {LOCATION}\npipeline_root: gs://{BUCKET}/root\n"
        f"service_account: {SA}\nkms_key: {KMS}\nenable_caching: false\nlabels: {{team: ml}}\n"
    )
    monkeypatch.setenv("ADAPTUNE_PROJECT", PROJECT)  # the environment beats the file
    monkeypatch.setenv("ADAPTUNE_EXPERIMENT", "weekly")
    result = CliRunner().invoke(
        main,
        [
            "vertex",
            "submit",
            "--dry-run",
            "--vertex-config",
            str(settings_file),
            "--config",
            str(REPO / "configs" / "sample.yaml"),
            "--set",
            "seed=3",
            "--label",
            "owner=alice",  # a flag beats the file
            "--run-id",
            "adaptune-dry",
        ],
    )
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)
    assert request["parent"] == PARENT
    assert request["pipelineJobId"] == "adaptune-dry"
    assert request["experiment"] == "weekly"
    body = request["pipelineJob"]
    assert body["serviceAccount"] == SA
    assert body["encryptionSpec"] == {"kmsKeyName": KMS}
    assert body["labels"]["owner"] == "alice" and "team" not in body["labels"]
    assert body["labels"]["adaptune-run-id"] == "adaptune-dry"
    values = body["runtimeConfig"]["parameterValues"]
    assert values["seed"] == 3
    assert values["model_name"] == "support-router"
    assert values["run_id"] == "adaptune-dry"
    train_uri = request["uploads"][str(SAMPLE / "train.jsonl")]
    assert train_uri.startswith(f"gs://{BUCKET}/root/inputs/")
    assert values["train_data"] == "/gcs/" + train_uri.removeprefix("gs://")
    tasks = body["pipelineSpec"]["root"]["dag"]["tasks"]
    assert all(not t["cachingOptions"].get("enableCache", False) for t in tasks.values())


def test_dry_run_with_the_gpu_profile_sends_the_profile_image(tmp_path):
    image = "europe-docker.pkg.dev/p/r/adaptune:0.1.0-cuda"
    result = CliRunner().invoke(
        main,
        [
            "vertex",
            "submit",
            "--dry-run",
            "--project",
            PROJECT,
            "--pipeline-root",
            f"gs://{BUCKET}/root",
            "--train-data",
            str(SAMPLE / "train.jsonl"),
            "--profile",
            "vertex-gpu",
            "--image",
            image,
            "--accelerator",
            "L4x4",
        ],
    )
    assert result.exit_code == 0, result.output
    spec = json.loads(result.output)["pipelineJob"]["pipelineSpec"]
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {image}
    # The tuning task runs as a Vertex AI CustomJob on the chosen machine; evaluation gets a GPU.
    params = spec["components"]["comp-tune-adapter"]["inputDefinitions"]["parameters"]
    (pool,) = params["worker_pool_specs"]["defaultValue"]
    assert pool["machine_spec"]["machine_type"] == "g2-standard-48"
    assert pool["machine_spec"]["accelerator_type"] == "NVIDIA_L4"
    assert pool["machine_spec"]["accelerator_count"] == 4
    assert pool["container_spec"]["image_uri"] == image
    resources = executors["exec-evaluate"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "NVIDIA_L4"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pipeline-root", "gs://b/r"], "project is required"),
        (["--project", "p"], "pipeline_root is required"),
        (["--project", "p", "--pipeline-root", "/tmp/x"], "must be a gs:// directory"),
        (["--project", "p", "--pipeline-root", "gs://b", "--kms-key", "k"], "kms_key must be"),
        (["--project", "p", "--pipeline-root", "gs://b", "--label", "A=b"], "label key"),
        (["--project", "p", "--pipeline-root", "gs://b", "--set", "nope=1"], "unknown pipeline"),
        (["--project", "p", "--pipeline-root", "gs://b", "--profile", "tpu"], "unknown profile"),
        (
            ["--project", "p", "--pipeline-root", "gs://b", "--profile", "vertex-gpu",
             "--accelerator", "TPUx4"],
            "unknown accelerator",
        ),
        (["--project", "p", "--pipeline-root", "gs://b", "--accelerator", "L4x4"], "--profile"),
        (["--project", "p", "--pipeline-root", "gs://b", "--run-id", "Bad_Id"], "run id"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(monkeypatch, args, message):
    for key in ("PROJECT", "PIPELINE_ROOT", "VERTEX_CONFIG"):
        monkeypatch.delenv(f"ADAPTUNE_{key}", raising=False)
    result = CliRunner().invoke(
        main,
        ["vertex", "submit", "--dry-run", "--train-data", str(SAMPLE / "train.jsonl"), *args],
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_submit_command_stages_and_creates_the_job(env, adc, monkeypatch):
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/cli")
    result = CliRunner().invoke(
        main,
        [
            "vertex",
            "submit",
            "--train-data",
            str(SAMPLE / "train.jsonl"),
            "--eval-data",
            str(SAMPLE / "eval.jsonl"),
            "--service-account",
            SA,
            "--run-id",
            "adaptune-cli",
            "--compiled",
            str(COMPILED),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "pipelines/runs/adaptune-cli?project=test-project" in result.output
    (create,) = env["vertex"].calls("POST", "/pipelineJobs")
    assert create.body["serviceAccount"] == SA
    assert create.body["runtimeConfig"]["gcsOutputDirectory"] == f"gs://{BUCKET}/cli"
    train = create.body["runtimeConfig"]["parameterValues"]["train_data"]
    blob_name = train.removeprefix(f"/gcs/{BUCKET}/")
    blob = env["storage"].bucket(BUCKET).blob(blob_name)
    assert blob.download_as_bytes() == (SAMPLE / "train.jsonl").read_bytes()


def test_submit_to_a_missing_bucket_is_a_clear_error(env, adc):
    result = CliRunner().invoke(
        main,
        [
            "vertex",
            "submit",
            "--pipeline-root",
            "gs://no-such-bucket/root",
            "--train-data",
            str(SAMPLE / "train.jsonl"),
        ],
    )
    assert result.exit_code == 2
    assert "bucket gs://no-such-bucket not found" in result.output
    assert env["vertex"].requests == []


def test_status_wait_exits_1_when_the_job_expires(env, adc):
    fake = env["vertex"]
    name = f"{PARENT}/pipelineJobs/adaptune-old"
    fake.resources[name] = {"name": name, "state": "PIPELINE_STATE_RUNNING"}
    fake.script(name, {"state": "PIPELINE_STATE_RUNNING"}, {"state": "JOB_STATE_EXPIRED"})
    result = CliRunner().invoke(
        main, ["vertex", "status", "adaptune-old", "--wait", "--poll", "0"]
    )
    # The SDK parses EXPIRED (missing from its PipelineState) as UNSPECIFIED; the raw state
    # is read instead, and it ends the wait.
    assert result.exit_code == 1, result.output
    assert "EXPIRED" in result.output


def test_partially_succeeded_ends_the_wait_too(env, adc):
    from adaptune.vertex import jobs

    fake = env["vertex"]
    name = f"{PARENT}/pipelineJobs/adaptune-part"
    fake.resources[name] = {"name": name, "state": "PIPELINE_STATE_PARTIALLY_SUCCEEDED"}
    jobs.init_vertex(env["settings"], env["credentials"])
    status = jobs.get_job_status(env["settings"], "adaptune-part", env["credentials"])
    assert status.state == "PIPELINE_STATE_PARTIALLY_SUCCEEDED"
    assert status.ended and not status.succeeded


def test_status_shows_each_task(env, adc):
    fake = env["vertex"]
    name = f"{PARENT}/pipelineJobs/adaptune-done"
    fake.resources[name] = {
        "name": name,
        "state": "PIPELINE_STATE_SUCCEEDED",
        "jobDetail": {
            "taskDetails": [
                {"taskName": "validate-dataset", "state": "SUCCEEDED"},
                {"taskName": "deploy", "state": "SKIPPED"},
            ]
        },
    }
    result = CliRunner().invoke(main, ["vertex", "status", "adaptune-done"])
    assert result.exit_code == 0, result.output
    for text in ("adaptune-done", "SUCCEEDED", "validate-dataset", "deploy", "SKIPPED"):
        assert text in result.output


def test_schedule_commands(env, adc, monkeypatch):
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/sched")
    runner = CliRunner()
    created = runner.invoke(
        main,
        [
            "vertex",
            "schedule",
            "create",
            "--cron",
            "TZ=Etc/UTC 0 3 * * 1",
            "--name",
            "weekly",
            "--train-data",
            str(SAMPLE / "train.jsonl"),
        ],
    )
    assert created.exit_code == 0, created.output
    (create,) = env["vertex"].calls("POST", f"{PARENT}/schedules")
    assert create.body["cron"] == "TZ=Etc/UTC 0 3 * * 1"
    assert create.body["maxConcurrentRunCount"] == "1"
    schedule_id = created.output.strip().rsplit("/", 1)[-1]
    listed = runner.invoke(main, ["vertex", "schedule", "list"])
    assert listed.exit_code == 0 and "weekly" in listed.output and "ACTIVE" in listed.output
    assert runner.invoke(main, ["vertex", "schedule", "pause", schedule_id]).exit_code == 0
    assert env["vertex"].resources[f"{PARENT}/schedules/{schedule_id}"]["state"] == "PAUSED"
    assert runner.invoke(main, ["vertex", "schedule", "resume", schedule_id]).exit_code == 0
    assert runner.invoke(main, ["vertex", "schedule", "delete", schedule_id]).exit_code == 0
    missing = runner.invoke(main, ["vertex", "schedule", "pause", schedule_id])
    assert missing.exit_code == 2 and "schedule not found" in missing.output
    bad = runner.invoke(main, ["vertex", "schedule", "create", "--cron", "weekly"])
    assert bad.exit_code == 2 and "expected 5 fields" in bad.output


def test_lineage_of_a_vertex_model_version_reads_its_labels(env, adc):
    fake = env["vertex"]
    job = f"{PARENT}/pipelineJobs/adaptune-20261126-010203"
    fake.resources[job] = {
        "name": job,
        "state": "PIPELINE_STATE_SUCCEEDED",
        "labels": {"adaptune-run-id": "adaptune-20261126-010203",
                   "adaptune-data-sha256": "ab" * 16},
        "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/root",
                          "parameterValues": {"train_data": "/gcs/bucket/train.jsonl"}},
    }
    model = f"{PARENT}/models/router"
    fake.resources[model] = {
        "name": model,
        "versionId": "3",
        "labels": {"adaptune-run-id": "adaptune-20261126-010203",
                   "adaptune-data-sha256": "ab" * 16},
    }
    result = CliRunner().invoke(main, ["vertex", "lineage", "router"])
    assert result.exit_code == 0, result.output
    chain = json.loads(result.output)
    assert chain["model"]["name"] == model
    assert chain["pipeline_job"]["name"] == job
    assert chain["pipeline_job"]["state"] == "PIPELINE_STATE_SUCCEEDED"
    assert chain["pipeline_job"]["parameters"]["train_data"] == "/gcs/bucket/train.jsonl"
    assert chain["data_sha256"] == "ab" * 16
    assert [c for c in fake.calls("GET") if c.path.endswith("/models/router")]


def test_lineage_of_a_vertex_model_without_adaptune_labels_is_refused(env, adc):
    fake = env["vertex"]
    model = f"{PARENT}/models/other"
    fake.resources[model] = {"name": model, "versionId": "1", "labels": {}}
    result = CliRunner().invoke(main, ["vertex", "lineage", "other"])
    assert result.exit_code == 2
    assert "not deployed by adaptune" in result.output


# Parameters staging rewrites for Vertex (local paths → /gcs/, the job id); the rest must be
# exactly what `adaptune run` resolves from the same flags.
STAGED = ("train_data", "eval_data", "registry_dir", "run_id")


def test_run_submit_and_schedule_resolve_the_same_flags_alike(
    env, adc, monkeypatch, tmp_path, captured_run  # noqa: F811
):
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/same")
    flags = ["--train-data", str(SAMPLE / "train.jsonl"), *PARAM_FLAGS]
    ran = CliRunner().invoke(main, ["run", *flags, "--runs-dir", str(tmp_path)])
    assert ran.exit_code == 0, ran.output
    local = {k: v for k, v in captured_run[0]["params"].items() if k not in STAGED}
    assert local["seed"] == 3 and local["adapter"]["r"] == 4 and local["training"]["steps"] == 7

    dry = CliRunner().invoke(main, ["vertex", "submit", "--dry-run", *flags])
    assert dry.exit_code == 0, dry.output
    submitted = json.loads(dry.output)["pipelineJob"]["runtimeConfig"]["parameterValues"]
    assert {k: v for k, v in submitted.items() if k not in STAGED} == local

    created = CliRunner().invoke(
        main, ["vertex", "schedule", "create", "--cron", "TZ=Etc/UTC 0 3 * * 1", *flags]
    )
    assert created.exit_code == 0, created.output
    (create,) = env["vertex"].calls("POST", f"{PARENT}/schedules")
    job = create.body["createPipelineJobRequest"]["pipelineJob"]
    scheduled = job["runtimeConfig"]["parameterValues"]
    assert {k: v for k, v in scheduled.items() if k not in STAGED} == local
