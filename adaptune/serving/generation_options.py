"""How to decode one request's prompts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationOptions:
    """How to decode one request's prompts (requests with equal options batch together).

    Attributes:
        max_new_tokens: Most tokens generated per answer.
        temperature: 0 decodes greedily; above 0 samples.
        top_p: Nucleus sampling threshold.
        top_k: Top-k sampling (0: off).
    """

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
