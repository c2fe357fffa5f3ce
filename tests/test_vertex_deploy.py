"""Deploying a registry version on Vertex AI, through the real Google clients to the local fakes.

The Vertex AI SDK uploads models, creates endpoints and deploys to them over REST with anonymous
credentials against ``fake_vertex.FakeVertex``; the version's files go to gcp-storage-emulator.
Both listen on 127.0.0.1 and the socket guard stays on.
"""

from __future__ import annotations

import hashlib
import json
import socket
from urllib.parse import unquote

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file
from test_vertex_cli import adc, env  # noqa: F401  (fixtures)
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

from adaptune import __version__
from adaptune.cli import main
from adaptune.errors import UserError
from adaptune.registry import promote, register_version, resolve_version
from adaptune.serving.storage import local_registry
from adaptune.vertex import staging
from adaptune.vertex.deploy_settings import VertexDeploySettings
from adaptune.vertex.deployment import deploy_to_vertex
from components.images import IMAGE
from pipelines.profiles import DEFAULT_PROFILE, PROFILES

MODEL = "support-router"


def _register(registry, run_id: str, data: bytes, scale: float, **metadata):
    adapter = registry.parent / f"adapter-{run_id}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    weights = {"lora_A": np.full((2, 4), scale, dtype=np.float32)}
    save_file(weights, str(adapter / "adapter_model.safetensors"))
    return register_version(
        registry,
        MODEL,
        adapter,
        {
            "base_model": "builtin:tiny-gpt2",
            "run_id": run_id,
            "data_sha256": hashlib.sha256(data).hexdigest(),
            "metrics": {"exact_match": 0.9},
            **metadata,
        },
    )


@pytest.fixture
def versions(tmp_path):
    registry = tmp_path / "registry"
    first = _register(registry, "adaptune-20260105-030000", b"train v1", 0.5)
    second = _register(registry, "adaptune-20260112-030000", b"train v2", 0.25)
    return registry, first, second


def _endpoint_creates(fake):
    return [r for r in fake.calls("POST") if r.path == f"/v1/{PARENT}/endpoints"]


def _deploy(cloud, version, **settings):  # noqa: F811
    return deploy_to_vertex(
        version,
        cloud["settings"],
        VertexDeploySettings(**{"serving_image": IMAGE, **settings}),
        cloud["credentials"],
    )


def test_first_deploy_creates_the_model_and_the_endpoint(cloud, versions):  # noqa: F811
    assert socket._adaptune_guarded  # the guard from conftest is on
    fake = cloud["vertex"]
    _, first, _ = versions
    result = _deploy(cloud, first, endpoint="router", traffic_percentage=30, machine_type="e2-std")

    (upload,) = fake.calls("POST", "/models:upload")
    assert upload.path == f"/v1/{PARENT}/models:upload"
    assert "parentModel" not in upload.body
    model = upload.body["model"]
    data_sha = first.metadata["data_sha256"]
    assert model["displayName"] == MODEL
    assert model["artifactUri"] == result.artifact_uri
    assert result.artifact_uri.startswith(f"gs://{BUCKET}/root/models/{MODEL}/v1/")
    assert model["labels"] == {
        "adaptune-run-id": "adaptune-20260105-030000",
        "adaptune-data-sha256": data_sha[:32],
        "adaptune-version": __version__.replace(".", "_"),
        "adaptune-model": MODEL,
        "adaptune-registry-version": "1",
        "team": "ml",
    }
    assert f"data_sha256={data_sha}" in model["versionDescription"]
    assert model["versionAliases"] == ["default"]
    assert model["encryptionSpec"] == {"kmsKeyName": KMS}
    assert model["containerSpec"] == {
        "imageUri": IMAGE,
        "command": ["adaptune", "serve"],
        "predictRoute": "/predict",
        "healthRoute": "/health",
        "ports": [{"containerPort": 8080}],
    }

    (create,) = _endpoint_creates(fake)
    assert create.body["displayName"] == "router"
    assert create.body["labels"] == {"team": "ml"}
    assert create.body["encryptionSpec"] == {"kmsKeyName": KMS}
    (deploy,) = fake.calls("POST", ":deployModel")
    assert deploy.path == f"/v1/{result.endpoint}:deployModel"
    deployed = deploy.body["deployedModel"]
    assert deployed["model"] == f"{result.model}@1"
    assert deployed["displayName"] == f"{MODEL}-v1"
    assert deployed["dedicatedResources"]["machineSpec"] == {"machineType": "e2-std"}
    assert deployed["dedicatedResources"]["minReplicaCount"] == 1
    # The first model on an empty endpoint takes all traffic, whatever was asked.
    assert deploy.body["trafficSplit"] == {"0": 100}
    assert result.traffic_split == {result.deployed_model_id: 100}
    assert (result.version_id, result.model_created, result.endpoint_created) == ("1", True, True)
    assert result.version_uploaded and not result.already_deployed
    # Upload, endpoint creation and deployment each ran as an operation the client polled.
    assert len(fake.calls("GET", "/operations/")) == 3

    bucket_name, prefix = staging.split_gs_uri(result.artifact_uri)
    bucket = cloud["storage"].bucket(bucket_name)
    for name in ("adapter_config.json", "adapter_model.safetensors", "version.json"):
        blob = bucket.blob(f"{prefix}/{MODEL}/v1/{name}")
        assert blob.download_as_bytes() == (first.path / name).read_bytes()
    # The staged directory is a one-version registry: what `adaptune serve` reads on Vertex.
    served = local_registry(result.artifact_uri)
    assert resolve_version(served, MODEL).metadata == first.metadata


