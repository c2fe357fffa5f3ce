"""Serving adapters with Model Garden's vLLM container, through the commands a user types.

``adaptune vertex deploy --serving vllm``, ``predict --vertex`` and ``compare --vertex`` run the
real Vertex AI SDK against ``fake_vertex.FakeVertex`` (and gcp-storage-emulator for the staged
adapter files), both on 127.0.0.1 with the socket guard on. ``adaptune run`` refuses what vLLM
cannot serve before anything runs.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SAMPLE
from google.cloud.aiplatform_v1.types import AcceleratorType
from hostile import invoke, one_line_error, tree
from safetensors.numpy import save_file
from test_vertex_cli import adc, env  # noqa: F401  (fixtures)
from test_vertex_fakes import (  # noqa: F401  (fixtures)
    BUCKET,
    KMS,
    PARENT,
    cloud,
    fake_vertex,
    gcs_emulator,
)

from adaptune.cli import main
from adaptune.data.formatting import DEFAULT_TEMPLATE, INPUT_PLACEHOLDER
from adaptune.registry import register_version
from adaptune.vertex import staging
from adaptune.vertex.vllm_container import VLLM_IMAGE
from adaptune.vertex.vllm_deployment import read_serving_record

MODEL = "support-router"
BASE = f"gs://{BUCKET}/bases/llama-3.1-8b"
BASE_KEY_LABEL = "adaptune-base-model"
GPU = ["--machine-type", "g2-standard-12", "--accelerator-type", "NVIDIA_L4"]
GPU += ["--accelerator-count", "1"]
LORA = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
LORA |= {"bias": "none", "use_dora": False, "modules_to_save": None}


def _register(registry, run: int, config: dict, base: str = BASE):
    adapter = registry.parent / f"adapter-{run}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    weights = {"lora_A": np.full((2, 4), run, dtype=np.float32)}
    save_file(weights, str(adapter / "adapter_model.safetensors"))
    return register_version(
        registry,
        MODEL,
        adapter,
        {
            "base_model": base,
            "run_id": f"adaptune-2026010{run}-030000",
            "data_sha256": "ab" * 32,
            "metrics": {"tuned_exact_match": 0.9},
        },
    )


@pytest.fixture
def registry(tmp_path, env, adc, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/root")
    return tmp_path / "registry"


def _deploy(ref: str, registry, *args: str):
    return CliRunner().invoke(
        main, ["vertex", "deploy", ref, "--registry-dir", str(registry), "--serving", "vllm", *args]
    )


def test_vllm_deploy_uploads_the_container_and_one_endpoint_serves_every_adapter(env, registry):  # noqa: F811
    assert socket._adaptune_guarded  # the guard from conftest is on
    fake = env["vertex"]
    first = _register(registry, 1, LORA)
    result = _deploy(
        f"{MODEL}@v1", registry, *GPU, "--kms-key", KMS, "--label", "team=ml", "--json"
    )
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.output)

    (upload,) = fake.calls("POST", "/models:upload")
    assert upload.path == f"/v1/{PARENT}/models:upload"
    model = upload.body["model"]
    assert model["containerSpec"] == {
        "imageUri": VLLM_IMAGE,
        "args": [
            "python",
            "-m",
            "vllm.entrypoints.api_server",
            "--host=0.0.0.0",
            "--port=8080",
            f"--model={BASE}",
            "--enable-lora",
            "--max-lora-rank=8",  # the adapter's r=8 is an allowed value
            "--max-loras=4",
            "--max-cpu-loras=8",
            "--disable-log-stats",
        ],
        "env": [
            {"name": "MODEL_ID", "value": BASE},
            {"name": "DEPLOY_SOURCE", "value": "adaptune"},
        ],
        "ports": [{"containerPort": 8080}],
        "predictRoute": "/generate",
        "healthRoute": "/ping",
        "sharedMemorySizeMb": "16384",
        "deploymentTimeout": "7200s",
    }
    assert VLLM_IMAGE.startswith(
        "us-docker.pkg.dev/vertex-ai/vertex-vision-model-garden-dockers/pytorch-vllm-serve:"
    )
    assert "artifactUri" not in model  # the container reads the base model from --model
    assert model["displayName"].startswith("adaptune-vllm-llama-3.1-8b-")
    assert model["labels"]["adaptune-serving"] == "vllm"
    assert model["labels"]["team"] == "ml"
    base_key = model["labels"][BASE_KEY_LABEL]
    assert model["encryptionSpec"] == {"kmsKeyName": KMS}

    (create,) = [r for r in fake.calls("POST") if r.path == f"/v1/{PARENT}/endpoints"]
    assert create.body["displayName"] == model["displayName"]  # one endpoint per base model
    assert create.body["labels"] == {
        "team": "ml",
        "adaptune-serving": "vllm",
        BASE_KEY_LABEL: base_key,
    }
    (deploy,) = fake.calls("POST", ":deployModel")
    resources = deploy.body["deployedModel"]["dedicatedResources"]
    machine = resources["machineSpec"]
    assert (machine["machineType"], machine["acceleratorCount"]) == ("g2-standard-12", 1)
    # REST sends the enum's number: NVIDIA_L4 is 11 in the API's AcceleratorType.
    assert AcceleratorType(machine["acceleratorType"]).name == "NVIDIA_L4"
    assert (resources["minReplicaCount"], resources["maxReplicaCount"]) == (1, 1)
    assert deploy.body["trafficSplit"] == {"0": 100}

    # The adapter's files are staged where each request will name them.
    adapter_uri = deployed["adapter_uri"]
    assert adapter_uri == f"{deployed['artifact_uri']}/{MODEL}/v1"
    assert deployed["serving"] == "vllm"
    bucket_name, prefix = staging.split_gs_uri(adapter_uri)
    blob = env["storage"].bucket(bucket_name).blob(f"{prefix}/adapter_config.json")
    assert json.loads(blob.download_as_bytes()) == LORA
    record = read_serving_record(registry, MODEL, 1)
    assert (record.endpoint, record.adapter_uri) == (deployed["endpoint"], adapter_uri)
    assert first.version == 1

    # A second adapter of the same rank: no new upload, no new deployment, a new adapter path.
    _register(registry, 2, LORA)
    second = _deploy(f"{MODEL}@v2", registry, *GPU)
    assert second.exit_code == 0, second.output
    assert "already deployed as" in second.output and "dynamic-lora" in second.output
    assert len(fake.calls("POST", "/models:upload")) == 1
    assert len(fake.calls("POST", ":deployModel")) == 1
    two = read_serving_record(registry, MODEL, 2)
    assert two.endpoint == record.endpoint and two.adapter_uri != adapter_uri

    # A rank-20 adapter needs --max-lora-rank=32: a new version of the same model, deployed
    # on the same endpoint (the default traffic share moves to it).
    _register(registry, 3, {**LORA, "r": 20})
    third = _deploy(f"{MODEL}@v3", registry, *GPU, "--json")
    assert third.exit_code == 0, third.output
    upload = fake.calls("POST", "/models:upload")[1]
    assert upload.body["parentModel"] == deployed["model"]
    assert "--max-lora-rank=32" in upload.body["model"]["containerSpec"]["args"]
    deploy = fake.calls("POST", ":deployModel")[1]
    assert deploy.path == f"/v1/{record.endpoint}:deployModel"
    assert deploy.body["deployedModel"]["model"] == f"{deployed['model']}@2"
    assert json.loads(third.output)["endpoint"] == record.endpoint
    # The vLLM model version is the base model's server, shared by its adapters: no adapter's
    # evaluation is imported into it.
    assert not [r for r in fake.requests if "/evaluations" in r.path]
    assert json.loads(third.output)["evaluation"] == ""


def test_predict_and_compare_name_the_adapter_in_each_request(env, registry):  # noqa: F811
    fake = env["vertex"]
    _register(registry, 1, LORA)
    assert _deploy(f"{MODEL}@v1", registry, *GPU).exit_code == 0
    record = read_serving_record(registry, MODEL, 1)

    args = ["--registry-dir", str(registry), "--vertex", "--max-new-tokens", "20"]
    result = CliRunner().invoke(main, ["predict", f"{MODEL}@v1", "reset my password", *args])
    assert result.exit_code == 0, result.output
    (call,) = fake.calls("POST", ":predict")
    assert call.path == f"/v1/{record.endpoint}:predict"
    prompt = DEFAULT_TEMPLATE.replace(INPUT_PLACEHOLDER, "reset my password")
    assert call.body == {
        "instances": [
            {
                "prompt": prompt,  # rendered as in tuning: /generate applies no template
                "max_tokens": 20,
                "temperature": 0.0,
                "top_p": 1.0,
                "top_k": -1,
                "raw_response": True,
                "dynamic-lora": record.adapter_uri,
            }
        ]
    }
    assert f"[{record.adapter_uri}] {prompt}" in result.output

    compared = CliRunner().invoke(
        main, ["compare", f"{MODEL}@v1", "--prompt", "hi", "--prompt", "bye", *args]
    )
    assert compared.exit_code == 0, compared.output
    base, tuned = fake.calls("POST", ":predict")[1:]
    assert [i["prompt"] for i in base.body["instances"]] == [
        DEFAULT_TEMPLATE.replace(INPUT_PLACEHOLDER, text) for text in ("hi", "bye")
    ]
    assert all("dynamic-lora" not in i for i in base.body["instances"])  # the base model
    assert [i["dynamic-lora"] for i in tuned.body["instances"]] == [record.adapter_uri] * 2
    assert "[base]" in compared.output and "hi" in compared.output

    never = CliRunner().invoke(main, ["predict", f"{MODEL}", "hi", *args])
    line = one_line_error(never)
    assert "has no 'production' version" in line, line
    _register(registry, 2, LORA)
    undeployed = one_line_error(CliRunner().invoke(main, ["predict", f"{MODEL}@v2", "hi", *args]))
    assert f"{MODEL}@v2 is not served by vLLM on Vertex AI" in undeployed
    assert len(fake.calls("POST", ":predict")) == 3


@pytest.mark.parametrize(
    ("config", "base", "message"),
    [
        ({**LORA, "use_dora": True}, BASE, "it is DoRA (use_dora)"),
        ({**LORA, "r": 600}, BASE, "r=600 is above 512"),
        ({**LORA, "modules_to_save": ["lm_head"]}, BASE, "modules_to_save ['lm_head']"),
        ({"peft_type": "IA3", "target_modules": ["k_proj"]}, BASE, "LoRA adapters only"),
        (LORA, "builtin:tiny-gpt2", "needs base_model on Cloud Storage"),
    ],
)
def test_vertex_deploy_refuses_what_vllm_cannot_serve_before_any_upload(
    env,  # noqa: F811
    registry,
    config,
    base,
    message,
):
    _register(registry, 1, config, base)
    staged = {b.name for b in env["storage"].list_blobs(BUCKET)}  # the emulator outlives a test
    line = one_line_error(_deploy(f"{MODEL}@v1", registry, *GPU))
    assert f"{MODEL}@v1: " in line, line
    assert message in line, line
    assert env["vertex"].requests == []  # nothing asked of Vertex AI, nothing staged
    assert {b.name for b in env["storage"].list_blobs(BUCKET)} == staged


def test_vertex_deploy_refuses_vllm_settings_it_cannot_serve(env, registry):  # noqa: F811
    _register(registry, 1, LORA)
    no_gpu = one_line_error(_deploy(f"{MODEL}@v1", registry))
    assert "vertex_deploy.serving vllm needs a GPU" in no_gpu
    unknown = one_line_error(
        CliRunner().invoke(main, ["vertex", "deploy", MODEL, "--serving", "tgi"])
    )
    assert "vertex_deploy.serving must be one of ['adaptune', 'vllm'], got 'tgi'" in unknown
    rank = one_line_error(_deploy(f"{MODEL}@v1", registry, *GPU, "--max-lora-rank", "24"))
    assert "vertex_deploy.max_lora_rank must be one of [0, 1, 8, 16, 32, 64" in rank
    small = one_line_error(_deploy(f"{MODEL}@v1", registry, *GPU, "--max-lora-rank", "1"))
    assert "r=8 is above vertex_deploy.max_lora_rank=1" in small
    loras = one_line_error(_deploy(f"{MODEL}@v1", registry, *GPU, "--max-loras", "0"))
    assert "vertex_deploy.max_loras must be an integer from 1 to 64, got 0" in loras
    assert env["vertex"].requests == []


def test_an_endpoint_serving_another_base_model_is_refused(env, registry):  # noqa: F811
    fake = env["vertex"]
    _register(registry, 1, LORA)
    other = f"gs://{BUCKET}/bases/gemma-3"
    _register(registry, 2, LORA, other)
    assert _deploy(f"{MODEL}@v1", registry, *GPU, "--endpoint", "shared").exit_code == 0
    line = one_line_error(_deploy(f"{MODEL}@v2", registry, *GPU, "--endpoint", "shared"))
    assert f"not {other}" in line and "one endpoint serves one base model" in line, line
    assert len(fake.calls("POST", ":deployModel")) == 1  # nothing deployed for the other base


VLLM_DEPLOY = {
    "project": "p",
    "pipeline_root": "gs://b/root",
    "serving": "vllm",
    "accelerator_type": "NVIDIA_L4",
    "accelerator_count": 1,
}


@pytest.mark.parametrize(
    ("adapter", "base", "message"),
    [
        ({"method": "lora", "use_dora": True}, BASE, "cannot serve DoRA"),
        ({"method": "lora", "r": 1024}, BASE, "r=1024 is above 512"),
        ({"method": "ia3"}, BASE, "LoRA adapters only, got adapter.method 'ia3'"),
        ({"method": "lora"}, "builtin:tiny-gpt2", "needs base_model on Cloud Storage"),
    ],
)
def test_adaptune_run_refuses_vllm_serving_before_anything_runs(
    tmp_path,
    monkeypatch,
    adc,  # noqa: F811
    adapter,
    base,
    message,
):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    args = ["run", "--train-data", SAMPLE / "train.jsonl", "--base-model", base]
    args += ["--adapter", json.dumps(adapter), "--runs-dir", tmp_path / "runs"]
    args += ["--set", f"vertex_deploy={json.dumps(VLLM_DEPLOY)}"]
    line = one_line_error(invoke(*args))
    assert message in line, line
    assert tree(tmp_path) == before


def test_adaptune_run_refuses_an_unknown_serving_by_name(tmp_path, monkeypatch, adc):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    args = ["run", "--train-data", SAMPLE / "train.jsonl", "--runs-dir", tmp_path / "runs"]
    args += ["--set", f"vertex_deploy={json.dumps({**VLLM_DEPLOY, 'serving': 'tgi'})}"]
    line = one_line_error(invoke(*args))
    assert "vertex_deploy.serving must be one of ['adaptune', 'vllm'], got 'tgi'" in line, line
    no_gpu = {k: v for k, v in VLLM_DEPLOY.items() if not k.startswith("accelerator")}
    args[-1] = f"vertex_deploy={json.dumps(no_gpu)}"
    assert "vertex_deploy.serving vllm needs a GPU" in one_line_error(invoke(*args))
    assert not (tmp_path / "runs").exists()


def test_the_release_serves_each_version_from_the_base_models_endpoint_then_promotes(
    cloud,  # noqa: F811
    tmp_path,
):
    """The pipeline's deploy-to-vertex step (``release_registered_version``) with vllm."""
    from adaptune.registry import read_aliases
    from adaptune.vertex.deployment import release_registered_version
    from components.images import IMAGE

    fake = cloud["vertex"]
    registry = tmp_path / "registry"
    _register(registry, 1, LORA)
    _register(registry, 2, LORA)
    vertex_deploy = {
        "project": cloud["settings"].project,
        "location": cloud["settings"].location,
        "api_endpoint": fake.endpoint,
        "pipeline_root": f"gs://{BUCKET}/root",
        "serving": "vllm",
        "machine_type": "g2-standard-12",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 1.0,  # a pipeline dict's numbers arrive as floats
        "max_loras": 8.0,
    }
    first = release_registered_version(registry, MODEL, 1, vertex_deploy, IMAGE, 0)
    assert first.promoted and read_aliases(registry, MODEL)["production"] == 1
    assert first.deployment.serving == "vllm" and not first.deployment.already_deployed
    (upload,) = fake.calls("POST", "/models:upload")
    args = upload.body["model"]["containerSpec"]["args"]
    assert "--max-loras=8" in args and "--max-cpu-loras=8" in args
    assert upload.body["model"]["containerSpec"]["imageUri"] == VLLM_IMAGE  # not IMAGE

    second = release_registered_version(registry, MODEL, 2, vertex_deploy, IMAGE, 1)
    assert second.promoted and read_aliases(registry, MODEL)["production"] == 2
    assert second.deployment.already_deployed  # the same deployment serves v2's adapter
    assert second.deployment.endpoint == first.deployment.endpoint
    assert len(fake.calls("POST", ":deployModel")) == 1
    assert not (registry / MODEL / "pending-release.json").exists()
    record = read_serving_record(registry, MODEL, 2)
    assert record.adapter_uri == second.deployment.adapter_uri != first.deployment.adapter_uri
