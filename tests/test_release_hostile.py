# ruff: noqa: F811  (the Vertex fixtures are imported by name)
"""A failed release publishes nothing: kill -9 at each instant, Vertex AI failures, no credentials.

The release writes in this order: the version's files, its ``lineage.json`` and ``version.json``
in a staging directory; the rename to ``vN``; the index commit (aliases with it when there is no
Vertex deploy); with a Vertex deploy, the deploy, then the promotion (a compare-and-set), and the
deploy's undo when that promotion is refused. A subprocess runs the release with
``ADAPTUNE_KILL_AT`` naming one instant and dies there by SIGKILL; then every alias is where it
was or on a version whose files verify, the version's lineage is readable through ``adaptune
lineage``, ``models list`` works, the next registration gets a fresh number and removes nothing
complete, and rerunning the release leaves Vertex AI and the registry agreeing. Vertex failures
are injected into the fake Vertex server (tests/fake_vertex.py): the task fails naming
deploy-to-vertex, local aliases and the endpoint's traffic are as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COMPILED, REPO, SAMPLE
from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from hostile import IGNORED_NAMES, invoke, one_line_error, tree
from kfp.dsl import Model
from test_vertex_cli import adc, env  # noqa: F401  (fixtures)
from test_vertex_fakes import (  # noqa: F401  (fixtures)
    BUCKET,
    LOCATION,
    PROJECT,
    SA,
    cloud,
    fake_vertex,
    gcs_emulator,
)

from adaptune.registry import (
    read_aliases,
    register_and_promote,
    register_version,
    resolve_version,
    verify_version,
)
from adaptune.registry.index import is_complete_version
from adaptune.vertex.deploy_settings import VertexDeploySettings
from adaptune.vertex.deployment import deploy_to_vertex
from components.deploy_to_vertex import deploy_to_vertex as deploy_component
from components.images import IMAGE

pytestmark = pytest.mark.hostile

MODEL = "router"
RUN_ID = "adaptune-20260201-030000-release"
METADATA = {
    "base_model": "builtin:tiny-gpt2",
    "data_sha256": "d" * 64,
    "prompt_template": "{input_text}",
    "prompt_style": {"format": "template"},
    "metrics": {"tuned_exact_match": 0.9},
    "gate_reason": "tuned 0.9 >= threshold",
}

RELEASE_SCRIPT = r"""
import json, sys
from pathlib import Path
from adaptune.registry import promote, register_and_promote
from adaptune.vertex.deployment import release_registered_version

args = json.loads(sys.argv[1])
registry, vertex_deploy = Path(args["registry"]), args["vertex_deploy"]
against = args.get("evaluated_against", 1)
metadata = {**args["metadata"], "run_id": args["run_id"], "evaluated_against": against}
if not args.get("skip_register"):
    done = register_and_promote(
        registry, "router", Path(args["adapter"]), metadata, evaluated_against=against,
        deploy_first=bool(vertex_deploy),
    )
    version = done.version.version
else:
    version = args["version"]
if vertex_deploy:
    if args.get("race"):
        promote(registry, "router", args["race"])  # another run moved production meanwhile
    release = release_registered_version(
        registry, "router", version, vertex_deploy, "img", against
    )
    print(json.dumps({"promoted": release.promoted, "note": release.note}))
