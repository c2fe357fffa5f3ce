"""Chat models end to end: tune on chat data with the model's own template, evaluate, register,
and serve; every eval example's answer through ``adaptune serve`` (a Vertex ``messages``
instance and ``/v1/chat/completions``) equals the evaluation's answer, for each template style
and for T5 (template format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_models import STYLES, build_chat_checkpoint
from conftest import GOOD_DATA, SAMPLE
from fastapi.testclient import TestClient

from adaptune.data.chat import ROLES, conversation
from adaptune.data.formatting import format_text_to_text
from adaptune.data.settings import DataSettings
from adaptune.data.validation import validate_dataset
from adaptune.evaluation.evaluate import EvaluationPaths, evaluate_models
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.registry import register_version
from adaptune.serving.app import create_app
from adaptune.serving.settings import ServeSettings
from adaptune.tuning.adapter import tune_adapter
from adaptune.tuning.methods import LoraMethod
from adaptune.tuning.settings import TrainingSettings

pytestmark = pytest.mark.slow
SYSTEM = "Route the ticket to one team."
NEW_TOKENS = 6


def _messages(record: dict, system: str) -> list[dict[str, str]]:
    """A validated eval record as the OpenAI-style messages a client sends."""
    return conversation(record, system)


def _contents(messages: list[dict[str, str]]) -> dict:
    """The same conversation as a Gemini-style instance."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    gemini_role = {v: k for k, v in ROLES.items()}
    instance = {
        "contents": [
            {"role": gemini_role[m["role"]], "parts": [{"text": m["content"]}]}
            for m in messages
            if m["role"] != "system"
        ]
    }
    if system:
        instance["systemInstruction"] = {"parts": [{"text": system[0]}]}
    return instance


def _tuned_and_served(tmp_path: Path, base_model: str, prompt_format: str) -> dict[str, int]:
    train = tmp_path / "train.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:64]))
    valid = tmp_path / "valid"
    settings = DataSettings(min_examples=8, system_instruction=SYSTEM, prompt_format=prompt_format)
    validate_dataset(str(train), str(GOOD_DATA / "openai_chat.jsonl"), valid, settings, base_model)
    formatted = format_text_to_text(
        valid,
        tmp_path / "formatted",
        prompt_template="{input_text}\nTeam:",
        base_model=base_model,
        prompt_format=prompt_format,
        system_instruction=SYSTEM,
    )
    adapter = tmp_path / "adapter"
    tune_adapter(
        formatted.files["train"],
        adapter,
        base_model,
        TrainingSettings(steps=60, learning_rate=0.01, batch_size=16),
        LoraMethod(),
        show_progress=False,
    )
    evaluation = evaluate_models(
        formatted.files["eval"],
        adapter,
        base_model,
        EvaluationPaths.in_directory(tmp_path / "eval"),
        settings=EvaluationSettings(max_new_tokens=NEW_TOKENS, report_examples=2),
        show_progress=False,
    )
    predictions = [
        json.loads(line) for line in evaluation.paths.predictions.read_text().splitlines()
    ]
    registry = tmp_path / "registry"
    register_version(
        registry,
        "router",
        adapter,
        {
            "base_model": base_model,
            "prompt_template": formatted.prompt_style.template,
            "prompt_style": formatted.prompt_style.to_dict(),
        },
        promote=True,
    )
    assert all(p["tuned"] for p in predictions), "tuned answers are text, not an empty turn"
    records = [json.loads(line) for line in (valid / "eval.jsonl").read_text().splitlines()]
    agree = {"messages": 0, "contents": 0, "chat_completions": 0, "examples": len(records)}
    with TestClient(create_app(ServeSettings(registry_dir=registry))) as client:
        for record, predicted in zip(records, predictions, strict=True):
            messages = _messages(record, SYSTEM)
            parameters = {"maxOutputTokens": NEW_TOKENS}
            for shape, instance in (
                ("messages", {"messages": messages}),
                ("contents", _contents(messages)),
            ):
                reply = client.post(
                    "/v1/endpoints/router:predict",
                    json={"instances": [instance], "parameters": parameters},
                )
                assert reply.status_code == 200, reply.text
                agree[shape] += reply.json()["predictions"][0]["content"] == predicted["tuned"]
            reply = client.post(
                "/v1/chat/completions",
                json={"model": "router", "messages": messages, "max_tokens": NEW_TOKENS},
            )
            assert reply.status_code == 200, reply.text
            answer = reply.json()["choices"][0]["message"]["content"]
            agree["chat_completions"] += answer == predicted["tuned"]
    return agree


@pytest.mark.parametrize("style", STYLES)
def test_served_answers_equal_the_evaluation_for_every_template_style(tmp_path, style):
    base_model = str(build_chat_checkpoint(style, tmp_path / style))
    agree = _tuned_and_served(tmp_path, base_model, "auto")
    n = agree.pop("examples")
    print(f"{style}: {agree} of {n}")
    assert agree == {"messages": n, "contents": n, "chat_completions": n}, agree


def test_served_answers_equal_the_evaluation_for_t5_in_the_template_format(tmp_path):
    agree = _tuned_and_served(tmp_path, "builtin:tiny-t5", "auto")
    n = agree.pop("examples")
    assert agree == {"messages": n, "contents": n, "chat_completions": n}, agree
