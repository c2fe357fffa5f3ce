"""Evaluation answers from Gemini: batched ``generateContent`` calls with bounded concurrency.

The same examples go to each compared model: the tuned model's endpoint
(``projects/P/locations/L/endpoints/E``), the base model (``gemini-2.5-flash``, which the SDK
calls as ``publishers/google/models/gemini-2.5-flash``) and the production version's endpoint.
A thread pool keeps at most ``concurrency`` calls in flight; each call is retried on 429 and
503 (and 500, 504) with exponential backoff and jitter (:mod:`gemini_retries`). An example
whose calls all fail is counted, and has no answer; the batch fails only when more than
``max_failed_fraction`` of the examples failed.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from adaptune.errors import UserError
from adaptune.vertex.gemini_retries import Backoff, call_with_retries
from adaptune.vertex.gemini_settings import GeminiTuningSettings

if TYPE_CHECKING:
    from google.genai import Client

FIRST_ERRORS = 5


class GenerationFailed(UserError):
    """More evaluation calls failed than ``max_failed_fraction`` allows."""


@dataclass
class GenerationOutcome:
    """One model's answers to a batch of examples.

    Attributes:
        model: The model or endpoint called.
        outputs: The answer to each example, in order; None where every attempt failed.
        failures: Examples without an answer.
        retries: Attempts beyond the first, over all examples.
        errors: The first errors, as text (status code and message).
        seconds: Wall time of the batch.
    """

    model: str
    outputs: list[str | None]
    failures: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def answered(self, references: Sequence[str]) -> tuple[list[str], list[str]]:
        """(answers, references) of the examples that got an answer, for the metrics."""
        pairs = [(o, r) for o, r in zip(self.outputs, references, strict=True) if o is not None]
        return [o for o, _ in pairs], [r for _, r in pairs]

    def summary(self) -> dict[str, Any]:
        """Counts for the report (without the answers)."""
        values = asdict(self)
        values.pop("outputs")
        values["examples"] = len(self.outputs)
        return values


def example_request(
    example: dict[str, Any], system_instruction: str = ""
) -> tuple[list[dict[str, Any]], str]:
    """The ``contents`` and system instruction asking a normalised example's question."""
    contents = [
        {"role": t["role"], "parts": [{"text": t["text"]}]} for t in example.get("context") or []
    ]
    contents.append({"role": "user", "parts": [{"text": example["input_text"]}]})
    return contents, example.get("system") or system_instruction


def generation_config(settings: GeminiTuningSettings, system: str) -> Any:
    """The ``GenerateContentConfig`` of an evaluation call."""
    from google.genai import types

    return types.GenerateContentConfig(
        system_instruction=system or None,
        temperature=settings.temperature,
        max_output_tokens=settings.max_output_tokens,
    )


def generate_batch(
    client: Client,
    model: str,
    examples: Sequence[dict[str, Any]],
    settings: GeminiTuningSettings,
    system_instruction: str = "",
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    seed: int | None = None,
) -> GenerationOutcome:
    """Ask ``model`` every example's question; at most ``settings.concurrency`` at a time.

    Args:
        client: A google-genai client for Vertex AI.
        model: An endpoint (``projects/.../endpoints/E``) or a base model id.
        examples: Normalised examples (their ``output_text`` is not sent).
        settings: Concurrency, attempts, failure bound and generation settings.
        system_instruction: For examples without their own system text.
        log: Where retry and summary lines go.
        sleep: Waits between attempts (tests pass a fake).
        seed: Seed of the backoff jitter (None: random).

    Returns:
        The answers and counts.

    Raises:
        GenerationFailed: If more than ``settings.max_failed_fraction`` of the examples got
            no answer.
    """
    backoff = Backoff(max_attempts=settings.max_attempts)
    start = time.monotonic()
    rng = random.Random(seed)
    jitter_seeds = [rng.random() for _ in examples]

    def ask(index: int) -> tuple[str | None, int, str]:
        contents, system = example_request(examples[index], system_instruction)
        config = generation_config(settings, system)

        def call() -> str:
            response = client.models.generate_content(model=model, contents=contents, config=config)
            return response.text or ""

        retries = 0

        def on_retry(attempt: int, exc: BaseException, wait: float) -> None:
            nonlocal retries
            retries += 1

        try:
            text, _ = call_with_retries(
                call, backoff, sleep, random.Random(jitter_seeds[index]), on_retry
            )
            return text, retries, ""
        except Exception as exc:
            return None, retries, f"example {index + 1}: {exc}"

    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        results = list(pool.map(ask, range(len(examples))))
    outcome = GenerationOutcome(model=model, outputs=[r[0] for r in results])
    outcome.retries = sum(r[1] for r in results)
    failed = [r[2] for r in results if r[0] is None]
    outcome.failures = len(failed)
    outcome.errors = failed[:FIRST_ERRORS]
    outcome.seconds = time.monotonic() - start
    log(
        f"{model}: {len(examples) - outcome.failures}/{len(examples)} answered, "
        f"{outcome.failures} failed, {outcome.retries} retries, {outcome.seconds:.1f} s"
    )
    allowed = math.floor(settings.max_failed_fraction * len(examples))
    if outcome.failures > allowed:
        first = failed[0] if failed else ""
        raise GenerationFailed(
            f"{outcome.failures} of {len(examples)} generateContent calls to {model} failed, "
            f"more than max_failed_fraction={settings.max_failed_fraction:g} allows "
            f"({allowed}); first: {first}"
        )
    return outcome


def generate_for_models(
    client: Client,
    models: dict[str, str],
    examples: Sequence[dict[str, Any]],
    settings: GeminiTuningSettings,
    system_instruction: str = "",
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, GenerationOutcome]:
    """Answers of each compared model (``{"tuned": endpoint, "base": model, ...}``), by name.

    Raises:
        GenerationFailed: If any model's batch fails past the bound.
    """
    return {
        name: generate_batch(client, model, examples, settings, system_instruction, log, sleep)
        for name, model in models.items()
    }
