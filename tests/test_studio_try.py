"""The studio's Try it page through HTTP: base, tuned and production answers side by side."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from click.testing import CliRunner
from conftest import COMPILED
from fastapi.testclient import TestClient
from sample_adapters import save_random_lora

from adaptune.cli import main
from adaptune.registry import register_version
from adaptune.serving.adapters import AdapterPool
from adaptune.studio.app import create_app
from adaptune.studio.settings import StudioSettings

BASE = "builtin:tiny-gpt2"
PROMPT = "My parcel is late"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """alpha: v1 (production), v2 (latest, not promoted); solo: v1 with no production."""
    root = tmp_path_factory.mktemp("studio-try")
    reg = root / "registry"
    meta = {"base_model": BASE}
    for seed in (1, 2):
        lora = save_random_lora(BASE, root / f"seed{seed}", seed=seed)
        register_version(reg, "alpha", lora, meta, promote=seed == 1)
    register_version(reg, "solo", root / "seed2", meta)
    return reg


@pytest.fixture(scope="module")
def client(registry, tmp_path_factory):
    settings = StudioSettings(
        runs_dir=tmp_path_factory.mktemp("runs"),
        registry_dir=registry,
        compiled=COMPILED,
        csrf_token="t0k",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def predicted(registry, ref: str, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["predict", ref, *args, "--registry-dir", str(registry), "--max-new-tokens", "8"]
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def section(page: str, name: str) -> tuple[str, str]:
    """The heading and the answer text of ``#answer-<name>``."""
    found = re.search(
        rf'<section id="answer-{name}".*?<h2[^>]*>(.*?)</h2>\s*(.*?)</section>', page, re.S
    )
    assert found, f"no #answer-{name} in the page"
    body = re.sub(r"<[^>]+>", "", found.group(2))
    return unescape(found.group(1)), unescape(body).strip()


def ask(client, **fields):
    data = {"csrf_token": "t0k", "model": "alpha", "temperature": "0", "max_tokens": "8"}
    return client.post("/try", data={**data, **fields})


def test_the_form_has_labelled_controls(client):
    page = client.get("/try?model=solo").text
    for label in ("Model", "Prompt", "Conversation", "Temperature", "Max tokens"):
        match = re.search(rf'<label for="([^"]+)">{label}</label>', page)
        assert match and f'id="{match.group(1)}"' in page, label
    assert '<option value="solo" selected>' in page and ">Try</button>" in page


def test_three_answers_and_the_tuned_one_is_what_predict_gives(client, registry):
    response = ask(client, prompt=PROMPT)
    assert response.status_code == 200
    base_heading, base = section(response.text, "base")
    tuned_heading, tuned = section(response.text, "tuned")
    prod_heading, production = section(response.text, "production")
    assert base_heading == f"Base model ({BASE})"
    assert tuned_heading == "Tuned (alpha@v2)"  # the latest, as no version was asked for
    assert prod_heading == "Production (alpha@v1)"
    assert tuned == predicted(registry, "alpha@v2", PROMPT)
    assert production == predicted(registry, "alpha", PROMPT)
    assert len({base, tuned, production}) == 3
    compared = CliRunner().invoke(
        main,
        [
            "compare",
            "alpha@v2",
            "--prompt",
            PROMPT,
            "--registry-dir",
            str(registry),
            "--max-new-tokens",
            "8",
        ],
    )
    assert all(word in compared.output for word in base.split())
    # the models stay loaded between requests: one base model, both versions on it
    pool = client.app.state.try_pool
    assert isinstance(pool, AdapterPool)
    assert pool.loaded_refs() == {"alpha@v1", "alpha@v2"}
    again = ask(client, prompt=PROMPT, version="v1")
    assert section(again.text, "tuned") == ("Tuned (alpha@v1)", production)
    assert len(pool.loaded()) == 1


def test_a_conversation_is_answered_instead_of_the_prompt(client, registry, tmp_path):
    messages = [{"role": "user", "content": PROMPT}]
    file = tmp_path / "messages.json"
    file.write_text(json.dumps(messages))
    response = ask(client, prompt="ignored", conversation=json.dumps(messages), version="2")
    assert section(response.text, "tuned")[1] == predicted(
        registry, "alpha@v2", "--messages", str(file)
    )


def test_no_production_version_is_said_in_its_column(client):
    response = ask(client, model="solo", prompt=PROMPT)
    assert section(response.text, "production") == ("Production", "no production version")
    assert section(response.text, "tuned")[0] == "Tuned (solo@v1)"


def test_a_prompt_is_escaped_never_raw(client):
    response = ask(client, prompt=SCRIPT)
    assert response.status_code == 200
    assert SCRIPT not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": "257"}, "Max tokens must be a whole number from 1 to 256"),
        ({"temperature": "hot"}, "Temperature must be a number from 0 to 2"),
        ({"prompt": "x" * 8001}, "Prompt: at most 8000 characters"),
        ({"prompt": ""}, "give a Prompt, or a Conversation"),
        ({"conversation": "[{"}, "Conversation: not JSON"),
        ({"conversation": '[{"role": "user"}]'}, "Conversation:"),
        ({"model": "gamma"}, "no model 'gamma'"),
        ({"version": "v9"}, "alpha has no version v9"),
        ({"version": SCRIPT}, "bad version"),
    ],
)
def test_bad_fields_are_shown_as_an_alert_with_the_values_kept(client, fields, message):
    response = ask(client, **{"prompt": PROMPT, **fields})
    assert response.status_code == 200
    alert = re.search(r'role="alert"[^>]*>(.*?)</p>', response.text, re.S)
    assert alert and message in unescape(alert.group(1))
    assert "answer-tuned" not in response.text
    assert SCRIPT not in response.text


def test_a_post_without_the_csrf_token_is_refused(client):
    response = client.post("/try", data={"model": "alpha", "prompt": PROMPT})
    assert response.status_code == 403