"""


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def metadata_server(monkeypatch):
    """ADC for the release subprocess: a fake metadata server, as on a Vertex AI worker."""
    from fake_metadata import FakeMetadata

    server = FakeMetadata(PROJECT, SA).start()
    monkeypatch.setenv("GCE_METADATA_HOST", server.host)
    monkeypatch.setenv("GCE_METADATA_IP", server.host)
    yield server
    server.stop()


def _write_adapter(directory: Path, seed: bytes) -> Path:
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (directory / "adapter_model.safetensors").write_bytes(seed * 1024)
    return directory


@pytest.fixture
def world(tmp_path):
    """A registry: v1 production (run a), v2 registered unpromoted (run b); a new run's adapter.

    The new run's adapter lies in ``runs/<RUN_ID>/...`` beside its ``params.yaml``, as kfp.local
    lays a local run out.
    """
    reg = tmp_path / "registry"
    outside = tmp_path / "outside"
    old = _write_adapter(outside / "old", b"a")
    register_version(reg, MODEL, old, {**METADATA, "run_id": "run-a"}, promote=True)
    other = _write_adapter(outside / "other", b"b")
    register_version(reg, MODEL, other, {**METADATA, "run_id": "run-b"})
    run_dir = tmp_path / "runs" / RUN_ID
    adapter = _write_adapter(run_dir / "pipeline" / "adapter-tuning-1" / "tune-adapter" / "a", b"c")
    (run_dir / "params.yaml").write_text("train_data: /data/train.jsonl\nseed: 7\n")
    return {"registry": reg, "adapter": adapter, "outside": outside, "runs": tmp_path / "runs"}


def _vertex_deploy(fake) -> dict:
    return {
        "project": PROJECT,
        "location": LOCATION,
        "api_endpoint": fake.endpoint,
        "pipeline_root": f"gs://{BUCKET}/root",
        "endpoint": "router",
        "traffic_percentage": 50,
    }


@pytest.fixture
def served(cloud, world):
    """v1 (production) already serves on the Vertex endpoint with all the traffic."""
    first = resolve_version(world["registry"], MODEL, "v1")
    deployment = deploy_to_vertex(
        first,
        cloud["settings"],
        VertexDeploySettings(serving_image=IMAGE, endpoint="router"),
        cloud["credentials"],
    )
    return {**world, "deployment": deployment, "vertex": cloud["vertex"]}


def _endpoint_state(fake, endpoint: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
    resource = fake.resources[endpoint]
    models = [(d["id"], d["displayName"]) for d in resource.get("deployedModels", [])]
    split = {k: int(v) for k, v in (resource.get("trafficSplit") or {}).items()}
    return models, split


def _complete_versions(registry: Path) -> dict[str, dict[str, str]]:
    model = registry / MODEL
    return {  # the pending marker aside: the next writer removes it from a committed version
        d.name: tree(d, IGNORED_NAMES | {".pending"})
        for d in sorted(model.iterdir())
        if d.name.startswith("v") and is_complete_version(d)
    }


def _release(
    world, kill_at: str | None, vertex_deploy: dict, **extra
) -> subprocess.CompletedProcess:
    args = {
        "registry": str(world["registry"]),
        "adapter": str(world["adapter"]),
        "run_id": RUN_ID,
        "metadata": METADATA,
        "vertex_deploy": vertex_deploy,
        **extra,
    }
    environment = dict(os.environ)
    environment.pop("ADAPTUNE_KILL_AT", None)
    if kill_at:
        environment["ADAPTUNE_KILL_AT"] = kill_at
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO), environment.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", RELEASE_SCRIPT, json.dumps(args)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _check_after_crash(world, expected_production: int, before: dict[str, dict[str, str]]):
    """What every kill must leave: readable registry, verified aliases, lineage, fresh numbers."""
    registry = world["registry"]
    listed = invoke("models", "list", "--registry-dir", registry)
    assert listed.exit_code == 0 and "Traceback" not in listed.output, listed.output
    aliases = read_aliases(registry, MODEL)
    assert aliases["production"] == expected_production, aliases
    for number in set(aliases.values()):
        assert verify_version(resolve_version(registry, MODEL, f"v{number}")) == ""
    complete = _complete_versions(registry)
    for name, listing in before.items():  # nothing complete was removed or changed
        assert complete[name] == listing
    numbers = {int(n[1:]) for n in complete}
    nxt = register_version(
        registry, MODEL, _write_adapter(world["outside"] / "next", b"n"), {"run_id": "run-next"}
    )
    assert nxt.version > max(numbers)  # a fresh number, never one a complete version holds
    after = _complete_versions(registry)
    for name, listing in complete.items():
        assert after[name] == listing
    for name in complete:  # listed now (the next writer recovered any left unlisted)
        shown = invoke(
            "lineage",
            f"{MODEL}@{name}",
            "--registry-dir",
            registry,
            "--runs-dir",
            world["runs"],
            "--json",
        )
        assert shown.exit_code == 0 and "Traceback" not in shown.output, shown.output
        chain = json.loads(shown.output)
        if name not in before:  # the killed run's version: its own record answers
            assert chain["lineage"]["run_id"] == RUN_ID
            assert chain["lineage"]["data_sha256"] == METADATA["data_sha256"]
            assert chain["params"] == {"train_data": "/data/train.jsonl", "seed": 7}
            assert "task records are missing" in chain["note"]
    return complete


# -- kill -9 at each instant ------------------------------------------------------------------

REGISTER_INSTANTS = [
    # (instant, whether the new version v3 exists afterwards)
    ("register:before-lineage", False),
    ("register:after-lineage", False),
    ("register:after-version-file", False),
    ("register:after-rename", True),
    ("register:after-commit", True),
]


@pytest.mark.parametrize(("instant", "exists"), REGISTER_INSTANTS)
def test_a_kill_during_a_local_release_leaves_aliases_old_or_on_a_verified_version(
    world, instant, exists
):
    before = _complete_versions(world["registry"])
    outside = tree(world["outside"])
    killed = _release(world, instant, {})
    assert killed.returncode == -9, killed.stderr  # it died at the instant, as kill -9
    # Without Vertex the registration and the alias move are one commit.
    production = 3 if instant == "register:after-commit" else 1
    complete = _check_after_crash(world, production, before)
    assert ("v3" in complete) is exists
    if exists:
        assert (world["registry"] / MODEL / "v3" / "lineage.json").is_file()
    assert {k: v for k, v in tree(world["outside"]).items() if not k.startswith("next")} == outside


VERTEX_INSTANTS = [
    # (instant, production afterwards, whether Vertex serves v3 until the release is rerun)
    *[(instant, 1, False) for instant, _ in REGISTER_INSTANTS],
    ("release:after-deploy", 1, True),
    ("release:before-promote", 1, True),
    ("release:after-promote", 3, True),
]


@pytest.mark.slow
@pytest.mark.parametrize(("instant", "production", "deployed"), VERTEX_INSTANTS)
def test_a_kill_during_a_vertex_release_never_moves_production_before_the_deploy(
    served, metadata_server, instant, production, deployed
):
    fake, endpoint = served["vertex"], served["deployment"].endpoint
    vertex_deploy = _vertex_deploy(fake)
    initial = _endpoint_state(fake, endpoint)
    before = _complete_versions(served["registry"])
    killed = _release(served, instant, vertex_deploy)
    assert killed.returncode == -9, killed.stderr
    _check_after_crash(served, production, before)
    names = [name for _, name in _endpoint_state(fake, endpoint)[0]]
    assert (f"{MODEL}-v3" in names) is deployed
    if not deployed:
        assert _endpoint_state(fake, endpoint) == initial  # nothing reached Vertex AI
    # Rerunning the release (what a resumed run does) makes Vertex and the registry agree.
    version = 3 if "v3" in _complete_versions(served["registry"]) else None
    if version is None:
        return  # the version never became visible: nothing to release, nothing was deployed
    again = _release(served, None, vertex_deploy, skip_register=True, version=version)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["promoted"] is True
    assert read_aliases(served["registry"], MODEL)["production"] == 3
    models, split = _endpoint_state(fake, endpoint)
    assert [name for _, name in models].count(f"{MODEL}-v3") == 1
    new_id = next(i for i, name in models if name == f"{MODEL}-v3")
    assert split[new_id] == 50 and sum(split.values()) == 100


@pytest.mark.slow
@pytest.mark.parametrize("instant", ["release:before-undo", "release:after-undo", None])
def test_a_release_whose_promotion_is_refused_undoes_its_deploy_even_across_a_kill(
    served, metadata_server, instant
):
    fake, endpoint = served["vertex"], served["deployment"].endpoint
    vertex_deploy = _vertex_deploy(fake)
    initial = _endpoint_state(fake, endpoint)
    before = _complete_versions(served["registry"])
    # Another run promotes v2 while this one deploys v3: the gate's comparison is stale.
    done = _release(served, instant, vertex_deploy, race="v2")
    assert done.returncode == (-9 if instant else 0), done.stderr
    _check_after_crash(served, 2, before)
    if instant != "release:before-undo":
        assert _endpoint_state(fake, endpoint) == initial
    if instant is None:
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        assert outcome["promoted"] is False
        assert "production moved from v1 to v2" in outcome["note"]
        assert "deployment was undone" in outcome["note"]
        return
    again = _release(served, None, vertex_deploy, skip_register=True, version=3)
    assert again.returncode == 0, again.stderr
    assert read_aliases(served["registry"], MODEL)["production"] == 2
    assert _endpoint_state(fake, endpoint)[1] == initial[1]  # the traffic split as before
    assert f"{MODEL}-v3" not in [name for _, name in _endpoint_state(fake, endpoint)[0]]


# -- injected Vertex AI failures --------------------------------------------------------------


def _register_unpromoted(world) -> int:
    done = register_and_promote(
        world["registry"],
        MODEL,
        world["adapter"],
        {**METADATA, "run_id": RUN_ID},
        evaluated_against=1,
        deploy_first=True,
    )
    assert done.deploy_first and not done.promoted
    return done.version.version


def _deploy_task(served, version: int):
    """Run the deploy component's function as its task does; its outputs and artifacts."""
    model = VertexModel(name="vertex_model", uri=str(served["outside"] / "m"))
    endpoint = VertexEndpoint(name="vertex_endpoint", uri=str(served["outside"] / "e"))
    outputs = deploy_component.python_func(
        trained_adapter=Model(name="trained_adapter", uri=str(served["adapter"])),
        model_name=MODEL,
        registry_dir=str(served["registry"]),
        version=version,
        vertex_deploy=_vertex_deploy(served["vertex"]),
        serving_image=IMAGE,
        production_version=1,
        vertex_model=model,
        vertex_endpoint=endpoint,
    )
    return outputs, model, endpoint


