"""Evaluation settings: one typed, validated config, passed to the pipeline as one dict."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from adaptune.errors import UserError
from adaptune.settings_dict import from_pipeline_dict

INT_FIELDS = ("max_new_tokens", "batch_size", "seed", "report_examples", "max_length")


@dataclass(frozen=True)
class EvaluationSettings:
    """How answers are generated and how much of them the report shows.

    Attributes:
        max_new_tokens: Most tokens generated per answer; 0 picks the longest reference (in the
            model's tokens) plus a small margin.
        temperature: 0 decodes greedily; above 0 samples at that temperature (no top-k or
            top-p cut), seeded with ``seed`` so a rerun gives the same answers.
        batch_size: Examples per forward pass, for generation and for the eval loss.
        seed: Seed of the sampling (unused when ``temperature`` is 0).
        report_examples: How many examples the report shows side by side: those where the
            models' answers score most differently.
        max_length: Most tokens per example; prompts are cut from the left beyond it. Use the
            tuning step's ``training.max_length`` so the eval loss is computed as in training.
    """

    max_new_tokens: int = field(default=0, metadata={"help": "Most new tokens (0: auto)."})
    temperature: float = field(default=0.0, metadata={"help": "0: greedy; > 0: seeded sampling."})
    batch_size: int = field(default=32, metadata={"help": "Examples per forward pass."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampling."})
    report_examples: int = field(default=20, metadata={"help": "Examples shown in the report."})
    max_length: int = field(default=256, metadata={"help": "Most tokens per example."})

    def __post_init__(self) -> None:
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"evaluation.{name} must be a non-negative integer, got {value!r}")
        temperature = self.temperature
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not math.isfinite(temperature)
            or temperature < 0
        ):
            raise UserError(
                "evaluation.temperature must be a number >= 0 (0: greedy), "
                f"got {self.temperature!r}"
            )
        if self.batch_size < 1:
            raise UserError("evaluation.batch_size must be >= 1")
        if self.max_length < 8:
            raise UserError(f"evaluation.max_length must be >= 8, got {self.max_length}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> EvaluationSettings:
        """Build from the pipeline's ``evaluation`` dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, "evaluation setting", INT_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)

    @property
    def greedy(self) -> bool:
        """Whether answers are decoded greedily."""
        return self.temperature == 0
