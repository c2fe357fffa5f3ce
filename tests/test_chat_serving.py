"""Chat requests: the server renders each one exactly as tuning and evaluation render it.

For each chat-model style a version is made from a random LoRA on a tiny checkpoint of that
style, in the chat prompt format. Its answers through a ``messages`` instance, a ``contents``
instance and ``/v1/chat/completions`` must equal ``generate`` on ``render_chat_prompt`` of the
same conversation (the version's system instruction put in when the conversation has none), run
directly on the same base model and adapter. A template-format version answers the same shapes
with its template, as tuning renders a multi-turn example.
"""

import json
import time
from pathlib import Path

import pytest
import torch
from chat_models import STYLES, build_chat_checkpoint
from click.testing import CliRunner
from conftest import serving_in_a_thread
from fastapi.testclient import TestClient
from sample_adapters import save_random_lora

from adaptune.base_models import load_base_model
from adaptune.cli import main
from adaptune.data.chat import render_chat_prompt
from adaptune.data.encoding import encode_prompts
from adaptune.data.formatting import apply_template
from adaptune.evaluation.generation import generate, stop_token_ids
from adaptune.registry import register_version
from adaptune.serving.app import create_app
from adaptune.serving.settings import ServeSettings
from adaptune.tuning.loading import load_tuned_model

SYSTEM = "Route the ticket."
STYLE = {"format": "chat", "template": "{input_text}", "system_instruction": SYSTEM}
TOKENS = 8
TEMPLATE = "Ticket: {input_text}\nTeam:"
CONVERSATIONS = [
    [{"role": "user", "content": "My parcel is late"}],
    [
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "I was charged twice"},
    ],
    [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi, how can I help?"},
        {"role": "user", "content": "My screen is broken"},
    ],
]


def with_system(messages: list[dict], system: str = SYSTEM) -> list[dict]:
    """The messages as training renders them: the version's instruction when they have none."""
    if messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": system}, *messages]


def as_contents(messages: list[dict]) -> dict:
    """The same conversation as a Gemini-style instance."""
    roles = {"user": "user", "assistant": "model"}
    instance = {
        "contents": [
            {"role": roles[m["role"]], "parts": [{"text": m["content"]}]}
            for m in messages
            if m["role"] != "system"
        ]
    }
    if messages[0]["role"] == "system":
        instance["systemInstruction"] = {"parts": [{"text": messages[0]["content"]}]}
    return instance