def _run_deploy_task(served, version: int, capsys):
    with pytest.raises(SystemExit) as exit_:
        _deploy_task(served, version)
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "Traceback" not in err, err
    failed = [line for line in err.splitlines() if line.startswith("adaptune: deploy_to_vertex")]
    assert len(failed) == 1, err
    return failed[0]


def _failures(served):
    deployment = served["deployment"]
    return {
        "upload 500": [("POST", "models:upload", 500)],
        "upload 403": [("POST", "models:upload", 403)],
        "upload 429": [("POST", "models:upload", 429)],
        "upload answer lost": [("GET", f"{deployment.model}/operations/", 500)],
        "model lookup 500": [("GET", "/models", 500)],
        "model lookup 403": [("GET", "/models", 403)],
        "endpoint lookup 500": [("GET", "/endpoints", 500)],
        "endpoint lookup 403": [("GET", "/endpoints", 403)],
        "deploy 500": [("POST", ":deployModel", 500)],
        "deploy 403": [("POST", ":deployModel", 403)],
        "deploy quota 429": [("POST", ":deployModel", 429)],
        "deploy timeout 504": [("POST", ":deployModel", 504)],
        "endpoint missing 404": [("POST", ":deployModel", 404)],
        "traffic split refused 400": [("POST", ":deployModel", 400)],
        # Vertex applied the deploy (traffic moved) but its answer never came: undone.
        "deploy answer lost 500": [("GET", f"{deployment.endpoint}/operations/", 500)],
        "deploy answer lost 403": [("GET", f"{deployment.endpoint}/operations/", 403)],
    }


