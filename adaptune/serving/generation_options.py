"""How to decode one request's prompts, and what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adaptune.errors import UserError

if TYPE_CHECKING:
    from adaptune.evaluation.generation import TokenCounts

GREEDY_BELOW = 1e-3
"""Temperatures above 0 but below this decode greedily, as 0 does.

Sampling at such a temperature picks the likeliest token anyway, and dividing the logits by a
tiny temperature (``1e-30``) overflows them to infinity, which sampling cannot draw from.
"""


@dataclass(frozen=True)
class GenerationOptions:
    """How to decode one request's prompts (requests with equal options batch together).

    Attributes:
        max_new_tokens: Most tokens generated per answer.
        temperature: 0 (or anything below ``GREEDY_BELOW``) decodes greedily; above, samples.
        top_p: Nucleus sampling threshold.
        top_k: Top-k sampling (0: off).
        stop: Text sequences that end an answer (left out of it).
    """

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if 0 < self.temperature < GREEDY_BELOW:
            object.__setattr__(self, "temperature", 0.0)


class EmptyPrompt(UserError):
    """A request's prompt that encodes to no token at all: nothing for the model to continue.

    Attributes:
        index: Which of the request's prompts.
    """

    def __init__(self, index: int) -> None:
        super().__init__(f"prompt {index} is empty once tokenised: send some text to answer")
        self.index = index


@dataclass(frozen=True)
class Answer:
    """One generated answer.

    Attributes:
        text: The answer.
        counts: Its prompt's and its own tokens, and whether it stopped before the limit.
    """

    text: str
    counts: TokenCounts