class Direct:
    """A version's base model and adapter loaded alone, to answer without the server."""

    def __init__(self, base_model: str, adapter: Path) -> None:
        self.base = load_base_model(base_model)
        self.tokenizer = self.base.tokenizer
        self.model = load_tuned_model(self.base.model, adapter)

    def prompt(self, messages: list[dict]) -> str:
        return render_chat_prompt(self.tokenizer, with_system(messages))

    def answer(self, prompt: str, tokens: int = TOKENS, stop: list[str] | None = None) -> str:
        return generate(
            self.model,
            self.tokenizer,
            [prompt],
            self.base.family,
            tokens,
            show_progress=False,
            stop=stop,
        )[0]

    def tokens(self, prompt: str, tokens: int = TOKENS) -> tuple[list[int], list[int]]:
        """The prompt's ids and the greedy continuation's, from Hugging Face ``generate``."""
        ids = encode_prompts(self.tokenizer, [prompt], 256)[0]
        out = self.model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
            max_new_tokens=tokens,
            do_sample=False,
            eos_token_id=stop_token_ids(self.model, self.tokenizer),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return ids, out[0, len(ids) :].tolist()


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A registry: ``<style>-router`` (chat format) per style, and two template-format versions.

    ``template-router`` records only a ``prompt_template`` (as versions did before prompt
    styles), ``template-style-router`` the same adapter and template as a ``prompt_style``.
    """
    root = tmp_path_factory.mktemp("chat-serving")
    registry = root / "registry"
    made = {}
    for style in STYLES:
        checkpoint = build_chat_checkpoint(style, root / style, seed=2)
        adapter = save_random_lora(str(checkpoint), root / f"{style}-lora", seed=3)
        metadata = {"base_model": str(checkpoint), "prompt_style": STYLE}
        register_version(registry, f"{style}-router", adapter, metadata, promote=True)
        made[style] = Direct(str(checkpoint), adapter)
    adapter = save_random_lora("builtin:tiny-gpt2", root / "gpt2-lora", seed=1)
    metadata = {"base_model": "builtin:tiny-gpt2", "prompt_template": TEMPLATE}
    register_version(registry, "template-router", adapter, metadata, promote=True)
    style = {"format": "template", "template": TEMPLATE, "system_instruction": ""}
    metadata = {"base_model": "builtin:tiny-gpt2", "prompt_style": style}
    register_version(registry, "template-style-router", adapter, metadata, promote=True)
    style = {"format": "template", "template": TEMPLATE, "system_instruction": "Be terse."}
    metadata = {"base_model": "builtin:tiny-gpt2", "prompt_style": style}
    register_version(registry, "template-system-router", adapter, metadata, promote=True)
    made["template"] = Direct("builtin:tiny-gpt2", adapter)
    return registry, made


@pytest.fixture(scope="module")
def client(versions):
    registry, _ = versions
    settings = ServeSettings(
        registry_dir=registry, max_new_tokens=16, max_body_bytes=4096, max_instances=4
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def predict(client, model: str, instance: dict, tokens: int = TOKENS):
    body = {"instances": [instance], "parameters": {"maxOutputTokens": tokens}}
    return client.post(f"/v1/endpoints/{model}:predict", json=body)


def predicted(client, model: str, instance: dict) -> str:
    response = predict(client, model, instance)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["content"]


def completion(client, model: str, messages: list[dict], **fields) -> dict:
    body = {"model": model, "messages": messages, "max_tokens": TOKENS, **fields}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("style", STYLES)
def test_served_chat_answers_equal_direct_generation(client, versions, style):
    _, made = versions
    direct = made[style]
    model = f"{style}-router"
    agreement = {"messages": 0, "contents": 0, "chat completions": 0}
    for messages in CONVERSATIONS:
        expected = direct.answer(direct.prompt(messages))
        served = {
            "messages": predicted(client, model, {"messages": messages}),
            "contents": predicted(client, model, as_contents(messages)),
            "chat completions": completion(client, model, messages)["choices"][0]["message"][
                "content"
            ],
        }
        for shape, answer in served.items():
            agreement[shape] += answer == expected
        assert served == dict.fromkeys(served, expected), (style, messages)
    print(f"{style}: " + ", ".join(f"{n}/{len(CONVERSATIONS)} {k}" for k, n in agreement.items()))
    # The answers depend on the rendering: without the version's system instruction they differ.
    without = [
        direct.answer(render_chat_prompt(direct.tokenizer, m))
        for m in CONVERSATIONS
        if m[0]["role"] != "system"
    ]
    assert without != [
        direct.answer(direct.prompt(m)) for m in CONVERSATIONS if m[0]["role"] != "system"
    ]


@pytest.mark.parametrize("style", ["llama3", "gemma"])
def test_a_prompt_instance_is_one_user_turn_of_the_chat_template(client, versions, style):
    direct = versions[1][style]
    text = CONVERSATIONS[0][0]["content"]
    assert predicted(client, f"{style}-router", {"prompt": text}) == direct.answer(
        direct.prompt(CONVERSATIONS[0])
    )
    raw = direct.prompt(CONVERSATIONS[2])  # raw: the text as it is, rendered by the client
    assert predicted(client, f"{style}-router", {"prompt": raw, "raw": True}) == direct.answer(raw)


def test_a_template_version_with_a_system_instruction_serves_it_as_tuning_rendered_it(
    client, versions
):
    """Formatting puts data.system_instruction on the prompt's first line: so must serving."""
    direct = versions[1]["template"]
    tuned_prompt = "Be terse.\n" + apply_template(TEMPLATE, "My parcel is late")
    expected = direct.answer(tuned_prompt)
    assert expected != direct.answer(apply_template(TEMPLATE, "My parcel is late"))
    one_turn = [{"role": "user", "content": "My parcel is late"}]
    assert predicted(client, "template-system-router", {"prompt": "My parcel is late"}) == expected
    assert predicted(client, "template-system-router", {"messages": one_turn}) == expected
    answer = completion(client, "template-system-router", one_turn)
    assert answer["choices"][0]["message"]["content"] == expected
    prompt_ids = direct.tokenizer(tuned_prompt, add_special_tokens=False)["input_ids"]
    assert answer["usage"]["prompt_tokens"] == len(prompt_ids)


def test_a_template_version_renders_messages_and_contents_with_its_template(client, versions):
    direct = versions[1]["template"]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there"},
        {"role": "user", "content": "My parcel is late"},
    ]
    expected = direct.answer(
        "Be brief.\n"
        + apply_template(TEMPLATE, "Hello")
        + "Hi there\n"
        + apply_template(TEMPLATE, "My parcel is late")
    )
    one_turn = direct.answer(apply_template(TEMPLATE, "My parcel is late"))
    assert predicted(client, "template-router", {"messages": messages}) == expected
    assert predicted(client, "template-router", as_contents(messages)) == expected
    answer = completion(client, "template-router", messages)
    assert answer["choices"][0]["message"]["content"] == expected
    assert predicted(client, "template-router", {"prompt": "My parcel is late"}) == one_turn
    assert expected != one_turn
    for instance in ({"messages": messages}, {"prompt": "My parcel is late"}):
        assert predicted(client, "template-style-router", instance) == predicted(
            client, "template-router", instance
        )


