"""`vertex submit` and `vertex schedule create` with `--backend vertex_gemini`: the gemini
pipeline goes to Vertex AI, through the real Google clients to the local fakes."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner
from conftest import COMPILED, SAMPLE
from test_vertex_cli import adc, env  # noqa: F401  (fixtures)
from test_vertex_fakes import (  # noqa: F401  (fixtures)
    BUCKET,
    LOCATION,
    PROJECT,
    cloud,
    fake_vertex,
    gcs_emulator,
)

from adaptune.cli import main

GEMINI_COMPILED = COMPILED.parent / "gemini_tuning.yaml"


def _gemini_args(*extra: str) -> list[str]:
    return [
        "--backend",
        "vertex_gemini",
        "--train-data",
        str(SAMPLE / "train.jsonl"),
        "--model-name",
        "support-gemini",
        "--set",
        "vertex_gemini.base_model=gemini-2.5-flash",
        "--set",
        "vertex_gemini.epochs=3",
        *extra,
    ]


def test_submit_with_the_gemini_backend_sends_the_gemini_pipeline(env, adc, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/gemini")
    result = CliRunner().invoke(
        main, ["vertex", "submit", *_gemini_args("--run-id", "adaptune-gemini")]
    )
    assert result.exit_code == 0, result.output
    (create,) = env["vertex"].calls("POST", "/pipelineJobs")
    spec = create.body["pipelineSpec"]
    assert spec["pipelineInfo"]["name"] == "gemini-tuning"
    assert spec == yaml.safe_load(GEMINI_COMPILED.read_text())  # the committed gemini spec
    values = create.body["runtimeConfig"]["parameterValues"]
    gemini = values["vertex_gemini"]
    # Where the pipeline job runs, the tuning job runs; every tuning setting explicit.
    assert (gemini["project"], gemini["location"]) == (PROJECT, LOCATION)
    assert gemini["epochs"] == 3 and gemini["base_model"] == "gemini-2.5-flash"
    assert "adapter" not in values and "base_model" not in values
    assert values["train_data"].startswith(f"/gcs/{BUCKET}/")


def test_dry_run_with_the_gpu_profile_compiles_the_gemini_pipeline(monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
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
            "--profile",
            "vertex-gpu",
            "--image",
            "europe-docker.pkg.dev/p/r/adaptune:1",
            *_gemini_args(),
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)["pipelineJob"]
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "gemini-tuning"
    images = {
        e["container"]["image"]
        for e in body["pipelineSpec"]["deploymentSpec"]["executors"].values()
    }
    assert images == {"europe-docker.pkg.dev/p/r/adaptune:1"}


def test_a_compiled_file_of_the_other_backend_is_refused():
    result = CliRunner().invoke(
        main,
        ["vertex", "submit", "--dry-run", "--project", PROJECT, "--compiled", str(COMPILED),
         *_gemini_args()],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "is the adapter-tuning pipeline, not the vertex_gemini backend's" in result.output


def test_schedule_create_with_the_gemini_backend_schedules_the_gemini_pipeline(
    env,  # noqa: F811
    adc,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/sched")
    result = CliRunner().invoke(
        main,
        ["vertex", "schedule", "create", "--cron", "TZ=Etc/UTC 0 3 * * 1", *_gemini_args()],
    )
    assert result.exit_code == 0, result.output
    (create,) = env["vertex"].calls("POST", "/schedules")
    job = create.body["createPipelineJobRequest"]["pipelineJob"]
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "gemini-tuning"
    assert job["runtimeConfig"]["parameterValues"]["vertex_gemini"]["project"] == PROJECT
