"""The gemini pipeline, whole, through `adaptune run --backend vertex_gemini`.

The CLI runs in a subprocess, as a user runs it; its kfp.local tasks call the fake Gemini server
(tests/fake_gemini.py) on 127.0.0.1 with the real google-genai client, finding their credentials
through Application Default Credentials on a fake metadata server (tests/fake_metadata.py). The
socket guard is on in every process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import pytest
from conftest import REPO, SAMPLE
from fake_gemini import FakeGemini, JobScript
from fake_metadata import FakeMetadata
from google.oauth2.credentials import Credentials

from adaptune.lineage.store import MetadataStore
from adaptune.registry import list_versions, read_aliases, resolve_version, verify_version

PROJECT, LOCATION = "gemini-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
MODEL = "support-gemini"


def _records(name: str, count: int) -> list[dict]:
    lines = (SAMPLE / name).read_text(encoding="utf-8").splitlines()[:count]
    return [json.loads(line) for line in lines]


TRAIN = _records("train.jsonl", 40)
EVAL = _records("eval.jsonl", 12)
LABELS = {r["input_text"]: r["output_text"] for r in TRAIN + EVAL}


def _question(body: dict) -> str:
    return body["contents"][-1]["parts"][0]["text"]


def knows_labels(model: str, body: dict) -> str:
    """The tuned endpoints answer with the label; the base model does not know the labels."""
    if "/endpoints/" in model:
        return LABELS.get(_question(body), "unknown")
    return "I am not sure which team handles this."


@pytest.fixture
def env(tmp_path):
    gemini = FakeGemini(script=JobScript(polls=2), answer=knows_labels).start()
    metadata = FakeMetadata(PROJECT, "tuner@gemini-project.iam.gserviceaccount.com").start()
    train = tmp_path / "train.jsonl"
    evaluation = tmp_path / "eval.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in TRAIN), encoding="utf-8")
    evaluation.write_text("".join(json.dumps(r) + "\n" for r in EVAL), encoding="utf-8")
    try:
        yield {
            "gemini": gemini,
            "metadata": metadata,
            "train": train,
            "eval": evaluation,
            "registry": tmp_path / "registry",
            "runs": tmp_path / "runs",
        }
    finally:
        gemini.stop()
        metadata.stop()


def run_cli(env: dict, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`adaptune run --backend vertex_gemini ...` in a subprocess (its env: ADC on the fake)."""
    variables = {
        **os.environ,
        "GCE_METADATA_HOST": env["metadata"].host,
        "GCE_METADATA_IP": env["metadata"].host,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    variables.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    args = [
        sys.executable,
        "-m",
        "adaptune",
        "run",
        "--backend",
        "vertex_gemini",
        "--train-data",
        str(env["train"]),
        "--eval-data",
        str(env["eval"]),
        "--model-name",
        MODEL,
        "--registry-dir",
        str(env["registry"]),
        "--runs-dir",
        str(env["runs"]),
        "--set",
        f"vertex_gemini.project={PROJECT}",
        "--set",
        f"vertex_gemini.location={LOCATION}",
        "--set",
        f"vertex_gemini.api_endpoint={env['gemini'].url}",
        "--set",
        "vertex_gemini.poll_seconds=0.01",
        "--set",
        "vertex_gemini.epochs=2",
        "--set",
        "vertex_gemini.adapter_size=4",
        "--set",
        "vertex_gemini.concurrency=4",
        *extra,
    ]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=variables, cwd=REPO
    )