def test_chat_completion_format_usage_and_length(client, versions):
    direct = versions[1]["llama3"]
    messages = CONVERSATIONS[0]
    prompt = direct.prompt(messages)
    ids, continuation = direct.tokens(prompt)
    assert not set(continuation) & set(stop_token_ids(direct.model, direct.tokenizer))
    before = int(time.time())
    answer = completion(client, "llama3-router@production", messages)
    assert answer["id"].startswith("chatcmpl-") and len(answer["id"]) > len("chatcmpl-")
    assert answer["object"] == "chat.completion"
    assert before <= answer["created"] <= time.time() + 1
    assert answer["model"] == "llama3-router@v1"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": direct.answer(prompt)},
            "finish_reason": "length",
        }
    ]
    assert answer["usage"] == {
        "prompt_tokens": len(ids),
        "completion_tokens": TOKENS,
        "total_tokens": len(ids) + TOKENS,
    }


@pytest.mark.parametrize("style", ["llama3", "phi3"])
def test_stop_sequences_cut_the_answer(client, versions, style):
    direct = versions[1][style]
    messages = CONVERSATIONS[2]
    prompt = direct.prompt(messages)
    longer = 16
    full = direct.answer(prompt, longer)
    # a stop sequence from the middle of the answer: its first run of 2+ ASCII letters after 3
    start = next(
        i
        for i in range(3, len(full) - 1)
        if full[i : i + 2].isascii() and full[i : i + 2].isalpha()
    )
    stop = full[start : start + 2]
    expected = full[: full.find(stop)].strip()
    for given in (stop, [stop, "never-seen"]):
        answer = completion(client, f"{style}-router", messages, max_tokens=longer, stop=given)
        choice = answer["choices"][0]
        assert choice["message"]["content"] == expected
        assert choice["finish_reason"] == "stop"
        _, continuation = direct.tokens(prompt, longer)
        stopped_at = next(
            k
            for k in range(1, len(continuation) + 1)
            if stop in direct.tokenizer.decode(continuation[:k], skip_special_tokens=True)
        )
        assert answer["usage"]["completion_tokens"] == stopped_at < longer
    assert expected == direct.answer(prompt, longer, stop=[stop]) != full
    # the Vertex predict API takes them as parameters.stopSequences
    body = {
        "instances": [{"messages": messages}],
        "parameters": {"maxOutputTokens": longer, "stopSequences": [stop]},
    }
    reply = client.post(f"/v1/endpoints/{style}-router:predict", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"][0]["content"] == expected


GOOD_MESSAGES = [{"role": "user", "content": "hi"}]
BAD_INSTANCES = {
    "empty messages": {"messages": []},
    "last turn the assistant's": {
        "messages": [*GOOD_MESSAGES, {"role": "assistant", "content": "hello"}]
    },
    "only a system message": {"messages": [{"role": "system", "content": "x"}]},
    "unknown role": {"messages": [{"role": "tool", "content": "x"}]},
    "unknown gemini role": {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
    "two shapes": {"prompt": "hi", "messages": GOOD_MESSAGES},
    "no shape": {},
    "non-string content": {"messages": [{"role": "user", "content": 3}]},
    "content parts list": {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
    "non-string part": {"contents": [{"role": "user", "parts": [{"text": 3}]}]},
    "no parts": {"contents": [{"role": "user", "parts": []}]},
    "system not first": {"messages": [*GOOD_MESSAGES, {"role": "system", "content": "x"}]},
    "turns do not alternate": {"messages": [*GOOD_MESSAGES, *GOOD_MESSAGES]},
    "starts with the model": {
        "contents": [
            {"role": "model", "parts": [{"text": "x"}]},
            {"role": "user", "parts": [{"text": "x"}]},
        ]
    },
    "raw with messages": {"messages": GOOD_MESSAGES, "raw": True},
    "systemInstruction with messages": {
        "messages": GOOD_MESSAGES,
        "systemInstruction": {"parts": [{"text": "x"}]},
    },
    "unknown message field": {"messages": [{"role": "user", "content": "x", "name": "a"}]},
}


@pytest.mark.parametrize("name", list(BAD_INSTANCES))
@pytest.mark.parametrize("model", ["gemma-router", "template-router"])
def test_malformed_instances_are_400(client, model, name):
    response = predict(client, model, BAD_INSTANCES[name])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("invalid request")


BAD_CHATS = {
    "no model": ({"messages": GOOD_MESSAGES}, 400),
    "empty messages": ({"model": "llama3-router", "messages": []}, 400),
    "last turn the assistant's": (
        {
            "model": "llama3-router",
            "messages": [*GOOD_MESSAGES, {"role": "assistant", "content": "x"}],
        },
        400,
    ),
    "unknown role": (
        {"model": "llama3-router", "messages": [{"role": "tool", "content": "x"}]},
        400,
    ),
    "non-string content": (
        {"model": "llama3-router", "messages": [{"role": "user", "content": None}]},
        400,
    ),
    "n above 1": ({"model": "llama3-router", "messages": GOOD_MESSAGES, "n": 2}, 400),
    "stream": ({"model": "llama3-router", "messages": GOOD_MESSAGES, "stream": True}, 400),
    "stop not text": ({"model": "llama3-router", "messages": GOOD_MESSAGES, "stop": 3}, 400),
    "too many tokens": (
        {"model": "llama3-router", "messages": GOOD_MESSAGES, "max_tokens": 99},
        400,
    ),
    "unknown field": ({"model": "llama3-router", "messages": GOOD_MESSAGES, "best_of": 2}, 400),
    "malformed model": ({"model": "Not-A-Name", "messages": GOOD_MESSAGES}, 400),
    "unknown model": ({"model": "nobody", "messages": GOOD_MESSAGES}, 404),
    "unknown version": ({"model": "llama3-router@v9", "messages": GOOD_MESSAGES}, 404),
    "body too large": (
        {"model": "llama3-router", "messages": [{"role": "user", "content": "x" * 5000}]},
        413,
    ),
}


@pytest.mark.parametrize("name", list(BAD_CHATS))
def test_bad_chat_completions_get_a_4xx_error(client, name):
    body, status = BAD_CHATS[name]
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == status
    assert completion(client, "llama3-router", GOOD_MESSAGES)["choices"]


def test_chat_completions_need_the_token(versions):
    registry, _ = versions
    body = {"model": "chatml-router", "messages": GOOD_MESSAGES, "max_tokens": 2}
    with TestClient(create_app(ServeSettings(registry_dir=registry, token="s3cret"))) as client:
        missing = client.post("/v1/chat/completions", json=body)
        wrong = client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": "Bearer x"}
        )
        right = client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret"}
        )
    assert missing.status_code == wrong.status_code == 401
    assert right.status_code == 200, right.text


def test_the_vertex_predict_route_takes_chat_instances(versions):
    registry, made = versions
    settings = ServeSettings(
        registry_dir=registry, default_model="mistral-router", predict_route="/predict"
    )
    messages = CONVERSATIONS[2]
    body = {"instances": [{"messages": messages}], "parameters": {"maxOutputTokens": TOKENS}}
    with TestClient(create_app(settings)) as client:
        response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    direct = made["mistral"]
    assert response.json()["predictions"][0]["content"] == direct.answer(direct.prompt(messages))


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def messages_files(tmp_path_factory):
    """CONVERSATIONS[2] as a bare list and CONVERSATIONS[1] as an object with messages."""
    root = tmp_path_factory.mktemp("messages")
    listed, wrapped = root / "listed.json", root / "wrapped.json"
    listed.write_text(json.dumps(CONVERSATIONS[2]))
    wrapped.write_text(json.dumps({"messages": CONVERSATIONS[1]}))
    return listed, wrapped


@pytest.mark.parametrize("style", ["phi3", "chatml"])
def test_predict_cli_with_messages(versions, messages_files, style):
    registry, made = versions
    direct = made[style]
    for path, messages in zip(messages_files, (CONVERSATIONS[2], CONVERSATIONS[1]), strict=True):
        result = invoke(
            "predict",
            f"{style}-router",
            "--messages",
            path,
            "--registry-dir",
            registry,
            "--max-new-tokens",
            TOKENS,
        )
        assert result.exit_code == 0, result.output
        assert result.stdout == direct.answer(direct.prompt(messages)) + "\n"
        assert f"# {style}-router@v1" in result.stderr


@pytest.fixture
def live_server(versions):
    """A real uvicorn server on 127.0.0.1 (port chosen by the OS), in a thread."""
    registry, _ = versions
    with serving_in_a_thread(ServeSettings(registry_dir=registry)) as url:
        yield url


def test_predict_cli_sends_messages_to_a_running_server(versions, messages_files, live_server):
    direct = versions[1]["gemma"]
    result = invoke(
        "predict",
        "gemma-router",
        "--messages",
        messages_files[0],
        "--url",
        live_server,
        "--max-new-tokens",
        TOKENS,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == direct.answer(direct.prompt(CONVERSATIONS[2])) + "\n"


def words(text: str) -> list[str]:
    return [w for w in text.split() if w.isascii() and w.isalnum()]


def test_compare_cli_with_messages(versions, messages_files):
    registry, made = versions
    direct = made["llama3"]
    result = invoke(
        "compare",
        "llama3-router",
        "--messages",
        messages_files[0],
        "--prompt",
        "My parcel is late",
        "--registry-dir",
        registry,
        "--max-new-tokens",
        TOKENS,
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "tuned (llama3-router@v1)" in flat and "assistant: Hi, how can I help?" in flat
    base = load_base_model(str(registry.parent / "llama3"))
    for messages in (CONVERSATIONS[2], CONVERSATIONS[0]):
        prompt = direct.prompt(messages)
        base_answer = generate(
            base.model, base.tokenizer, [prompt], "causal", TOKENS, show_progress=False
        )[0]
        expected = words(direct.answer(prompt)) + words(base_answer)
        assert expected and all(w in flat for w in expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "llama3-router"], "exactly one of PROMPT or --messages"),
        (["predict", "llama3-router", "hi", "--messages", "{listed}"], "exactly one of"),
        (["predict", "llama3-router", "--messages", "{listed}", "--raw"], "--raw applies"),
        (["predict", "llama3-router", "--messages", "{missing}"], "cannot read it"),
        (["predict", "llama3-router", "--messages", "{bad_json}"], "not JSON"),
        (["predict", "llama3-router", "--messages", "{ends_with_model}"], "last turn"),
        (["compare", "llama3-router"], "at least one --prompt TEXT or --messages"),
        (["compare", "llama3-router", "--messages", "{unknown_role}"], "messages.0.role"),
    ],
)
def test_cli_refuses_bad_messages_in_one_line(versions, tmp_path, args, message):
    registry, _ = versions
    files = {
        "listed": tmp_path / "listed.json",
        "missing": tmp_path / "missing.json",
        "bad_json": tmp_path / "bad.json",
        "ends_with_model": tmp_path / "ends.json",
        "unknown_role": tmp_path / "role.json",
    }
    files["listed"].write_text(json.dumps(GOOD_MESSAGES))
    files["bad_json"].write_text("[{")
    files["ends_with_model"].write_text(
        json.dumps({"messages": [*GOOD_MESSAGES, {"role": "assistant", "content": "x"}]})
    )
    files["unknown_role"].write_text(json.dumps([{"role": "tool", "content": "x"}]))
    named = {k: str(v) for k, v in files.items()}
    result = invoke(*[a.format(**named) for a in args], "--registry-dir", registry)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_version_whose_base_model_changed_its_chat_template_is_refused(versions, tmp_path):
    base = versions[1]["chatml"].base
    adapter = save_random_lora(base.name, tmp_path / "lora", seed=5)
    changed = {**STYLE, "chat_template_sha256": "0" * 64}
    register_version(
        tmp_path / "registry",
        "stale-router",
        adapter,
        {"base_model": base.name, "prompt_style": changed},
        promote=True,
    )
    with TestClient(create_app(ServeSettings(registry_dir=tmp_path / "registry"))) as client:
        reply = client.post(
            "/v1/endpoints/stale-router:predict",
            json={"instances": [{"messages": [{"role": "user", "content": "hi"}]}]},
        )
    assert reply.status_code == 500
    assert "was tuned with chat template sha256 000000000000" in reply.text



def test_serve_keeps_at_most_max_prompt_tokens(versions, monkeypatch):
    import uvicorn

    registry, made = versions
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app))
    result = invoke("serve", "--registry-dir", registry, "--max-prompt-tokens", "12")
    assert result.exit_code == 0, result.output
    messages = with_system(CONVERSATIONS[0], "Answer in one word. " * 20)
    ids, _ = made["llama3"].tokens(made["llama3"].prompt(messages))
    assert len(ids) > 12
    with TestClient(served["app"]) as client:
        answer = completion(client, "llama3-router", messages)
    assert answer["usage"]["prompt_tokens"] == 12  # cut from the left, as training cuts
    refused = invoke("serve", "--registry-dir", registry, "--max-prompt-tokens", "0")
    assert refused.exit_code == 2 and "--max-prompt-tokens" in refused.output