def test_next_version_is_a_version_of_the_same_model_on_the_same_endpoint(
    cloud,  # noqa: F811
    versions,
):
    fake = cloud["vertex"]
    _, first, second = versions
    one = _deploy(cloud, first, endpoint="router")
    two = _deploy(cloud, second, endpoint="router", traffic_percentage=25)

    uploads = fake.calls("POST", "/models:upload")
    assert len(uploads) == 2
    assert uploads[1].body["parentModel"] == one.model
    labels = uploads[1].body["model"]["labels"]
    assert labels["adaptune-run-id"] == "adaptune-20260112-030000"
    assert labels["adaptune-data-sha256"] == second.metadata["data_sha256"][:32]
    assert labels["adaptune-registry-version"] == "2"
    assert (two.model, two.version_id) == (one.model, "2")
    assert not two.model_created and two.version_uploaded
    assert fake.resources[one.model]["versionId"] == "2"  # the new version is the default

    assert len(_endpoint_creates(fake)) == 1  # created once, then reused
    assert two.endpoint == one.endpoint and not two.endpoint_created
    deploy = fake.calls("POST", ":deployModel")[1]
    assert deploy.body["deployedModel"]["model"] == f"{one.model}@2"
    assert deploy.body["trafficSplit"] == {"0": 25, one.deployed_model_id: 75}
    assert two.traffic_split == {one.deployed_model_id: 75, two.deployed_model_id: 25}
    endpoint = fake.resources[one.endpoint]
    assert [(d["id"], d["modelVersionId"]) for d in endpoint["deployedModels"]] == [
        (one.deployed_model_id, "1"),
        (two.deployed_model_id, "2"),
    ]


def test_a_failed_deploy_says_what_exists_and_a_rerun_finishes_it(cloud, versions):  # noqa: F811
    fake = cloud["vertex"]
    _, first, _ = versions
    fake.fail("POST", ":deployModel", 429, "quota exceeded for custom-model-serving CPUs")
    with pytest.raises(UserError) as failure:
        _deploy(cloud, first, endpoint="router")
    message = str(failure.value)
    model = (
        fake.calls("POST", "/models:upload")[0].path.removesuffix(":upload").removeprefix("/v1/")
    )
    assert f"{MODEL}@v1 is uploaded as {model}/" in message and "@1" in message
    assert "projects/test-project/locations/europe-west4/endpoints/" in message
    assert "quota exceeded" in message

    retried = _deploy(cloud, first, endpoint="router")
    assert len(fake.calls("POST", "/models:upload")) == 1  # the uploaded version is reused
    assert len(_endpoint_creates(fake)) == 1
    assert not retried.version_uploaded and not retried.endpoint_created
    assert retried.version_id == "1" and retried.traffic_split == {retried.deployed_model_id: 100}

    again = _deploy(cloud, first, endpoint="router", traffic_percentage=10)
    assert again.already_deployed and again.deployed_model_id == retried.deployed_model_id
    assert len(fake.calls("POST", ":deployModel")) == 2  # the failed one and the retry


