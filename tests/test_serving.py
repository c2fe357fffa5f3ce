"""The serving endpoint (Vertex AI predict format), its limits, and adaptune predict/compare."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import serving_in_a_thread
from fastapi.testclient import TestClient
from sample_adapters import save_random_lora

from adaptune.base_models import load_base_model
from adaptune.cli import main
from adaptune.data.formatting import DEFAULT_TEMPLATE, apply_template
from adaptune.evaluation.generation import generate
from adaptune.registry import promote, register_version
from adaptune.serving.app import create_app
from adaptune.serving.settings import ServeSettings, VertexEnvironment
from adaptune.tuning.loading import load_tuned_model

BASE = "builtin:tiny-gpt2"
PROMPT = "My parcel is late"
TOKENS = 8
GOOD = {"instances": [{"prompt": PROMPT}], "parameters": {"maxOutputTokens": TOKENS}}


def expected_answer(adapter: Path | None, prompt: str = PROMPT, template: str = DEFAULT_TEMPLATE):
    """The answer computed without the server: base model, adapter loaded alone, generate."""
    base = load_base_model(BASE)
    model = base.model if adapter is None else load_tuned_model(base.model, adapter)
    return generate(
        model,
        base.tokenizer,
        [apply_template(template, prompt)],
        base.family,
        TOKENS,
        show_progress=False,
    )[0]


@pytest.fixture(scope="session")
def adapters(tmp_path_factory):
    """Two random LoRA adapters that answer differently, with their expected answers."""
    root = tmp_path_factory.mktemp("serving-adapters")
    made = {}
    for seed in (1, 2):
        path = save_random_lora(BASE, root / f"seed{seed}", seed=seed)
        made[seed] = {"path": path, "answer": expected_answer(path)}
    base_answer = expected_answer(None)
    assert len({made[1]["answer"], made[2]["answer"], base_answer}) == 3
    return made


def register(registry: Path, model: str, adapter: Path, promote_it: bool = True, **meta):
    return register_version(
        registry, model, adapter, {"base_model": BASE, **meta}, promote=promote_it
    )


@pytest.fixture
def registry(tmp_path, adapters):
    """alpha (v1: seed 1, production) and beta (v1: seed 2, production)."""
    reg = tmp_path / "registry"
    register(reg, "alpha", adapters[1]["path"])
    register(reg, "beta", adapters[2]["path"])
    return reg


def client_for(registry: Path, **settings) -> TestClient:
    return TestClient(create_app(ServeSettings(registry_dir=registry, **settings)))


def predict(client: TestClient, model_ref: str, body=None, **kwargs):
    return client.post(f"/v1/endpoints/{model_ref}:predict", json=body or GOOD, **kwargs)


def test_predict_answers_in_vertex_format(registry, adapters):
    with client_for(registry) as client:
        response = predict(client, "alpha")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "predictions": [{"content": adapters[1]["answer"]}],
        "deployedModelId": "alpha@v1",
        "model": "alpha",
        "modelDisplayName": "alpha",
        "modelVersionId": "1",
    }


def test_adapters_are_switched_per_request_on_one_base_model(registry, adapters):
    with client_for(registry) as client:
        answers = [
            (ref, predict(client, ref).json()["predictions"][0]["content"])
            for ref in ("alpha", "beta", "alpha", "beta@production", "alpha@v1")
        ]
        loaded = client.get("/v1/models").json()["loaded"]
    expected = {"alpha": adapters[1]["answer"], "beta": adapters[2]["answer"]}
    assert answers == [(ref, expected[ref.split("@")[0]]) for ref, _ in answers]
    assert loaded == [
        {"baseModel": BASE, "adapterType": "LORA", "versions": ["alpha@v1", "beta@v1"]}
    ]


def test_concurrent_requests_for_several_adapters_each_get_their_own_answer(registry, adapters):
    refs = ["alpha", "beta"] * 8
    with client_for(registry) as client, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda ref: predict(client, ref), refs))
    expected = {"alpha": adapters[1]["answer"], "beta": adapters[2]["answer"]}
    assert [r.status_code for r in responses] == [200] * len(refs)
    assert [r.json()["predictions"][0]["content"] for r in responses] == [expected[r] for r in refs]


def test_a_promoted_version_is_served_without_restart(registry, adapters):
    with client_for(registry) as client:
        before = predict(client, "alpha").json()
        register(registry, "alpha", adapters[2]["path"])  # v2, promoted on registration
        after = predict(client, "alpha").json()
        previous = predict(client, "alpha@previous").json()
        promote(registry, "alpha", "v1")  # and back again, by promotion
        again = predict(client, "alpha").json()
    assert (before["modelVersionId"], before["predictions"][0]["content"]) == (
        "1",
        adapters[1]["answer"],
    )
    assert (after["modelVersionId"], after["predictions"][0]["content"]) == (
        "2",
        adapters[2]["answer"],
    )
    assert previous["modelVersionId"] == "1"
    assert again["modelVersionId"] == "1"
    assert again["predictions"][0]["content"] == adapters[1]["answer"]


def test_the_version_template_is_applied_unless_raw(tmp_path, adapters):
    reg = tmp_path / "registry"
    template = "Ticket: {input_text}\nTeam:"
    register(reg, "router", adapters[1]["path"], prompt_template=template)
    raw_body = {
        "instances": [{"prompt": PROMPT, "raw": True}],
        **{"parameters": GOOD["parameters"]},
    }
    with client_for(reg) as client:
        templated = predict(client, "router").json()["predictions"][0]["content"]
        raw = predict(client, "router", raw_body).json()["predictions"][0]["content"]
    assert templated == expected_answer(adapters[1]["path"], template=template)
    assert raw == expected_answer(adapters[1]["path"], template="{input_text}")


def chunks(size: int):
    yield b'{"instances": [{"prompt": "'
    for _ in range(size // 1000):
        yield b"x" * 1000
    yield b'"}]}'


BAD_REQUESTS = {
    "malformed json": (
        {"content": b'{"instances": [', "headers": {"content-type": "application/json"}},
        400,
    ),
    "form body": (
        {
            "content": b"instances=x",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        400,
    ),
    "not an object": ({"json": ["x"]}, 400),
    "instances not a list": ({"json": {"instances": "x"}}, 400),
    "no instances": ({"json": {"instances": []}}, 400),
    "prompt not text": ({"json": {"instances": [{"prompt": 3}]}}, 400),
    "unknown field": ({"json": {"instances": [{"prompt": "x", "promt": "y"}]}}, 400),
    "tokens not a number": ({"json": {**GOOD, "parameters": {"maxOutputTokens": "8"}}}, 400),
    "too many instances": ({"json": {"instances": [{"prompt": "x"}] * 5}}, 400),
    "too many tokens": ({"json": {**GOOD, "parameters": {"maxOutputTokens": 10_000}}}, 400),
    "body too large": ({"json": {"instances": [{"prompt": "x" * 5000}]}}, 413),
    "chunked body too large": ({"content": chunks(20_000)}, 413),
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory, adapters):
    reg = tmp_path_factory.mktemp("limited") / "registry"
    register(reg, "alpha", adapters[1]["path"])
    settings = {"max_instances": 4, "max_new_tokens": 16, "max_body_bytes": 4096}
    with client_for(reg, **settings) as client:
        yield client


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_error_and_the_server_keeps_serving(limited, adapters, name):
    kwargs, status = BAD_REQUESTS[name]
    response = limited.post("/v1/endpoints/alpha:predict", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["message"]
    good = predict(limited, "alpha")
    assert good.status_code == 200
    assert good.json()["predictions"][0]["content"] == adapters[1]["answer"]


@pytest.mark.parametrize(
    ("model_ref", "status", "message"),
    [
        ("nobody", 404, "no model 'nobody'"),
        ("alpha@v9", 404, "no version v9"),
        ("alpha@staging", 400, "bad version 'staging'"),
        ("Not-A-Name", 400, "invalid model name"),
    ],
)
def test_unknown_models_and_versions_are_refused(limited, model_ref, status, message):
    response = predict(limited, model_ref)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert predict(limited, "alpha").status_code == 200


def test_a_configured_token_is_required(registry):
    with client_for(registry, token="s3cret") as client:
        missing = predict(client, "alpha")
        wrong = predict(client, "alpha", headers={"Authorization": "Bearer nope"})
        right = predict(client, "alpha", headers={"Authorization": "Bearer s3cret"})
        models_without = client.get("/v1/models")
        health = client.get("/health")
    assert missing.status_code == wrong.status_code == models_without.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert right.status_code == 200
    assert health.status_code == 200


def test_health_and_models_listing(registry, adapters):
    register(registry, "alpha", adapters[2]["path"], promote_it=False)  # alpha v2, not promoted
    with client_for(registry) as client:
        assert client.get("/health").json()["status"] == "ok"
        predict(client, "alpha")
        listing = client.get("/v1/models").json()
    assert listing["models"] == [
        {"model": "alpha", "aliases": {"production": 1}, "versions": [1, 2], "loaded": [1]},
        {"model": "beta", "aliases": {"production": 1}, "versions": [1], "loaded": []},
    ]


def test_adapters_no_alias_points_to_are_evicted_past_the_bound(tmp_path, adapters):
    reg = tmp_path / "registry"
    for seed in (1, 2, 1):
        register(reg, "alpha", adapters[seed]["path"])  # v3 production, v2 previous
    with client_for(reg, idle_adapters=0) as client:
        assert predict(client, "alpha@v1").status_code == 200  # v1 idle but in use: kept
        loaded_after_v1 = client.get("/v1/models").json()["models"][0]["loaded"]
        assert predict(client, "alpha").status_code == 200  # v3 loads; idle v1 goes
        loaded_after_v3 = client.get("/v1/models").json()["models"][0]["loaded"]
        back = predict(client, "alpha@v1").json()  # and comes back on demand
    assert loaded_after_v1 == [1]
    assert loaded_after_v3 == [3]
    assert back["predictions"][0]["content"] == adapters[1]["answer"]


def test_vertex_routes_and_environment(registry, adapters):
    env = VertexEnvironment.from_environ(
        {
            "AIP_HTTP_PORT": "8081",
            "AIP_PREDICT_ROUTE": "/v1/endpoints/123/deployedModels/456:predict",
            "AIP_HEALTH_ROUTE": "/v1/endpoints/123/deployedModels/456",
            "AIP_DEPLOYED_MODEL_ID": "456",
        }
    )
    assert (env.host(None), env.listen_port(None), env.host("127.0.0.1")) == (
        "0.0.0.0",
        8081,
        "127.0.0.1",
    )
    local = VertexEnvironment.from_environ({})
    assert (local.host(None), local.listen_port(None)) == ("127.0.0.1", 8080)
    settings = ServeSettings(
        registry_dir=registry,
        default_model="beta",
        predict_route=env.predict_route,
        health_route=env.health_route,
        deployed_model_id=env.deployed_model_id,
    )
    with TestClient(create_app(settings)) as client:
        health = client.get(env.health_route)
        response = client.post(env.predict_route, json=GOOD)
    assert health.status_code == 200
    assert response.json()["deployedModelId"] == "456"
    assert response.json()["predictions"][0]["content"] == adapters[2]["answer"]


def test_the_vertex_predict_route_needs_a_model_when_there_are_several(registry):
    settings = ServeSettings(registry_dir=registry, predict_route="/predict")
    with TestClient(create_app(settings)) as client:
        response = client.post("/predict", json=GOOD)
    assert response.status_code == 404
    assert "--model" in response.json()["error"]["message"]


@pytest.fixture
def live_server(registry):
    """A real uvicorn server on 127.0.0.1 (port chosen by the OS), in a thread."""
    with serving_in_a_thread(ServeSettings(registry_dir=registry, token="t0k")) as url:
        yield url


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def test_predict_cli_asks_a_running_server(live_server, adapters):
    result = invoke(
        "predict",
        "beta",
        PROMPT,
        "--url",
        live_server,
        "--max-new-tokens",
        TOKENS,
        env={"ADAPTUNE_SERVE_TOKEN": "t0k"},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == adapters[2]["answer"].strip()
    refused = invoke("predict", "beta", PROMPT, "--url", live_server, "--token", "bad")
    assert refused.exit_code != 0
    assert "401" in refused.output and "Traceback" not in refused.output


def test_predict_cli_in_process(registry, adapters):
    result = invoke(
        "predict", "alpha", PROMPT, "--registry-dir", registry, "--max-new-tokens", TOKENS
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == adapters[1]["answer"].strip()


def test_compare_cli_prints_base_and_tuned_side_by_side(registry, adapters):
    result = invoke(
        "compare",
        "beta@v1",
        "--prompt",
        PROMPT,
        "--prompt",
        "I was charged twice",
        "--registry-dir",
        registry,
        "--max-new-tokens",
        TOKENS,
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    for heading in ("prompt", f"base ({BASE})", "tuned (beta@v1)", "I was charged twice"):
        assert heading in flat
    base_words = expected_answer(None).split()
    tuned_words = adapters[2]["answer"].split()
    assert all(w in flat for w in base_words + tuned_words)


@pytest.mark.parametrize("command", ["predict", "compare"])
def test_cli_fails_cleanly_on_an_unknown_model(registry, command):
    args = (
        [command, "nobody", PROMPT]
        if command == "predict"
        else [command, "nobody", "--prompt", PROMPT]
    )
    result = invoke(*args, "--registry-dir", registry)
    assert result.exit_code == 2
    assert "no model 'nobody'" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_predict_cli_fails_cleanly_when_no_server_listens(registry):
    result = invoke("predict", "alpha", PROMPT, "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "cannot reach" in result.output and "Traceback" not in result.output


def test_serve_refuses_a_missing_registry(tmp_path):
    result = invoke("serve", "--registry-dir", tmp_path / "missing")
    assert result.exit_code == 2
    assert "is not a directory" in result.output


def test_a_gs_registry_is_copied_at_start(gcs, registry):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from adaptune.serving.storage import local_registry

    bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket(
        "adaptune-test"
    )
    for path in registry.rglob("*"):
        if path.is_file():
            bucket.blob(f"reg/{path.relative_to(registry)}").upload_from_filename(str(path))
    local = local_registry(f"{gcs}/reg")
    assert json.loads((local / "alpha" / "index.json").read_text())["aliases"] == {"production": 1}
    assert (local / "beta" / "v1" / "adapter_model.safetensors").is_file()


def save_untrained(method_dict: dict, out: Path, seed: int) -> Path:
    """An adapter of any method, with random weights where the method's start is a no-op."""
    import torch

    from adaptune.tuning.loading import apply_method, save_adapter
    from adaptune.tuning.methods import method_from_dict

    base = load_base_model(BASE)
    method = method_from_dict(method_dict)
    torch.manual_seed(seed)
    model = apply_method(base.model, method, base.family)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
    out.mkdir(parents=True)
    save_adapter(model, method, BASE, out)
    return out