FAILURES = [
    "upload 500",
    "upload 403",
    "upload 429",
    "upload answer lost",
    "model lookup 500",
    "model lookup 403",
    "endpoint lookup 500",
    "endpoint lookup 403",
    "deploy 500",
    "deploy 403",
    "deploy quota 429",
    "deploy timeout 504",
    "endpoint missing 404",
    "traffic split refused 400",
    "deploy answer lost 500",
    "deploy answer lost 403",
]


@pytest.mark.parametrize("failure", FAILURES)
def test_a_vertex_failure_fails_the_deploy_task_and_publishes_nothing(
    served,
    adc,
    capsys,
    failure,
):
    fake, endpoint = served["vertex"], served["deployment"].endpoint
    version = _register_unpromoted(served)
    registry_before = tree(served["registry"])
    initial = _endpoint_state(fake, endpoint)
    for method, suffix, code in _failures(served)[failure]:
        fake.fail(method, suffix, code)
    line = _run_deploy_task(served, version, capsys)
    assert f"{MODEL}@v{version}" in line
    assert not fake.failures, "the injected failure was not reached"
    assert read_aliases(served["registry"], MODEL) == {"production": 1}
    assert tree(served["registry"]) == registry_before  # nothing local moved
    assert _endpoint_state(fake, endpoint) == initial  # the traffic split as before
    if failure.startswith("deploy answer lost"):
        assert "undeployed again" in line


