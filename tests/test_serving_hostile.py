"""Hostile requests: every client mistake is a 4xx in Google's error format, never a 500.

Each case is sent to a running app (predict, the Vertex AI predict route, chat completions);
its status is checked, its body must be the error format without traceback text, and a good
request right after must still answer 200.
"""

import json

import pytest
from fastapi.testclient import TestClient
from sample_adapters import save_random_lora

from adaptune.registry import register_version
from adaptune.serving.app import create_app
from adaptune.serving.errors import STATUS_NAMES
from adaptune.serving.settings import ServeSettings

pytestmark = pytest.mark.hostile

BASE = "builtin:tiny-gpt2"
VERTEX = "/vertex/v1/endpoints/1/deployedModels/2:predict"
CHAT = "/v1/chat/completions"
TOKENS = 1  # the good requests between the cases: one token is enough to show they answer
GOOD = {"instances": [{"prompt": "My parcel is late"}], "parameters": {"maxOutputTokens": TOKENS}}
GOOD_CHAT = {
    "model": "alpha",
    "messages": [{"role": "user", "content": "My parcel is late"}],
    "max_tokens": TOKENS,
}


def predict_path(model: str = "alpha") -> str:
    return f"/v1/endpoints/{model}:predict"


def body(data) -> dict:
    """Request kwargs sending ``data`` as JSON exactly as given (NaN, lone surrogates and all)."""
    return {"content": json.dumps(data).encode(), "headers": {"content-type": "application/json"}}


def raw(content: bytes, content_type: str = "application/json") -> dict:
    return {"content": content, "headers": {"content-type": content_type}}


def prompt(text, **instance) -> dict:
    return {"instances": [{"prompt": text, **instance}], "parameters": {"maxOutputTokens": TOKENS}}


def params(**parameters) -> dict:
    return {**GOOD, "parameters": {"maxOutputTokens": TOKENS, **parameters}}


def chat(**fields) -> dict:
    return {**GOOD_CHAT, **fields}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def contents(*texts: str) -> dict:
    turn = {"role": "user", "parts": [{"text": t} for t in texts]}
    return {"instances": [{"contents": [turn]}], "parameters": {"maxOutputTokens": TOKENS}}


DEEP = b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
BIG_INT = (
    b'{"instances": [{"prompt": "x"}], "parameters": {"maxOutputTokens": 1' + b"0" * 5000 + b"}}"
)