def test_every_adapter_method_is_served_beside_the_others(tmp_path, adapters):
    reg = tmp_path / "registry"
    register(reg, "lora", adapters[1]["path"])
    kinds = {"prompt_tuning": {"num_virtual_tokens": 4}, "ia3": {}, "last_layers": {}}
    for seed, (method, settings) in enumerate(kinds.items(), start=3):
        path = save_untrained({"method": method, **settings}, tmp_path / method, seed)
        register(reg, method.replace("_", "-"), path)
    refs = ["lora", "prompt-tuning", "ia3", "last-layers"]
    with client_for(reg) as client:
        answers = [predict(client, ref).json()["predictions"][0]["content"] for ref in refs * 2]
        loaded = client.get("/v1/models").json()["loaded"]
    expected = [expected_answer(reg / ref / "v1") for ref in refs]
    assert answers == expected * 2
    assert len(set(expected)) == len(refs)
    assert sorted(group["adapterType"] for group in loaded) == [
        "IA3",
        "LORA",
        "PROMPT_TUNING",
        "last_layers",
    ]


def test_temperature_samples_and_zero_decodes_greedily(registry):
    def answers(parameters):
        body = {"instances": [{"prompt": PROMPT}] * 8, "parameters": parameters}
        response = predict(client, "alpha", body)
        assert response.status_code == 200, response.text
        return [p["content"] for p in response.json()["predictions"]]

    with client_for(registry) as client:
        greedy = answers({"maxOutputTokens": TOKENS, "temperature": 0})
        sampled = answers({"maxOutputTokens": TOKENS, "temperature": 1.0, "topK": 50, "topP": 0.95})
    assert len(set(greedy)) == 1
    assert len(set(sampled)) > 1