def test_without_credentials_the_deploy_task_fails_before_any_call(served, capsys, monkeypatch):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(*args, **kwargs):
        raise DefaultCredentialsError("Your default credentials were not found.")

    from google.cloud.aiplatform import initializer

    monkeypatch.setattr(google.auth, "default", no_credentials)
    # A fresh task process has no credentials cached: forget those the fixtures configured.
    monkeypatch.setattr(initializer.global_config, "_credentials", None)
    fake = served["vertex"]
    version = _register_unpromoted(served)
    registry_before = tree(served["registry"])
    requests_before = len(fake.requests)
    line = _run_deploy_task(served, version, capsys)
    assert "credentials were not found" in line
    assert len(fake.requests) == requests_before
    assert tree(served["registry"]) == registry_before


def test_version_files_changed_before_the_deploy_are_refused_before_vertex(
    served,
    adc,
    capsys,
):
    fake = served["vertex"]
    version = _register_unpromoted(served)
    weights = served["registry"] / MODEL / f"v{version}" / "adapter_model.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(b"garbage")
    requests_before = len(fake.requests)
    line = _run_deploy_task(served, version, capsys)
    assert "changed since registration" in line
    assert len(fake.requests) == requests_before
    assert read_aliases(served["registry"], MODEL) == {"production": 1}


def _after_deploy(monkeypatch, then):
    """Run ``then()`` right after the Vertex deploy succeeded, before the promotion."""
    from adaptune.vertex import deployment

    original = deployment.deploy_to_vertex

    def deploy_then(*args, **kwargs):
        result = original(*args, **kwargs)
        then()
        return result

    monkeypatch.setattr(deployment, "deploy_to_vertex", deploy_then)


def test_a_promotion_that_fails_after_the_deploy_undoes_it(
    served,
    adc,
    capsys,
    monkeypatch,
):
    fake, endpoint = served["vertex"], served["deployment"].endpoint
    version = _register_unpromoted(served)
    initial = _endpoint_state(fake, endpoint)
    index = served["registry"] / MODEL / "index.json"
    _after_deploy(monkeypatch, lambda: index.write_text("{not json"))
    line = _run_deploy_task(served, version, capsys)
    assert "is not a registry index" in line and "deployment was undone" in line
    assert _endpoint_state(fake, endpoint) == initial
    assert index.read_text() == "{not json"  # left for the user to see: nothing rewrote it