def _lineage_json(env: dict, ref: str) -> dict:
    from click.testing import CliRunner

    from adaptune.cli import main

    out = CliRunner().invoke(
        main,
        ["lineage", ref, "--runs-dir", str(env["runs"]), "--registry-dir", str(env["registry"]),
         "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def _runs(env: dict) -> list[dict]:
    store = MetadataStore(env["runs"])
    try:
        return store.runs()
    finally:
        store.close()


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_succeeded_job_passes_the_gate_and_becomes_production(env):
    out = run_cli(env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    gemini = env["gemini"]
    (create,) = gemini.calls("POST", "/tuningJobs")
    body = create.body
    assert body["baseModel"] == "gemini-2.5-flash"
    spec = body["supervisedTuningSpec"]
    assert spec["hyperParameters"] == {
        "epochCount": 2,
        "learningRateMultiplier": 1.0,
        "adapterSize": "ADAPTER_SIZE_FOUR",
    }
    train_uri = spec["trainingDatasetUri"]
    assert "/gemini_data/" in train_uri and train_uri.endswith("/train.jsonl")
    assert spec["validationDatasetUri"].endswith("/validation.jsonl")
    (run,) = _runs(env)
    assert body["labels"]["adaptune-run-id"] == run["run_id"]
    # The uploaded file is Gemini JSONL of the training examples (no eval example in it).
    uploaded = [json.loads(line) for line in Path(train_uri).read_text().splitlines()]
    assert len(uploaded) == len(TRAIN)
    assert uploaded[0]["contents"] == [
        {"role": "user", "parts": [{"text": TRAIN[0]["input_text"]}]},
        {"role": "model", "parts": [{"text": TRAIN[0]["output_text"]}]},
    ]
    # Evaluation: every eval question to the tuned endpoint and to the base model.
    generate = gemini.calls("POST", ":generateContent")
    endpoint = f"{PARENT}/endpoints/7001"
    tuned = [r for r in generate if r.path.endswith(f"{endpoint}:generateContent")]
    base = [r for r in generate if "publishers/google/models/gemini-2.5-flash" in r.path]
    assert len(tuned) == len(base) == len(EVAL) and len(generate) == 2 * len(EVAL)
    assert sorted(_question(r.body) for r in tuned) == sorted(r["input_text"] for r in EVAL)
    assert tuned[0].body["generationConfig"]["temperature"] == 0.0
    assert all(r.headers.get("Authorization") == "Bearer fake-token" for r in generate)
    assert env["metadata"].tokens_issued > 0
    # Gate passed: a vertex_gemini version, production, with the model, endpoint and metrics.
    assert read_aliases(env["registry"], MODEL) == {"production": 1}
    version = resolve_version(env["registry"], MODEL, "production")
    assert verify_version(version) == ""
    meta = version.metadata
    assert meta["kind"] == "vertex_gemini"
    assert meta["tuned_model"]["endpoint"] == endpoint
    tuned_model = f"{PARENT}/models/7001@1"
    assert meta["tuned_model"]["model"] == tuned_model
    assert meta["metrics"]["tuned_exact_match"] == 1.0
    assert meta["metrics"]["base_exact_match"] == 0.0
    assert meta["tuning_job"]["data_stats"]["supervisedTuningDataStats"]["tuningStepCount"]
    assert meta["run_id"] == run["run_id"]
    assert body["labels"]["adaptune-data-sha256"] == meta["data_sha256"][:32]
    assert not (version.path / "adapter_model.safetensors").exists()
    lineage = json.loads((version.path / "lineage.json").read_text())
    assert lineage["kind"] == "vertex_gemini" and lineage["tuned_model"]["endpoint"] == endpoint
    summary = json.loads((env["runs"] / run["run_id"] / "summary.json").read_text())
    statuses = {t["task"]: t["status"] for t in summary["tasks"]}
    assert statuses == dict.fromkeys(
        ["validate-dataset", "tune-gemini", "evaluate", "passes-gate", "register-version"],
        "succeeded",
    )
    assert summary["gemini"]["endpoint"] == endpoint
    assert summary["gemini"]["model"] == tuned_model
    assert f"made {tuned_model} on {endpoint}" in out.stdout  # the printed summary names it
    # Managed tuning makes a new model each time: reproduce refuses it, before anything runs.
    from click.testing import CliRunner

    from adaptune.cli import main

    refused = CliRunner().invoke(main, ["reproduce", run["run_id"], "--runs-dir", str(env["runs"])])
    assert refused.exit_code == 2, refused.output
    (line,) = refused.output.strip().splitlines()
    assert "cannot be reproduced bit for bit" in line and "--backend vertex_gemini" in line
    assert len(_runs(env)) == 1 and len(gemini.calls("POST", "/tuningJobs")) == 1
    assert "is now production" in out.stdout
    # tune-gemini's typed outputs, as kfp.local wrote them and the lineage store keeps them.
    (task_dir,) = (env["runs"] / run["run_id"]).glob("pipeline/*/tune-gemini")
    written = json.loads((task_dir / "executor_output.json").read_text())["artifacts"]
    regional = f"https://{LOCATION}-aiplatform.googleapis.com/v1/"
    (model_artifact,) = written["vertex_model"]["artifacts"]
    assert model_artifact["uri"] == regional + tuned_model
    assert model_artifact["metadata"] == {"resourceName": tuned_model}
    (endpoint_artifact,) = written["vertex_endpoint"]["artifacts"]
    assert endpoint_artifact["uri"] == regional + endpoint
    assert endpoint_artifact["metadata"] == {"resourceName": endpoint}
    store = MetadataStore(env["runs"])
    try:
        (stored,) = store.find_artifacts("vertex_model", run_id=run["run_id"])
        assert stored.uri == regional + tuned_model
        assert store.producer(stored.id)["type"] == "tune-gemini"
        (stored_endpoint,) = store.find_artifacts("vertex_endpoint", run_id=run["run_id"])
        assert stored_endpoint.properties["resourceName"] == endpoint
    finally:
        store.close()
    # The version's evaluation is in the tuned model's Vertex AI Model Registry entry.
    (imported,) = gemini.calls("POST", "/evaluations:import")
    assert imported.path == f"/v1/{tuned_model}/evaluations:import"
    headers = {key.lower(): value for key, value in imported.headers.items()}
    assert headers["authorization"] == "Bearer fake-token"  # ADC, as the tuning job's
    evaluation = imported.body["modelEvaluation"]
    assert evaluation["metricsSchemaUri"] == (
        "gs://google-cloud-aiplatform/schema/modelevaluation/"
        "general_text_generation_metrics_1.0.0.yaml"
    )
    assert evaluation["displayName"] == f"adaptune {MODEL}@v1"
    assert evaluation["metrics"]["exact_match"] == meta["metrics"]["tuned_exact_match"] == 1.0
    assert evaluation["metrics"]["base_exact_match"] == 0.0
    assert evaluation["metadata"]["run_id"] == run["run_id"]
    assert evaluation["metadata"]["registry_version"] == f"{MODEL}@v1"
    assert gemini.evaluations[tuned_model] == [
        {**evaluation, "name": f"{tuned_model}/evaluations/1", "createTime": ANY}
    ]
    # Lineage: the registered version back through the tuned model to the data files.
    chain = _lineage_json(env, f"{MODEL}@v1")
    text = json.dumps(chain)
    assert "tune-gemini" in text and str(env["train"]) in text
    assert endpoint in text

    # A second run compares with production (the first version's endpoint) as well.
    second = run_cli(env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    production = [r for r in gemini.calls("POST", ":generateContent") if endpoint + ":" in r.path]
    assert len(production) == 2 * len(EVAL)  # first run's tuned calls + second's production
    assert read_aliases(env["registry"], MODEL) == {"production": 2, "previous": 1}


def _production_version(env: dict) -> str:
    """Register a Gemini version as production first (as an earlier run would have)."""
    from adaptune.vertex.gemini_steps import register_step

    tuned = env["registry"].parent / "earlier" / "tuned_model"
    tuned.mkdir(parents=True)
    endpoint = f"{PARENT}/endpoints/5000"
    record = {"model": f"{PARENT}/models/5000@1", "endpoint": endpoint, "job_name": "j"}
    (tuned / "tuned_model.json").write_text(json.dumps(record))
    env["gemini"].add_model(record["model"])
    where = {"project": PROJECT, "location": LOCATION, "api_endpoint": env["gemini"].url}
    done = register_step(env["registry"], MODEL, tuned, {"tuned_exact_match": 1.0}, "ab" * 32,
                         "earlier-run", "earlier-run", "passed", 0, where,
                         credentials=Credentials(token="earlier"))  # fmt: skip
    assert done.promoted
    return endpoint


def _summary(env: dict) -> dict:
    (run,) = _runs(env)
    return json.loads((env["runs"] / run["run_id"] / "summary.json").read_text())


@pytest.mark.pipeline
@pytest.mark.slow
@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_EXPIRED"])
def test_a_job_that_fails_or_expires_fails_the_run_at_the_tune_step(env, state):
    _production_version(env)
    index = (env["registry"] / MODEL / "index.json").read_bytes()
    env["gemini"].script = JobScript(polls=1, final=state, error="tuning quota exhausted")
    out = run_cli(env)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    summary = _summary(env)
    assert summary["failed_step"] == "tune-gemini"
    short = state.removeprefix("JOB_STATE_")
    assert f"ended {short}: tuning quota exhausted" in summary["error"]
    assert f"ended {short}" in out.stdout
    statuses = {t["task"]: t["status"] for t in summary["tasks"]}
    assert statuses == {"validate-dataset": "succeeded", "tune-gemini": "failed"}
    # No evaluation, no version, production where it was (the index is byte for byte the same).
    assert not env["gemini"].calls("POST", ":generateContent")
    assert (env["registry"] / MODEL / "index.json").read_bytes() == index
    assert read_aliases(env["registry"], MODEL) == {"production": 1}
    assert summary["registry"] is None
    # One job: the task is not retried into a second (paid) job.
    assert len(env["gemini"].calls("POST", "/tuningJobs")) == 1


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_failed_evaluation_import_fails_the_register_step_and_production_stays(env):
    _production_version(env)
    env["gemini"].fail("POST", "/models/7001@1/evaluations:import", 503, times=10)
    out = run_cli(env)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    summary = _summary(env)
    assert summary["failed_step"] == "register-version"
    error = summary["error"]
    assert f"{MODEL}@v2 is registered but not promoted: importing {MODEL}@v2's evaluation" in error
    assert f"{PARENT}/models/7001@1 failed" in error and "503" in error
    # No alias moved: production is the earlier version; the new one is registered, unpromoted.
    assert read_aliases(env["registry"], MODEL) == {"production": 1}
    assert [v.version for v in list_versions(env["registry"], MODEL)] == [1, 2]
    assert "7001@1" not in str(env["gemini"].evaluations)


@pytest.mark.pipeline
@pytest.mark.slow
def test_429_during_evaluation_is_retried_and_the_run_succeeds(env):
    env["gemini"].fail("POST", "/endpoints/7001:generateContent", 429, times=3)
    out = run_cli(env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tuned = env["gemini"].calls("POST", "/endpoints/7001:generateContent")
    assert len(tuned) == len(EVAL) + 3  # three answered 429 first, then succeeded
    version = resolve_version(env["registry"], MODEL, "production")
    metrics = version.metadata["metrics"]
    assert metrics["tuned_retries"] == 3 and metrics["tuned_failed_examples"] == 0
    assert metrics["tuned_exact_match"] == 1.0


@pytest.mark.pipeline
@pytest.mark.slow
def test_calls_failing_past_the_bound_fail_the_run_at_evaluate(env):
    env["gemini"].fail("POST", "/endpoints/7001:generateContent", 429, times=len(EVAL))
    out = run_cli(
        env,
        "--set",
        "vertex_gemini.max_attempts=1",
        "--set",
        "vertex_gemini.max_failed_fraction=0.1",
    )
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    summary = _summary(env)
    assert summary["failed_step"] == "evaluate"
    assert f"{len(EVAL)} of {len(EVAL)} generateContent calls" in summary["error"]
    assert "max_failed_fraction=0.1" in summary["error"]
    assert summary["registry"] is None and not (env["registry"] / MODEL).exists()


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_tuned_model_that_fails_the_gate_registers_nothing(env):
    endpoint = _production_version(env)

    def tuned_is_worse(model: str, body: dict) -> str:
        return "no idea" if model.endswith("/endpoints/7001") else knows_labels(model, body)

    env["gemini"].answer = tuned_is_worse
    out = run_cli(env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = _summary(env)
    assert summary["gate"]["passed"] is False
    statuses = {t["task"]: t["status"] for t in summary["tasks"]}
    assert statuses["register-version"] == "skipped"
    assert summary["registry"] is None
    assert "no new version" in out.stdout
    # It was compared with production: every eval question went to production's endpoint too.
    production = env["gemini"].calls("POST", f"{endpoint}:generateContent")
    assert len(production) == len(EVAL)
    assert summary["metrics"]["tuned"]["exact_match"] == 0.0
    assert summary["production"]["metrics"]["exact_match"] == 1.0
    assert read_aliases(env["registry"], MODEL) == {"production": 1}
    assert [v.version for v in list_versions(
        env["registry"], MODEL)] == [1]  # fmt: skip


# --- before anything runs: one line, exit 2 ---------------------------------------------------


def _invoke(tmp_path: Path, *args: str):
    from click.testing import CliRunner

    from adaptune.cli import main

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in TRAIN), encoding="utf-8")
    return CliRunner().invoke(
        main,
        ["run", "--backend", "vertex_gemini", "--train-data", str(train),
         "--runs-dir", str(tmp_path / "runs"), "--registry-dir", str(tmp_path / "registry"),
         *args],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the vertex_gemini backend needs a Google Cloud project: vertex_gemini.project"),
        (
            ("--set", f"vertex_gemini.project={PROJECT}"),
            "vertex_gemini.pipeline_root is required for a local run",
        ),
        (
            (
                "--set",
                f"vertex_gemini.project={PROJECT}",
                "--set",
                "vertex_gemini.pipeline_root=gs://b/root",
            ),
            "the vertex_gemini backend tunes on Vertex AI but no Google Cloud credentials",
        ),
        (
            ("--set", f"vertex_gemini.project={PROJECT}", "--set", "vertex_gemini.epoch=3"),
            "unknown vertex_gemini setting(s) ['epoch']",
        ),
        (
            (
                "--set",
                f"vertex_gemini.project={PROJECT}",
                "--set",
                "vertex_gemini.base_model=gemini-0.1-nano",
            ),
            "vertex_gemini.base_model 'gemini-0.1-nano' is not a Gemini model adaptune knows",
        ),
        (("--base-model", "builtin:tiny-gpt2"), "unknown pipeline parameter(s) ['base_model']"),
    ],
)
def test_the_gemini_backend_refuses_bad_settings_before_anything_runs(
    tmp_path, monkeypatch, args, message
):
    monkeypatch.delenv("ADAPTUNE_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud application-default file
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    result = _invoke(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_compiled_adapter_pipeline_with_the_gemini_backend_is_refused(tmp_path):
    from conftest import COMPILED

    result = _invoke(tmp_path, "--compiled", str(COMPILED))
    assert result.exit_code == 2
    assert "is the adapter-tuning pipeline, not the vertex_gemini backend's" in result.output
