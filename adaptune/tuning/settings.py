"""Training settings: steps, learning rate, batch size, sequence length and seed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adaptune.errors import UserError


@dataclass(frozen=True)
class TrainingSettings:
    """How long and how fast to train.

    Attributes:
        steps: Optimizer steps.
        learning_rate: Peak learning rate (linear warmup, then linear decay to zero).
        batch_size: Examples per step.
        seed: Seeds weight init of the adapter, batch order and dropout.
        max_length: Most tokens per example; prompts are cut from the left beyond it.
        warmup_fraction: Share of steps spent warming up the learning rate.
    """

    steps: int = 300
    learning_rate: float = 3e-3
    batch_size: int = 16
    seed: int = 0
    max_length: int = 256
    warmup_fraction: float = 0.05

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"train_steps must be >= 1, got {self.steps}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}"),
            (0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)