def test_a_refused_promotion_whose_undo_fails_says_what_still_serves(
    served,
    adc,
    capsys,
    monkeypatch,
):
    from adaptune.registry import promote

    fake = served["vertex"]
    version = _register_unpromoted(served)

    def race_and_break_undo():
        promote(served["registry"], MODEL, "v2")
        fake.fail("POST", ":undeployModel", 500)

    _after_deploy(monkeypatch, race_and_break_undo)
    line = _run_deploy_task(served, version, capsys)
    assert "undeploy it by hand" in line and "still serves 50%" in line
    assert read_aliases(served["registry"], MODEL)["production"] == 2  # the other run's


def test_a_refused_promotion_succeeds_unpromoted_with_the_deploy_undone(
    served,
    adc,
    monkeypatch,
):
    from adaptune.registry import promote

    fake, endpoint = served["vertex"], served["deployment"].endpoint
    version = _register_unpromoted(served)
    initial = _endpoint_state(fake, endpoint)
    _after_deploy(monkeypatch, lambda: promote(served["registry"], MODEL, "v2"))
    outputs, model, endpoint_artifact = _deploy_task(served, version)
    assert outputs.promoted is False and "production moved from v1 to v2" in outputs.note
    # The typed outputs still name what was uploaded and where it was deployed (then undone).
    assert endpoint_artifact.metadata == {"resourceName": endpoint}
    assert model.metadata["resourceName"].startswith(served["deployment"].model + "@")
    assert _endpoint_state(fake, endpoint) == initial
    assert read_aliases(served["registry"], MODEL) == {"production": 2, "previous": 1}


# -- refused before anything runs -------------------------------------------------------------


def _no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")  # nothing listens: no metadata server
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:1")


def _missing_file(tmp_path):
    return str(tmp_path / "nowhere.json")


def _garbage_file(tmp_path):
    path = tmp_path / "garbage.json"
    path.write_text("{not json")
    return str(path)


def _wrong_type_file(tmp_path):
    path = tmp_path / "wrong.json"
    path.write_text('{"type": "nonsense"}')
    return str(path)


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (None, "no Google Cloud credentials were found"),
        (_missing_file, "no Google Cloud credentials were found"),
        (_garbage_file, "no Google Cloud credentials were found"),
        (_wrong_type_file, "no Google Cloud credentials were found"),
    ],
)
def test_run_refuses_a_vertex_deploy_without_credentials_before_anything_runs(
    tmp_path, monkeypatch, credentials, message
):
    _no_credentials(monkeypatch, tmp_path)
    if credentials is not None:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", credentials(tmp_path))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"train_data: {SAMPLE / 'train.jsonl'}\nvertex_deploy:\n  project: p\n"
        f"  pipeline_root: gs://{BUCKET}/root\n"
    )
    before = tree(tmp_path)
    result = invoke(
        "run", "--config", config, "--runs-dir", tmp_path / "runs", "--compiled", COMPILED
    )
    assert message in one_line_error(result)
    assert tree(tmp_path) == before  # no run directory, no store


@pytest.mark.parametrize(
    ("vertex_deploy", "message"),
    [
        ("  project: p\n", "vertex_deploy needs artifact_prefix or pipeline_root"),
        ("  location: europe-west4\n", "vertex_deploy.project is required"),
        ("  project: p\n  pipeline_root: /local/dir\n", "pipeline_root must be a gs:// directory"),
        ("  project: p\n  artifact_prefix: s3://x\n", "artifact_prefix must be a gs:// directory"),
        ("  project: 7\n  pipeline_root: gs://b/r\n", "vertex_deploy.project must be a string"),
        ("  project: p\n  pipeline_root: gs://b/r\n  traffic_percentage: 150\n", "0 to 100"),
        ("  project: p\n  pipeline_root: gs://b/r\n  traffic: 10\n", "unknown vertex_deploy"),
        ("  project: p\n  pipeline_root: gs://b/r\n  min_replicas: 0\n", "min_replicas"),
    ],
)
def test_run_refuses_unusable_vertex_deploy_settings_before_anything_runs(
    tmp_path, vertex_deploy, message
):
    config = tmp_path / "config.yaml"
    config.write_text(f"train_data: {SAMPLE / 'train.jsonl'}\nvertex_deploy:\n{vertex_deploy}")
    before = tree(tmp_path)
    result = invoke(
        "run", "--config", config, "--runs-dir", tmp_path / "runs", "--compiled", COMPILED
    )
    assert message in one_line_error(result)
    assert tree(tmp_path) == before