# (route, request kwargs, expected status); the route is a path, or "predict:MODEL_REF".
CASES = {
    # empty prompts: as sent, once rendered, once tokenised
    "empty raw prompt": (predict_path(), body(prompt("", raw=True)), 400),
    "empty templated prompt": (predict_path(), body(prompt("")), 400),
    "whitespace raw prompt": (predict_path(), body(prompt(" \n\t ", raw=True)), 400),
    "zero-width raw prompt": (predict_path(), body(prompt("\u200b\u200d\ufeff", raw=True)), 400),
    "NUL-only raw prompt": (predict_path(), body(prompt("\x00\x00", raw=True)), 400),
    "rawPrompt parameter, empty prompt": (
        predict_path(),
        body({"instances": [{"prompt": ""}], "parameters": {"rawPrompt": True}}),
        400,
    ),
    "template renders to nothing": (predict_path("blank"), body(prompt("")), 400),
    "template renders to whitespace": (predict_path("blank"), body(prompt("  ")), 400),
    "second instance empty": (
        predict_path(),
        body({"instances": [{"prompt": "hi"}, {"prompt": "", "raw": True}]}),
        400,
    ),
    "empty messages turn": (predict_path(), body({"instances": [{"messages": user("")}]}), 400),
    "empty contents parts": (predict_path(), body(contents("", " ")), 400),
    "empty prompt on the Vertex route": (VERTEX, body(prompt("", raw=True)), 400),
    "empty chat message": (CHAT, body(chat(messages=user(""))), 400),
    "whitespace chat message after system": (
        CHAT,
        body(chat(messages=[{"role": "system", "content": "be kind"}, *user("\n ")])),
        400,
    ),
    # lone surrogates, anywhere a text goes
    "lone surrogate prompt": (predict_path(), body(prompt("\ud800")), 400),
    "lone low surrogate raw prompt": (predict_path(), body(prompt("a\udfffb", raw=True)), 400),
    "lone surrogate message": (
        predict_path(),
        body({"instances": [{"messages": user("x\ud83d")}]}),
        400,
    ),
    "lone surrogate contents": (predict_path(), body(contents("\udc00")), 400),
    "lone surrogate systemInstruction": (
        predict_path(),
        body(
            {
                "instances": [
                    {
                        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                        "systemInstruction": {"parts": [{"text": "\ud800"}]},
                    }
                ]
            }
        ),
        400,
    ),
    "lone surrogate stop sequence": (predict_path(), body(params(stopSequences=["\ud800"])), 400),
    "lone surrogate field name": (predict_path(), body({**GOOD, "\ud800": 1}), 400),
    "lone surrogate on the Vertex route": (VERTEX, body(prompt("\ud800")), 400),
    "lone surrogate chat message": (CHAT, body(chat(messages=user("\ud800"))), 400),
    "lone surrogate chat stop": (CHAT, body(chat(stop="\ud800")), 400),
    "lone surrogate chat model": (CHAT, body(chat(model="alpha\ud800")), 400),
    # numbers: out of range, not finite, wrong types
    "negative temperature": (predict_path(), body(params(temperature=-0.1)), 400),
    "temperature too high": (predict_path(), body(params(temperature=2.5)), 400),
    "temperature 1e999 (inf)": (
        predict_path(),
        raw(b'{"instances": [{"prompt": "x"}], "parameters": {"temperature": 1e999}}'),
        400,
    ),
    "temperature NaN": (predict_path(), body(params(temperature=float("nan"))), 400),
    "temperature -Infinity": (predict_path(), body(params(temperature=float("-inf"))), 400),
    "temperature a string": (predict_path(), body(params(temperature="0.5")), 400),
    "temperature a bool": (predict_path(), body(params(temperature=True)), 400),
    "temperature a huge integer": (predict_path(), body(params(temperature=10**400)), 400),
    "topP zero": (predict_path(), body(params(topP=0)), 400),
    "topP NaN": (predict_path(), body(params(topP=float("nan"))), 400),
    "topP inf": (predict_path(), body(params(topP=float("inf"))), 400),
    "topK negative": (predict_path(), body(params(topK=-1)), 400),
    "topK huge": (predict_path(), body(params(topK=10**30)), 400),
    "topK a float": (predict_path(), body(params(topK=1.5)), 400),
    "maxOutputTokens zero": (predict_path(), body(params(maxOutputTokens=0)), 400),
    "maxOutputTokens negative": (predict_path(), body(params(maxOutputTokens=-5)), 400),
    "maxOutputTokens huge": (predict_path(), body(params(maxOutputTokens=10**30)), 400),
    "maxOutputTokens inf": (predict_path(), body(params(maxOutputTokens=float("inf"))), 400),
    "maxOutputTokens NaN": (predict_path(), body(params(maxOutputTokens=float("nan"))), 400),
    "maxOutputTokens a float": (predict_path(), body(params(maxOutputTokens=8.5)), 400),
    "maxOutputTokens a bool": (predict_path(), body(params(maxOutputTokens=True)), 400),
    "maxOutputTokens of 5000 digits": (predict_path(), raw(BIG_INT), 400),
    "too many stop sequences": (predict_path(), body(params(stopSequences=["x"] * 17)), 400),
    "stop sequence too long": (predict_path(), body(params(stopSequences=["x" * 300])), 400),
    "stop sequences not a list": (predict_path(), body(params(stopSequences="x")), 400),
    "bad number on the Vertex route": (VERTEX, body(params(temperature=float("nan"))), 400),
    "chat max_tokens negative": (CHAT, body(chat(max_tokens=-1)), 400),
    "chat max_tokens inf": (CHAT, body(chat(max_tokens=float("inf"))), 400),
    "chat max_tokens huge": (CHAT, body(chat(max_tokens=10**30)), 400),
    "chat temperature NaN": (CHAT, body(chat(temperature=float("nan"))), 400),
    "chat temperature inf": (CHAT, body(chat(temperature=float("inf"))), 400),
    "chat top_p zero": (CHAT, body(chat(top_p=0)), 400),
    "chat n 2": (CHAT, body(chat(n=2)), 400),
    "chat n huge": (CHAT, body(chat(n=10**30)), 400),
    "chat stream": (CHAT, body(chat(stream=True)), 400),
    "chat too many stops": (CHAT, body(chat(stop=["x"] * 17)), 400),
    "chat stop too long": (CHAT, body(chat(stop="x" * 300)), 400),
    "chat stop a number": (CHAT, body(chat(stop=3)), 400),
    # malformed model references: 400; well-formed ones that name nothing: 404
    "ref @v0": ("predict:alpha@v0", body(GOOD), 400),
    "ref @-1": ("predict:alpha@-1", body(GOOD), 400),
    "ref @v01": ("predict:alpha@v01", body(GOOD), 400),
    "ref @0": ("predict:alpha@0", body(GOOD), 400),
    "ref nothing after @": ("predict:alpha@", body(GOOD), 400),
    "ref no name": ("predict:@v1", body(GOOD), 400),
    "ref two @": ("predict:alpha@v1@v2", body(GOOD), 400),
    "ref upper-case V": ("predict:alpha@V1", body(GOOD), 400),
    "ref unknown alias": ("predict:alpha@staging", body(GOOD), 400),
    "ref bare v": ("predict:alpha@v", body(GOOD), 400),
    "ref trailing space": ("predict:alpha@v1%20", body(GOOD), 400),
    "ref name with a space": ("predict:al%20pha", body(GOOD), 400),
    "ref trailing newline": ("predict:alpha%0A", body(GOOD), 400),
    "ref version with newline": ("predict:alpha@v1%0A", body(GOOD), 400),
    "ref upper-case name": ("predict:ALPHA", body(GOOD), 400),
    "ref dot dot": ("predict:a..b", body(GOOD), 400),
    "ref name too long": ("predict:" + "a" * 65, body(GOOD), 400),
    "ref 30-digit version": ("predict:alpha@v" + "9" * 30, body(GOOD), 400),
    "ref 5000-digit version": ("predict:alpha@v" + "9" * 5000, body(GOOD), 400),
    "unknown model": ("predict:nobody", body(GOOD), 404),
    "unknown model, bad version": ("predict:nobody@v0", body(GOOD), 400),
    "unknown version": ("predict:alpha@v9", body(GOOD), 404),
    "unknown long version": ("predict:alpha@99999999999", body(GOOD), 404),
    "no previous version": ("predict:alpha@previous", body(GOOD), 404),
    "chat ref @v0": (CHAT, body(chat(model="alpha@v0")), 400),
    "chat ref @-1": (CHAT, body(chat(model="alpha@-1")), 400),
    "chat ref empty": (CHAT, body(chat(model="")), 400),
    "chat ref with spaces": (CHAT, body(chat(model="my model")), 400),
    "chat ref not a string": (CHAT, body(chat(model=3)), 400),
    "chat unknown model": (CHAT, body(chat(model="nobody")), 404),
    # the body's shape
    "empty body": (predict_path(), raw(b""), 400),
    "null body": (predict_path(), raw(b"null"), 400),
    "invalid UTF-8": (predict_path(), raw(b'{"instances": [{"prompt": "\xff\xfe"}]}'), 400),
    "truncated JSON": (predict_path(), raw(b'{"instances": [{"prompt": "x"'), 400),
    "deeply nested JSON": (predict_path(), raw(DEEP), 400),
    "text/plain body": (predict_path(), raw(json.dumps(GOOD).encode(), "text/plain"), 400),
    "bad Content-Length": (
        predict_path(),
        {"content": b"{}", "headers": {"content-type": "application/json", "content-length": "x"}},
        400,
    ),
    "instance empty object": (predict_path(), body({"instances": [{}]}), 400),
    "instance not an object": (predict_path(), body({"instances": ["hi"]}), 400),
    "prompt and messages": (
        predict_path(),
        body({"instances": [{"prompt": "x", "messages": user("y")}]}),
        400,
    ),
    "raw with messages": (
        predict_path(),
        body({"instances": [{"messages": user("y"), "raw": True}]}),
        400,
    ),
    "messages end with assistant": (
        predict_path(),
        body({"instances": [{"messages": [*user("a"), {"role": "assistant", "content": "b"}]}]}),
        400,
    ),
    "message role tool": (
        predict_path(),
        body({"instances": [{"messages": [{"role": "tool", "content": "b"}]}]}),
        400,
    ),
    "message content a list": (
        predict_path(),
        body({"instances": [{"messages": [{"role": "user", "content": [{"text": "b"}]}]}]}),
        400,
    ),
    "contents role assistant": (
        predict_path(),
        body({"instances": [{"contents": [{"role": "assistant", "parts": [{"text": "b"}]}]}]}),
        400,
    ),
    "contents no parts": (
        predict_path(),
        body({"instances": [{"contents": [{"role": "user", "parts": []}]}]}),
        400,
    ),
    "parameters null": (predict_path(), body({**GOOD, "parameters": None}), 400),
    "parameters a list": (predict_path(), body({**GOOD, "parameters": []}), 400),
    "unknown parameter": (predict_path(), body(params(temprature=1)), 400),
    "too many instances": (predict_path(), body({"instances": [{"prompt": "x"}] * 5}), 400),
    "too many tokens": (predict_path(), body(params(maxOutputTokens=17)), 400),
    "body too large": (predict_path(), body(prompt("x" * 400_000)), 413),
    "shape on the Vertex route": (VERTEX, body({"instances": []}), 400),
    "chat no messages": (CHAT, body(chat(messages=[])), 400),
    "chat only a system message": (
        CHAT,
        body(chat(messages=[{"role": "system", "content": "x"}])),
        400,
    ),
    "chat no model": (CHAT, body({"messages": user("x")}), 400),
    "chat messages an object": (CHAT, body(chat(messages={"role": "user"})), 400),
    "chat body a list": (CHAT, body([GOOD_CHAT]), 400),
    # methods and paths
    "GET on predict": ("GET " + predict_path(), {}, 405),
    "unknown path": ("/v1/endpoints", body(GOOD), 404),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    adapter = save_random_lora(BASE, root / "adapter", seed=1)
    registry = root / "registry"
    meta = {"base_model": BASE}
    register_version(registry, "alpha", adapter, meta, promote=True)
    register_version(
        registry, "blank", adapter, {**meta, "prompt_template": "{input_text}"}, promote=True
    )
    settings = ServeSettings(
        registry_dir=registry,
        max_instances=4,
        max_new_tokens=16,
        max_body_bytes=300_000,
        predict_route=VERTEX,
        default_model="alpha",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def send(client: TestClient, route: str, kwargs: dict):
    if route.startswith("predict:"):
        return client.post(predict_path(route.removeprefix("predict:")), **kwargs)
    method, _, path = route.rpartition(" ")
    return client.request(method or "POST", path, **kwargs)


def assert_error_format(response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error"}
    assert set(error["error"]) == {"code", "message", "status"}
    assert error["error"]["code"] == status
    assert error["error"]["status"] == STATUS_NAMES[status]
    message = error["error"]["message"]
    assert isinstance(message, str) and message.strip() and "\n" not in message
    for trace in ("Traceback", 'File "', "most recent call"):
        assert trace not in response.text
    return message


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert {route for route, _, _ in CASES.values()} >= {VERTEX, CHAT, predict_path()}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_request_is_a_4xx_in_the_error_format_and_the_server_keeps_serving(client, name):
    route, kwargs, status = CASES[name]
    assert 400 <= status < 500
    assert_error_format(send(client, route, kwargs), status)
    if route == CHAT:
        good = client.post(CHAT, json=GOOD_CHAT)
    else:
        good = client.post(VERTEX if route == VERTEX else predict_path(), json=GOOD)
    assert good.status_code == 200, good.text


@pytest.mark.parametrize("ref", ["alpha@v0", "alpha@-1", "alpha@v01", "alpha@", "@v1", "a b"])
def test_a_malformed_reference_is_named_in_a_one_line_message(client, ref):
    message = assert_error_format(client.post(predict_path(ref), json=GOOD), 400)
    assert message.startswith(f"bad model reference {ref!r}")
    message = assert_error_format(client.post(CHAT, json=chat(model=ref)), 400)
    assert message.startswith(f"bad model reference {ref!r}")


def test_messages_name_the_field_and_escape_what_they_quote(client):
    message = assert_error_format(client.post(predict_path(), **body(prompt("\ud800"))), 400)
    assert "instances.0.prompt" in message and "lone surrogate (U+D800)" in message
    message = assert_error_format(client.post(predict_path("alpha%0A"), json=GOOD), 400)
    assert message.startswith("bad model reference 'alpha\\n'")
    message = assert_error_format(client.post(predict_path("blank"), **body(prompt(" "))), 400)
    assert "instances.0" in message and "empty" in message
    message = assert_error_format(client.post(CHAT, **body(chat(temperature=1e999))), 400)
    assert "temperature" in message and "finite" in message


@pytest.mark.parametrize("temperature", [1e-30, 5e-324, 1e-4])
def test_a_tiny_positive_temperature_decodes_greedily(client, temperature):
    greedy = client.post(predict_path(), json=params(temperature=0, maxOutputTokens=6))
    tiny = client.post(
        predict_path(), json=params(temperature=temperature, topK=5, maxOutputTokens=6)
    )
    assert greedy.status_code == tiny.status_code == 200, tiny.text
    assert tiny.json()["predictions"] == greedy.json()["predictions"]
    greedy_chat = client.post(CHAT, json=chat(temperature=0, max_tokens=6))
    tiny_chat = client.post(CHAT, json=chat(temperature=temperature, max_tokens=6))
    assert tiny_chat.status_code == 200, tiny_chat.text
    assert tiny_chat.json()["choices"] == greedy_chat.json()["choices"]


def test_a_prompt_of_no_token_is_a_400_for_its_request_alone(client, monkeypatch):
    """A tokenizer may leave nothing of a visible text; that request alone is refused."""
    pool = client.app.state.pool
    real = pool.empty_prompt

    def empty_prompt(version, prompts):
        found = next((i for i, p in enumerate(prompts) if "nothing" in p), None)
        return found if found is not None else real(version, prompts)

    monkeypatch.setattr(pool, "empty_prompt", empty_prompt)
    two = {"instances": [{"prompt": "hi"}, {"prompt": "nothing"}]}
    message = assert_error_format(client.post(predict_path(), json=two), 400)
    assert message.startswith("instances[1]: the prompt is empty once tokenised")
    chat_message = assert_error_format(client.post(CHAT, json=chat(messages=user("nothing"))), 400)
    assert chat_message.startswith("messages: the prompt is empty once tokenised")
    assert client.post(predict_path(), json=GOOD).status_code == 200