def _deploy_cli(*args: str):
    return CliRunner().invoke(main, ["vertex", "deploy", *args])


# What the evaluate step stores with a version (``<model>_<metric>``), and the gate's facts.
PIPELINE_METRICS = {
    "tuned_exact_match": 0.75,
    "tuned_rouge_l": 0.8125,
    "base_exact_match": 0.125,
    "production_exact_match": 0.5,
    "eval_examples": 16,
    "production_version": 1,
}


def _evaluation_imports(fake):
    return [r for r in fake.calls("POST") if unquote(r.path).endswith("/evaluations:import")]


def test_vertex_deploy_imports_the_versions_metrics_into_its_model_registry_entry(
    env,  # noqa: F811
    adc,  # noqa: F811
    versions,
    monkeypatch,
):
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/cli")
    registry, _, _ = versions
    third = _register(
        registry,
        "adaptune-20260119-030000",
        b"train v3",
        0.125,
        metrics=PIPELINE_METRICS,
        gate_reason="tuned 0.75 >= production 0.5",
        evaluated_against=1,
    )
    ref = f"{MODEL}@v{third.version}"
    result = _deploy_cli(ref, "--registry-dir", str(registry), "--endpoint", "router", "--json")
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.output)
    fake = env["vertex"]
    (imported,) = _evaluation_imports(fake)
    # The evaluation belongs to the uploaded model version, not to the model's default one.
    assert unquote(imported.path) == f"/v1/{deployed['model_version']}/evaluations:import"
    assert imported.body == {
        "modelEvaluation": {
            "displayName": f"adaptune {ref}",
            "metricsSchemaUri": "gs://google-cloud-aiplatform/schema/modelevaluation/"
            "general_text_generation_metrics_1.0.0.yaml",
            "metrics": {
                "exact_match": 0.75,
                "rouge_l": 0.8125,
                "base_exact_match": 0.125,
                "production_exact_match": 0.5,
                "eval_examples": 16.0,
            },
            "metadata": {
                "registry_version": ref,
                "run_id": "adaptune-20260119-030000",
                "data_sha256": third.metadata["data_sha256"],
                "base_model": "builtin:tiny-gpt2",
                "gate_reason": "tuned 0.75 >= production 0.5",
                "evaluated_against": 1.0,
            },
        }
    }
    assert deployed["evaluation"].startswith(f"{deployed['model_version']}/evaluations/")
    assert fake.resources[deployed["evaluation"]]["metrics"]["exact_match"] == 0.75

    # Deploying the same version again reuses its upload and imports nothing twice.
    again = _deploy_cli(ref, "--registry-dir", str(registry), "--endpoint", "router", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["evaluation"] == deployed["evaluation"]
    assert len(_evaluation_imports(fake)) == 1


def test_a_failed_evaluation_import_deploys_nothing_and_a_rerun_finishes_it(cloud, versions):  # noqa: F811
    fake = cloud["vertex"]
    _, first, _ = versions
    fake.fail("POST", "/evaluations:import", 503, "the model service is unavailable")
    with pytest.raises(UserError) as failure:
        _deploy(cloud, first, endpoint="router")
    message = str(failure.value)
    assert "importing its evaluation metrics failed" in message and "unavailable" in message
    assert "Nothing was deployed" in message
    assert not fake.calls("POST", ":deployModel") and not _endpoint_creates(fake)

    retried = _deploy(cloud, first, endpoint="router")
    assert len(fake.calls("POST", "/models:upload")) == 1  # the uploaded version is reused
    failed, imported = _evaluation_imports(fake)
    assert imported.body == failed.body  # the same evaluation asked for again
    assert imported.body["modelEvaluation"]["metrics"] == {"exact_match": 0.9}
    evaluations = [name for name in fake.resources if "/evaluations/" in name]
    assert evaluations == [retried.evaluation]  # one evaluation, of the uploaded version
    assert retried.evaluation.startswith(f"{retried.model_version}/evaluations/")
    assert len(fake.calls("POST", ":deployModel")) == 1


def test_a_version_without_metrics_is_deployed_without_an_evaluation(cloud, versions):  # noqa: F811
    registry, _, _ = versions
    bare = _register(registry, "adaptune-20260126-030000", b"train v4", 0.75, metrics={})
    result = _deploy(cloud, bare, endpoint="router")
    assert result.evaluation == "" and not _evaluation_imports(cloud["vertex"])
    assert cloud["vertex"].calls("POST", ":deployModel")


def test_vertex_deploy_command_takes_the_production_version(env, adc, versions, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/cli")
    registry, _, second = versions
    promote(registry, MODEL, "v2")
    result = _deploy_cli(MODEL, "--registry-dir", str(registry), "--endpoint", "router", "--json")
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.output)
    (upload,) = env["vertex"].calls("POST", "/models:upload")
    assert upload.body["model"]["labels"]["adaptune-registry-version"] == str(second.version)
    # the CLI names the serving image: the default profile's unless --serving-image says
    assert upload.body["model"]["containerSpec"]["imageUri"] == PROFILES[DEFAULT_PROFILE].image
    assert upload.body["model"]["artifactUri"] == deployed["artifact_uri"]
    assert deployed["artifact_uri"].startswith(f"gs://{BUCKET}/cli/models/{MODEL}/v2/")
    assert deployed["model_version"] == f"{deployed['model']}@1"

    earlier = _deploy_cli(
        f"{MODEL}@v1",
        "--registry-dir",
        str(registry),
        "--endpoint",
        "router",
        "--traffic-percentage",
        "40",
        "--machine-type",
        "n1-standard-8",
        "--serving-image",
        "europe-docker.pkg.dev/p/r/adaptune:custom",
    )
    assert earlier.exit_code == 0, earlier.output
    container = env["vertex"].calls("POST", "/models:upload")[1].body["model"]["containerSpec"]
    assert container["imageUri"] == "europe-docker.pkg.dev/p/r/adaptune:custom"
    assert f"{MODEL}@v1 → {deployed['model']}@2 (uploaded)" in earlier.output
    evaluation = f"{deployed['model']}@2/evaluations/"
    assert f"evaluation metrics in the Model Registry: {evaluation}" in earlier.output
    deploy = env["vertex"].calls("POST", ":deployModel")[1]
    assert deploy.body["trafficSplit"] == {"0": 40, deployed["deployed_model_id"]: 60}
    machine = deploy.body["deployedModel"]["dedicatedResources"]["machineSpec"]
    assert machine == {"machineType": "n1-standard-8"}


def test_lineage_reads_a_deployed_version_back(env, adc, versions):  # noqa: F811
    fake = env["vertex"]
    _, first, _ = versions
    result = _deploy(env, first, endpoint="router")
    run_id = first.metadata["run_id"]
    model_id = result.model.rsplit("/", 1)[-1]

    local = CliRunner().invoke(main, ["vertex", "lineage", f"{model_id}@1"])
    assert local.exit_code == 0, local.output
    chain = json.loads(local.output)
    assert chain["pipeline_job"] is None  # trained by a local run: no Vertex job to follow
    assert chain["data_sha256"] == first.metadata["data_sha256"]  # the full hash

    job = f"{PARENT}/pipelineJobs/{run_id}"
    fake.resources[job] = {"name": job, "state": "PIPELINE_STATE_SUCCEEDED"}
    on_vertex = CliRunner().invoke(main, ["vertex", "lineage", f"{model_id}@1"])
    assert on_vertex.exit_code == 0, on_vertex.output
    chain = json.loads(on_vertex.output)
    assert chain["model"]["labels"]["adaptune-run-id"] == run_id
    assert chain["pipeline_job"]["name"] == job
    assert chain["data_sha256"] == first.metadata["data_sha256"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--traffic-percentage", "150"],
            "traffic_percentage must be an integer from 0 to 100",
        ),
        (["--traffic-percentage", "-5"], "traffic_percentage must be an integer from 0 to 100"),
        (["--max-replicas", "0"], "max_replicas must be an integer >= 1, got 0"),
        (["--accelerator-type", "NVIDIA_L4"], "accelerator_type and accelerator_count"),
        (["--artifact-prefix", "/tmp/x"], "artifact_prefix must be a gs:// directory"),
    ],
)
def test_invalid_deploy_settings_are_one_line_errors(env, adc, versions, args, message):  # noqa: F811
    registry, _, _ = versions
    result = _deploy_cli(MODEL, "--registry-dir", str(registry), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert env["vertex"].requests == []


def test_missing_project_and_unknown_versions_are_clear_errors(env, adc, versions, monkeypatch):  # noqa: F811
    registry, _, _ = versions
    monkeypatch.delenv("ADAPTUNE_PROJECT")
    no_project = _deploy_cli(MODEL, "--registry-dir", str(registry))
    assert no_project.exit_code == 2
    assert "project is required (--project, ADAPTUNE_PROJECT or config file)" in no_project.output
    assert "Traceback" not in no_project.output

    monkeypatch.setenv("ADAPTUNE_PROJECT", PROJECT)
    missing = _deploy_cli(f"{MODEL}@v7", "--registry-dir", str(registry))
    assert missing.exit_code == 2
    assert f"{MODEL} has no version v7 (versions: [1, 2])" in missing.output
    unknown = _deploy_cli("other-model", "--registry-dir", str(registry))
    assert unknown.exit_code == 2 and "no model 'other-model'" in unknown.output
    unpromoted = _deploy_cli(MODEL, "--registry-dir", str(registry))
    assert unpromoted.exit_code == 2 and "has no 'production' version" in unpromoted.output
    no_root = _deploy_cli(f"{MODEL}@latest", "--registry-dir", str(registry))
    assert no_root.exit_code == 2 and "artifact_prefix is required" in no_root.output
    assert env["vertex"].requests == []


def test_deploy_settings_come_from_a_config_file_under_the_flags(env, adc, versions, tmp_path):  # noqa: F811
    registry, _, _ = versions
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "train_data: data/train.jsonl\n"
        "vertex_deploy:\n"
        "  endpoint: from-file\n"
        "  machine_type: n1-highmem-4\n"
        f"  artifact_prefix: gs://{BUCKET}/staged\n"
        "  max_replicas: 3.0\n"  # a pipeline dict's numbers arrive as floats
    )
    result = _deploy_cli(
        f"{MODEL}@v1",
        "--registry-dir",
        str(registry),
        "--config",
        str(config),
        "--machine-type",
        "n1-standard-2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    (create,) = _endpoint_creates(env["vertex"])
    assert create.body["displayName"] == "from-file"
    (deploy,) = env["vertex"].calls("POST", ":deployModel")
    resources = deploy.body["deployedModel"]["dedicatedResources"]
    assert resources["machineSpec"] == {"machineType": "n1-standard-2"}
    assert resources["maxReplicaCount"] == 3
    assert json.loads(result.output)["artifact_uri"].startswith(f"gs://{BUCKET}/staged/")

    config.write_text("vertex_deploy:\n  traffic: 10\n")
    bad = _deploy_cli(MODEL, "--registry-dir", str(registry), "--config", str(config))
    assert bad.exit_code == 2 and "unknown vertex_deploy setting(s) ['traffic']" in bad.output


def test_deploy_settings_from_a_pipeline_dict():
    settings = VertexDeploySettings.from_dict(
        {"traffic_percentage": 20.0, "accelerator_type": "NVIDIA_L4", "accelerator_count": 1.0}
    )
    assert (settings.traffic_percentage, settings.accelerator_count) == (20, 1)
    assert settings.endpoint_name(MODEL) == MODEL
    assert settings.artifact_root("gs://b/root/") == "gs://b/root/models"
    with pytest.raises(UserError, match="traffic_percentage"):
        VertexDeploySettings.from_dict({"traffic_percentage": 20.5})
    with pytest.raises(UserError, match="traffic_percentage"):
        VertexDeploySettings(traffic_percentage=True)
    with pytest.raises(UserError, match="no quotes"):
        VertexDeploySettings(endpoint='a"b')


@pytest.fixture
def metadata_server(monkeypatch):
    """ADC for task subprocesses: a fake metadata server, as on a Vertex AI worker."""
    from fake_metadata import FakeMetadata

    server = FakeMetadata(PROJECT, SA).start()
    monkeypatch.setenv("GCE_METADATA_HOST", server.host)
    monkeypatch.setenv("GCE_METADATA_IP", server.host)
    yield server
    server.stop()


@pytest.mark.pipeline
def test_the_release_sub_dag_deploys_the_promoted_version_to_vertex(
    cloud,  # noqa: F811
    metadata_server,
    tmp_path,
):
    from conftest import COMPILED, SAMPLE

    from adaptune.runner.params import pipeline_params
    from adaptune.runner.run import run_local

    train = tmp_path / "train.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:64]))
    vertex_deploy = {
        "project": PROJECT,
        "location": LOCATION,
        "api_endpoint": cloud["vertex"].endpoint,
        "pipeline_root": f"gs://{BUCKET}/root",
        "endpoint": "router",
    }
    params = pipeline_params(
        COMPILED,
        None,
        {
            "train_data": str(train),
            "training": {"steps": 2},
            "evaluation": {"report_examples": 2},
            "gate": {"threshold": 0.0, "min_improvement": -1.0},
            "model_name": MODEL,
            "registry_dir": str(tmp_path / "registry"),
            "vertex_deploy": vertex_deploy,
        },
    )
    result = run_local(COMPILED, params, tmp_path / "runs")
    assert result.succeeded, result.error
    statuses = {t["task"]: t["status"] for t in result.summary["tasks"]}
    assert set(statuses.values()) == {"succeeded"}, statuses
    assert "deploy-to-vertex" in statuses
    # Registered unpromoted, deployed, then promoted: production moved only after the deploy.
    assert result.summary["registry"]["promoted"] is True
    from adaptune.registry import read_aliases

    history = json.loads((tmp_path / "registry" / MODEL / "index.json").read_text())["history"]
    assert read_aliases(tmp_path / "registry", MODEL) == {"production": 1}
    assert [h["action"] for h in history][-1] == "release"
    vertex = result.summary["vertex"]
    assert vertex["deployed"] is True and vertex["reason"].startswith("deploy to Vertex AI")
    assert vertex["endpoint"].endswith("/endpoints/" + vertex["endpoint"].rsplit("/", 1)[1])
    (upload,) = cloud["vertex"].calls("POST", "models:upload")
    # The local profile's image serves it: the compile profile passed it to the task.
    assert upload.body["model"]["containerSpec"]["imageUri"] == IMAGE
    assert upload.body["model"]["labels"]["adaptune-run-id"] == result.run_id
    assert cloud["vertex"].calls("POST", ":deployModel")
    assert metadata_server.tokens_issued > 0, "the task found its credentials through ADC"

    # The task's outputs are GCPC's typed artifacts, as kfp.local wrote them.
    fake = cloud["vertex"]
    (model,) = [name for name in fake.model_versions]
    model_version = f"{model}@1"
    assert vertex["model"] == model_version
    (task_dir,) = (tmp_path / "runs" / result.run_id).glob("pipeline/*/deploy-to-vertex")
    written = json.loads((task_dir / "executor_output.json").read_text())["artifacts"]
    regional = f"https://{LOCATION}-aiplatform.googleapis.com/v1/"
    (model_artifact,) = written["vertex_model"]["artifacts"]
    assert model_artifact["uri"] == regional + model_version
    assert model_artifact["metadata"] == {"resourceName": model_version}
    (endpoint_artifact,) = written["vertex_endpoint"]["artifacts"]
    assert endpoint_artifact["uri"] == regional + vertex["endpoint"]
    assert endpoint_artifact["metadata"] == {"resourceName": vertex["endpoint"]}

    # The lineage store links the adapter the run trained to the Vertex model made from it.
    from adaptune.lineage.store import MetadataStore

    store = MetadataStore(tmp_path / "runs")
    try:
        (stored,) = store.find_artifacts("vertex_model", run_id=result.run_id)
        assert (stored.uri, stored.sha256) == (regional + model_version, None)
        producer = store.producer(stored.id)
        assert producer["type"] == "deploy-to-vertex"
        assert store.artifact(producer["inputs"]["trained_adapter"]).type == "adapter"
        (endpoint,) = store.find_artifacts("vertex_endpoint", run_id=result.run_id)
        assert endpoint.properties["resourceName"] == vertex["endpoint"]
    finally:
        store.close()

    # The version's evaluation metrics are in its Vertex AI Model Registry entry.
    metrics = resolve_version(tmp_path / "registry", MODEL, "v1").metadata["metrics"]
    (imported,) = [r for r in fake.calls("POST") if r.path.endswith("/evaluations:import")]
    assert unquote(imported.path) == f"/v1/{model_version}/evaluations:import"
    evaluation = imported.body["modelEvaluation"]
    assert evaluation["metricsSchemaUri"].endswith("/general_text_generation_metrics_1.0.0.yaml")
    assert evaluation["metrics"]["exact_match"] == metrics["tuned_exact_match"]
    assert evaluation["metrics"]["base_exact_match"] == metrics["base_exact_match"]
    assert evaluation["metadata"]["run_id"] == result.run_id
