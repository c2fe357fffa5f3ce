"""Evaluation calls: batched generateContent through the real client against the fake server."""

from __future__ import annotations

import pytest
from fake_gemini import FakeGemini
from google.oauth2.credentials import Credentials

from adaptune.evaluation.metrics import score
from adaptune.vertex.gemini_client import gemini_client
from adaptune.vertex.gemini_generation import GenerationFailed, generate_batch, generate_for_models
from adaptune.vertex.gemini_settings import GeminiTuningSettings

PARENT = "projects/test-project/locations/us-central1"
TUNED = f"{PARENT}/endpoints/7001"
PRODUCTION = f"{PARENT}/endpoints/6001"
EXAMPLES = [
    {"input_text": f"Ticket {i}: my invoice is late", "output_text": "billing"} for i in range(12)
]
CHAT = {
    "system": "Sort tickets.",
    "context": [
        {"role": "user", "text": "hello"},
        {"role": "model", "text": "hi, what is the ticket?"},
    ],
    "input_text": "my router is down",
    "output_text": "technical",
}


@pytest.fixture
def fake():
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fake):
    return gemini_client(
        "test-project", "us-central1", Credentials(token="test"), base_url=fake.url
    )


def settings(**values) -> GeminiTuningSettings:
    return GeminiTuningSettings(**{"concurrency": 4, "max_attempts": 4, **values})


def test_429_then_success_is_retried_with_backoff_and_counted(fake, client):
    fake.answer = lambda model, body: "billing"
    fake.fail("POST", ":generateContent", code=429, times=2)
    fake.fail("POST", ":generateContent", code=503, times=1)
    sleeps: list[float] = []
    outcome = generate_batch(
        client, TUNED, EXAMPLES, settings(concurrency=1), sleep=sleeps.append, seed=1
    )
    assert outcome.outputs == ["billing"] * len(EXAMPLES)
    assert outcome.failures == 0 and outcome.retries == 3
    assert len(sleeps) == 3
    # Full jitter below a doubling cap: 1 s, then 2 s, then 4 s at most (per example: the
    # first example took all three retries).
    assert 0 <= sleeps[0] <= 1 and 0 <= sleeps[1] <= 2 and 0 <= sleeps[2] <= 4
    assert len(fake.calls("POST", f"{TUNED}:generateContent")) == len(EXAMPLES) + 3
    predictions, references = outcome.answered([e["output_text"] for e in EXAMPLES])
    assert score(predictions, references)["exact_match"] == 1.0


def test_the_request_carries_the_conversation_system_instruction_and_settings(fake, client):
    generate_batch(client, TUNED, [CHAT], settings(temperature=0.0, max_output_tokens=64))
    (call,) = fake.calls("POST", ":generateContent")
    assert call.path == f"/v1beta1/{TUNED}:generateContent"
    assert call.body["contents"] == [
        {"role": "user", "parts": [{"text": "hello"}]},
        {"role": "model", "parts": [{"text": "hi, what is the ticket?"}]},
        {"role": "user", "parts": [{"text": "my router is down"}]},
    ]
    assert call.body["systemInstruction"]["parts"] == [{"text": "Sort tickets."}]
    assert call.body["generationConfig"] == {"temperature": 0.0, "maxOutputTokens": 64}
    assert "technical" not in str(call.body)  # the reference answer is never sent


def test_the_tuned_endpoint_the_base_model_and_production_are_each_called(fake, client):
    fake.answer = lambda model, body: model.rsplit("/", 1)[-1]
    outcomes = generate_for_models(
        client,
        {"tuned": TUNED, "base": "gemini-2.5-flash", "production": PRODUCTION},
        EXAMPLES[:3],
        settings(),
        log=lambda line: None,
    )
    assert outcomes["tuned"].outputs == ["7001"] * 3
    assert outcomes["base"].outputs == ["gemini-2.5-flash"] * 3
    assert outcomes["production"].outputs == ["6001"] * 3
    assert len(fake.calls("POST", f"{PARENT}/publishers/google/models/gemini-2.5-flash:")) == 3


def test_no_more_calls_are_in_flight_than_the_concurrency_setting(fake, client):
    fake.delay_seconds = 0.05
    generate_batch(client, TUNED, EXAMPLES, settings(concurrency=3), log=lambda line: None)
    assert fake.max_in_flight == 3


def test_failures_within_the_bound_are_counted_and_past_it_fail_the_step(fake, client):
    # 20 examples, max_failed_fraction 0.1: two may fail for good, a third fails the step.
    examples = [{"input_text": f"q{i}", "output_text": "a"} for i in range(20)]
    fake.fail("POST", ":generateContent", code=429, times=2 * 2)  # two examples, 2 attempts each
    log: list[str] = []
    outcome = generate_batch(
        client,
        TUNED,
        examples,
        settings(concurrency=1, max_attempts=2, max_failed_fraction=0.1),
        log=log.append,
        sleep=lambda s: None,
    )
    assert outcome.failures == 2 and outcome.outputs[:2] == [None, None]
    assert all(o is not None for o in outcome.outputs[2:])
    assert outcome.errors[0].startswith("example 1: 429")
    assert outcome.summary()["examples"] == 20 and "outputs" not in outcome.summary()
    assert "18/20 answered, 2 failed" in log[-1]

    fake.fail("POST", ":generateContent", code=503, times=3 * 2)
    with pytest.raises(GenerationFailed, match=r"^3 of 20 generateContent calls .* failed") as err:
        generate_batch(
            client,
            TUNED,
            examples,
            settings(concurrency=1, max_attempts=2, max_failed_fraction=0.1),
            log=lambda line: None,
            sleep=lambda s: None,
        )
    assert "\n" not in str(err.value)


def test_an_error_that_is_not_retryable_fails_the_example_at_once(fake, client):
    fake.fail("POST", ":generateContent", code=400, times=1)
    outcome = generate_batch(
        client,
        TUNED,
        EXAMPLES,
        settings(concurrency=1, max_failed_fraction=0.5),
        log=lambda line: None,
        sleep=lambda s: pytest.fail("a 400 is not retried"),
    )
    assert outcome.failures == 1 and outcome.retries == 0
    assert len(fake.calls("POST", ":generateContent")) == len(EXAMPLES)
