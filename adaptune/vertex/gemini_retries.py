"""Retrying a Gemini API call the service asks to be retried: exponential backoff with jitter.

Vertex AI answers 429 (RESOURCE_EXHAUSTED: quota or shared capacity) and 503 (UNAVAILABLE)
when a call may succeed later, and 500/504 for transient server faults; Google's guidance for
429 is a retry with truncated exponential backoff
(https://cloud.google.com/vertex-ai/generative-ai/docs/provisioned-throughput/error-code-429,
https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/api-errors). Any other
error is final at once. The google-genai client's own retries stay off (:mod:`gemini_client`),
so one place counts attempts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

RETRY_CODES = frozenset({429, 500, 503, 504})


def error_code(exc: BaseException) -> int | None:
    """The HTTP status of a google-genai API error (None for any other exception)."""
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        return int(exc.code) if exc.code is not None else None
    return None


def is_retryable(exc: BaseException) -> bool:
    """Whether the call that raised ``exc`` may succeed if tried again."""
    return error_code(exc) in RETRY_CODES


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts.

    Attributes:
        max_attempts: Attempts in all (1: no retry).
        initial_seconds: Wait before the second attempt (before jitter).
        max_seconds: Longest wait.
        multiplier: Growth of the wait per attempt.
    """

    max_attempts: int = 6
    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    multiplier: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter."""
        cap = min(self.max_seconds, self.initial_seconds * self.multiplier ** (attempt - 1))
        return rng.uniform(0, cap)


def call_with_retries(
    call: Callable[[], T],
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tuple[T, int]:
    """Call ``call`` until it succeeds, retrying retryable errors up to ``backoff.max_attempts``.

    Returns:
        The result and the number of attempts it took.

    Raises:
        Exception: The last error, once attempts are spent or when it is not retryable.
    """
    rng = rng or random.Random()
    attempt = 1
    while True:
        try:
            return call(), attempt
        except Exception as exc:
            if attempt >= backoff.max_attempts or not is_retryable(exc):
                raise
            wait = backoff.delay(attempt, rng)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
            attempt += 1