# -- Vertex caching -----------------------------------------------------------------------------


def _submitted_caching(env, flags):
    result = invoke(
        "vertex",
        "submit",
        "--pipeline-root",
        f"gs://{BUCKET}/cache",
        "--train-data",
        SAMPLE / "train.jsonl",
        "--run-id",
        f"adaptune-cache-{len(env['vertex'].requests)}",
        "--compiled",
        COMPILED,
        *flags,
    )
    assert result.exit_code == 0, result.output
    body = env["vertex"].calls("POST", "/pipelineJobs")[-1].body
    spec = json.loads(json.dumps(body["pipelineSpec"]))
    caching = {}
    for dag in [
        spec["root"]["dag"],
        *(c["dag"] for c in spec["components"].values() if "dag" in c),
    ]:
        for name, task in dag["tasks"].items():
            if "dag" not in spec["components"][task["componentRef"]["name"]]:
                caching[name] = bool(task.get("cachingOptions", {}).get("enableCache", False))
    return caching


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # The compiled settings: nothing that reads data or the registry, or registers, cached.
        (
            [],
            {
                "validate-dataset": False,
                "format-text-to-text": True,
                "tune-adapter": True,
                "evaluate": False,
                "passes-gate": False,
                "register-version": False,
                "wants-vertex-deploy": False,
                "deploy-to-vertex": False,
            },
        ),
        (["--cache"], dict.fromkeys(("register-version", "evaluate", "tune-adapter"), True)),
        (["--no-cache"], dict.fromkeys(("register-version", "evaluate", "tune-adapter"), False)),
    ],
)
def test_vertex_submit_keeps_each_tasks_caching_unless_asked(env, adc, flags, expected):
    caching = _submitted_caching(env, flags)
    for task, cached in expected.items():
        assert caching[task] is cached, (task, caching)


# -- the whole DAG ----------------------------------------------------------------------------


def vertex_run_config(tmp_path: Path, fake) -> tuple[Path, Path]:
    """A small sample run's config that deploys to the fake Vertex AI server, and its registry."""
    train = tmp_path / "train.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:64]))
    registry = tmp_path / "registry"
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "train_data": str(train),
                "training": {"steps": 2},
                "evaluation": {"report_examples": 2},
                "gate": {"threshold": 0.0, "min_improvement": -1.0},
                "model_name": MODEL,
                "registry_dir": str(registry),
                "vertex_deploy": {
                    "project": PROJECT,
                    "location": LOCATION,
                    "api_endpoint": fake.endpoint,
                    "pipeline_root": f"gs://{BUCKET}/root",
                    "endpoint": "router",
                },
            }
        )
    )
    return config, registry


