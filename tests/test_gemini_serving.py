"""A vertex_gemini version in the registry: promotable and roll-backable as any version, and
`predict`, `compare` and `serve` forward its requests to its endpoint with generateContent
(the real google-genai client against the fake on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fake_gemini import FakeGemini
from fastapi.testclient import TestClient
from google.oauth2.credentials import Credentials

from adaptune.cli import main
from adaptune.errors import UserError
from adaptune.registry import read_aliases, resolve_version, verify_version
from adaptune.serving.app import create_app
from adaptune.serving.settings import ServeSettings
from adaptune.vertex.gemini_steps import register_step

PROJECT, LOCATION = "gemini-project", "europe-west4"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
MODEL = "support-gemini"


@pytest.fixture
def fake():
    server = FakeGemini(answer=lambda model, body: f"{model.rsplit('/', 1)[-1]} says hi").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def adc(monkeypatch):
    """Application Default Credentials → a token (the SDK asks google.auth for them)."""
    import google.auth

    monkeypatch.setattr(
        google.auth, "default", lambda *a, **k: (Credentials(token="serve-token"), PROJECT)
    )


def _register(registry, fake, number: int, system: str = ""):
    tuned = registry.parent / f"tune-{number}"
    tuned.mkdir(parents=True)
    record = {
        "model": f"{PARENT}/models/{number}@1",
        "endpoint": f"{PARENT}/endpoints/{number}",
        "job_name": f"{PARENT}/tuningJobs/{number}",
        "base_model": "gemini-2.5-flash",
        "api_endpoint": fake.url,
        "system_instruction": system,
    }
    (tuned / "tuned_model.json").write_text(json.dumps(record))
    fake.add_model(record["model"])  # its Model Registry entry, for the evaluation's import
    run = f"run-{number}"
    metrics = {"tuned_exact_match": 0.9}
    before = 0 if number == 1 else 1
    where = {"project": PROJECT, "location": LOCATION, "api_endpoint": fake.url}
    return register_step(
        registry, MODEL, tuned, metrics, "cd" * 32, run, run, "passed", before, where
    )


def test_a_gemini_version_is_promoted_and_rolled_back_like_any(tmp_path, fake):
    registry = tmp_path / "registry"
    first = _register(registry, fake, 1)
    second = _register(registry, fake, 2)
    assert first.promoted and second.promoted
    assert read_aliases(registry, MODEL) == {"production": 2, "previous": 1}
    runner = CliRunner()
    out = runner.invoke(main, ["models", "rollback", MODEL, "--registry-dir", str(registry)])
    assert out.exit_code == 0, out.output
    assert read_aliases(registry, MODEL)["production"] == 1
    out = runner.invoke(main, ["models", "promote", f"{MODEL}@v2", "--registry-dir", str(registry)])
    assert out.exit_code == 0, out.output
    assert read_aliases(registry, MODEL)["production"] == 2
    version = resolve_version(registry, MODEL, "production")
    assert version.metadata["kind"] == "vertex_gemini"
    assert sorted(version.metadata["files"]) == ["lineage.json", "tuned_model.json"]  # no weights
    assert verify_version(version) == ""
    # A changed record is refused as any version's changed files are.
    path = version.path / "tuned_model.json"
    path.chmod(0o644)
    path.write_text(path.read_text().replace("/endpoints/2", "/endpoints/666"))
    with pytest.raises(UserError, match=r"tuned_model\.json changed since registration"):
        verify_version(version)


def test_a_gemini_version_without_its_endpoint_is_refused(tmp_path):
    tuned = tmp_path / "t"
    tuned.mkdir()
    (tuned / "tuned_model.json").write_text("{}")
    from adaptune.registry import register_and_promote

    with pytest.raises(UserError, match="needs tuned_model with its model and endpoint"):
        register_and_promote(tmp_path / "r", MODEL, tuned, {"kind": "vertex_gemini"}, 0)


def test_predict_and_compare_forward_to_the_endpoint(tmp_path, fake):
    registry = tmp_path / "registry"
    _register(registry, fake, 1, system="Answer with the team's name.")
    runner = CliRunner()
    out = runner.invoke(
        main,
        ["predict", MODEL, "My invoice is wrong", "--registry-dir", str(registry),
         "--temperature", "0.5", "--max-new-tokens", "32"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "1 says hi" in out.stdout
    (call,) = fake.calls("POST", ":generateContent")
    assert call.path.endswith(f"{PARENT}/endpoints/1:generateContent")
    assert call.headers["Authorization"] == "Bearer serve-token"
    assert call.body["contents"] == [{"role": "user", "parts": [{"text": "My invoice is wrong"}]}]
    assert call.body["systemInstruction"]["parts"] == [{"text": "Answer with the team's name."}]
    assert call.body["generationConfig"]["temperature"] == 0.5
    assert call.body["generationConfig"]["maxOutputTokens"] == 32

    out = runner.invoke(
        main, ["compare", MODEL, "--prompt", "Where is my parcel?", "--registry-dir", str(registry)]
    )
    assert out.exit_code == 0, out.output
    assert "gemini-2.5-flash says hi" in out.stdout and "1 says hi" in out.stdout
    paths = [r.path for r in fake.calls("POST", ":generateContent")[1:]]
    assert paths[0].endswith(f"{PARENT}/publishers/google/models/gemini-2.5-flash:generateContent")
    assert paths[1].endswith(f"{PARENT}/endpoints/1:generateContent")


def test_serve_forwards_predict_and_chat_completions(tmp_path, fake):
    registry = tmp_path / "registry"
    _register(registry, fake, 1)
    fake.fail("POST", "/endpoints/1:generateContent", 503, times=1)  # retried
    with TestClient(create_app(ServeSettings(registry_dir=registry), preload_models=True)) as c:
        response = c.post(f"/v1/endpoints/{MODEL}:predict", json={"instances": [{"prompt": "Hi"}]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["predictions"] == [{"content": "1 says hi"}]
        assert body["modelVersionId"] == "1"
        chat = c.post(
            "/v1/chat/completions",
            json={
                "model": MODEL,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "Hi, how can I help?"},
                    {"role": "user", "content": "Reset my password"},
                ],
            },
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"] == "1 says hi"
        assert chat.json()["usage"]["prompt_tokens"] == 5
    calls = fake.calls("POST", "/endpoints/1:generateContent")
    assert len(calls) == 3  # the 503, its retry, the chat
    assert calls[-1].body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Hi, how can I help?"}]},
        {"role": "user", "parts": [{"text": "Reset my password"}]},
    ]
    assert calls[-1].body["systemInstruction"]["parts"] == [{"text": "Be brief."}]


def test_serve_answers_502_when_the_endpoint_keeps_failing(tmp_path, fake):
    registry = tmp_path / "registry"
    _register(registry, fake, 1)
    fake.fail("POST", "/endpoints/1:generateContent", 429, times=10)
    with TestClient(create_app(ServeSettings(registry_dir=registry))) as c:
        response = c.post(f"/v1/endpoints/{MODEL}:predict", json={"instances": [{"prompt": "Hi"}]})
    assert response.status_code == 502
    assert "generateContent on" in response.text and "429" in response.text


def test_a_gemini_version_is_not_deployed_as_an_adapter(tmp_path, fake):
    from adaptune.vertex.deploy_settings import VertexDeploySettings
    from adaptune.vertex.deployment import deploy_to_vertex
    from adaptune.vertex.settings import VertexSettings

    registry = tmp_path / "registry"
    _register(registry, fake, 1)
    fake.requests.clear()  # registering imported the evaluation; the deploy must call nothing
    version = resolve_version(registry, MODEL, "production")
    where = VertexSettings(project=PROJECT, location=LOCATION, pipeline_root="gs://b/root")
    how = VertexDeploySettings(serving_image="img:1")
    with pytest.raises(UserError, match="is a vertex_gemini version: Vertex AI serves it on"):
        deploy_to_vertex(version, where, how)
    assert fake.requests == []