@pytest.mark.parametrize("preload_models", [False, True])
def test_a_version_that_fails_to_load_gets_a_500_and_others_keep_serving(
    registry, tmp_path, preload_models
):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text(
        (registry / "alpha" / "v1" / "adapter_config.json").read_text()
    )
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    register(registry, "gamma", broken)
    app = create_app(ServeSettings(registry_dir=registry), preload_models=preload_models)
    with TestClient(app) as client:  # preloading gamma fails, and the server starts anyway
        before = predict(client, "alpha")  # gamma is then added to alpha's PeftModel
        failed = predict(client, "gamma")
        after = predict(client, "alpha")
        loaded = client.get("/v1/models").json()["loaded"]
    assert failed.status_code == 500
    assert failed.json()["error"]["status"] == "INTERNAL"
    assert "gamma@v1 failed" in failed.json()["error"]["message"]
    assert after.status_code == 200 and after.json() == before.json()
    assert any("alpha@v1" in group["versions"] for group in loaded)
    assert "gamma@v1" not in str(loaded)
    # the same version asked for in this process: one line, exit 2, no traceback
    result = invoke("predict", "gamma", PROMPT, "--registry-dir", registry)
    assert result.exit_code == 2
    assert "gamma@v1 cannot be loaded" in result.output and "Traceback" not in result.output
    result = invoke("compare", "gamma", "--prompt", PROMPT, "--registry-dir", registry)
    assert result.exit_code == 2 and "gamma@v1 cannot be loaded" in result.output