@pytest.mark.pipeline
def test_a_run_whose_vertex_deploy_fails_leaves_production_where_it_was(
    cloud,
    metadata_server,
    tmp_path,
):
    fake = cloud["vertex"]
    fake.fail("POST", ":deployModel", 500, "the deploy broke")
    config, registry = vertex_run_config(tmp_path, fake)
    data_before = tree(tmp_path)
    result = invoke(
        "run", "--config", config, "--runs-dir", tmp_path / "runs", "--compiled", COMPILED
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "deploy-to-vertex" in result.output and "the deploy broke" in result.output
    assert read_aliases(registry, MODEL) == {}  # no production: as before the run
    version = resolve_version(registry, MODEL, "v1")
    assert verify_version(version) == ""  # registered, complete, unpromoted
    assert json.loads((version.path / "lineage.json").read_text())["run_id"].startswith("adaptune-")
    assert not fake.calls("POST", ":undeployModel")
    endpoints = [r for name, r in fake.resources.items() if "/endpoints/" in name]
    assert all(not e.get("deployedModels") for e in endpoints)  # nothing serves
    # Nothing outside the registry and the runs directory changed.
    data_after = {k: v for k, v in tree(tmp_path).items() if not k.startswith(("registry", "runs"))}
    assert data_after == data_before


# -- lineage from the version's own record ------------------------------------------------------


def _lineage(world, ref: str):
    return invoke(
        "lineage", ref, "--registry-dir", world["registry"], "--runs-dir", world["runs"], "--json"
    )


def _registered(world) -> Path:
    done = register_and_promote(
        world["registry"], MODEL, world["adapter"], {**METADATA, "run_id": RUN_ID}, 1
    )
    return done.version.path


def _store_knows_the_run(world, with_params: bool):
    """The store recorded the run's start (its run_dir) but none of its tasks: a killed runner."""
    from adaptune.lineage.store import MetadataStore

    store = MetadataStore(world["runs"])
    try:
        store.start_run(RUN_ID, {"run_dir": str(world["runs"] / RUN_ID)})
    finally:
        store.close()
    if not with_params:
        (world["runs"] / RUN_ID / "params.yaml").unlink()


@pytest.mark.parametrize(
    "ref", [f"{MODEL}@v3", f"{MODEL}@production", f"{MODEL}@latest", MODEL, f"{MODEL}@3"]
)
def test_lineage_of_a_version_the_store_never_recorded_comes_from_its_own_record(world, ref):
    _registered(world)
    result = _lineage(world, ref)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    chain = json.loads(result.output)
    assert chain["properties"] == {"model": MODEL, "version": 3}
    assert chain["lineage"]["run_id"] == RUN_ID and chain["lineage"]["evaluated_against"] == 1
    assert chain["lineage"]["adapter_files"].keys() == {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    assert chain["params"]["seed"] == 7
    assert "task records are missing" in chain["note"]
    shown = invoke("lineage", ref, "--registry-dir", world["registry"], "--runs-dir", world["runs"])
    assert shown.exit_code == 0 and "task records are missing" in shown.output


def test_lineage_takes_the_runs_params_from_the_store_when_the_record_has_none(world):
    version = _registered(world)
    record = json.loads((version / "lineage.json").read_text())
    assert record["params"] is not None
    _store_knows_the_run(world, with_params=True)
    # An older record without params: the store's run directory supplies them.
    (version / "lineage.json").chmod(0o644)
    (version / "lineage.json").write_text(json.dumps({**record, "params": None}))
    chain = json.loads(_lineage(world, f"{MODEL}@v3").output)
    assert chain["params"]["train_data"] == "/data/train.jsonl"
    assert chain["run"]["run_id"] == RUN_ID


def test_lineage_of_a_version_registered_before_lineage_files_uses_its_version_json(world):
    version = _registered(world)
    version.chmod(0o755)
    (version / "lineage.json").unlink()
    result = _lineage(world, f"{MODEL}@v3")
    assert result.exit_code == 0, result.output
    chain = json.loads(result.output)
    assert chain["recorded_by"].endswith("version.json")
    assert chain["lineage"]["run_id"] == RUN_ID


@pytest.mark.parametrize(
    ("damage", "code", "message"),
    [
        ("{not json", 2, "lineage.json is unreadable"),
        ("[1, 2]", 2, "lineage.json is not a JSON object"),
        (None, 2, "has no version v9"),
    ],
)
def test_lineage_of_a_broken_or_missing_version_is_one_line(world, damage, code, message):
    version = _registered(world)
    ref = f"{MODEL}@v3"
    if damage is None:
        ref = f"{MODEL}@v9"
    else:
        (version / "lineage.json").chmod(0o644)
        (version / "lineage.json").write_text(damage)
    before = tree(world["registry"])
    assert message in one_line_error(_lineage(world, ref), code)
    assert tree(world["registry"]) == before
