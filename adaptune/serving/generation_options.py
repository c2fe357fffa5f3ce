"""How to decode one request's prompts, and what comes back."""

from __future__ import annotations

from dataclasses import dataclass

from adaptune.evaluation.generation import TokenCounts


@dataclass(frozen=True)
class GenerationOptions:
    """How to decode one request's prompts (requests with equal options batch together).

    Attributes:
        max_new_tokens: Most tokens generated per answer.
        temperature: 0 decodes greedily; above 0 samples.
        top_p: Nucleus sampling threshold.
        top_k: Top-k sampling (0: off).
        stop: Text sequences that end an answer (left out of it).
    """

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """One generated answer.

    Attributes:
        text: The answer.
        counts: Its prompt's and its own tokens, and whether it stopped before the limit.
    """

    text: str
    counts: TokenCounts
