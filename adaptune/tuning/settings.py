"""Training settings: one typed, validated config, passed to the pipeline as one dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from adaptune.data.encoding import DEFAULT_MAX_LENGTH
from adaptune.errors import UserError
from adaptune.settings_dict import from_pipeline_dict

INT_FIELDS = (
    "steps",
    "epochs",
    "batch_size",
    "grad_accum",
    "seed",
    "max_length",
    "max_batch_tokens",
    "eval_every",
    "patience",
    "checkpoint_every",
)


@dataclass(frozen=True)
class TrainingSettings:
    """How long and how fast to train, when to evaluate, checkpoint and stop.

    Attributes:
        steps: Optimizer steps; 0 means train for ``epochs`` instead.
        epochs: Passes over the training data, used when ``steps`` is 0.
        learning_rate: Peak learning rate.
        batch_size: Examples per forward pass.
        grad_accum: Forward passes per optimizer step (effective batch = batch_size × grad_accum).
        schedule: ``linear`` or ``cosine`` decay after warmup.
        warmup_fraction: Share of steps spent warming up the learning rate from zero.
        max_grad_norm: Gradient clipping norm.
        seed: Seeds adapter init, batch order and dropout.
        max_length: Most tokens per example; prompts are cut from the left beyond it.
        max_batch_tokens: Most padded tokens per forward pass: a batch of long examples is run
            in chunks whose gradients add up to the whole batch's (0: no limit). Bounds peak
            memory by tokens rather than by the longest batch.
        eval_every: Compute eval loss every N steps (0: only at the end).
        patience: Stop after this many evaluations without improvement (0: never stop early).
        checkpoint_every: Write a resumable checkpoint every N steps (0: never).
        divergence_factor: Stop when the loss exceeds this multiple of the first loss.
    """

    steps: int = field(default=300, metadata={"help": "Optimizer steps (0: use epochs)."})
    epochs: int = field(default=1, metadata={"help": "Passes over the data if steps is 0."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak learning rate."})
    batch_size: int = field(default=16, metadata={"help": "Examples per forward pass."})
    grad_accum: int = field(default=1, metadata={"help": "Forward passes per optimizer step."})
    schedule: Literal["linear", "cosine"] = field(
        default="linear", metadata={"help": "Decay after warmup: 'linear' or 'cosine'."}
    )
    warmup_fraction: float = field(default=0.05, metadata={"help": "Share of steps warming up."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    max_length: int = field(
        default=DEFAULT_MAX_LENGTH, metadata={"help": "Most tokens per example."}
    )
    max_batch_tokens: int = field(
        default=4096, metadata={"help": "Most padded tokens per forward pass (0: no limit)."}
    )
    eval_every: int = field(default=50, metadata={"help": "Eval loss every N steps (0: end)."})
    patience: int = field(default=0, metadata={"help": "Evals without improvement (0: off)."})
    checkpoint_every: int = field(default=50, metadata={"help": "Checkpoint every N steps."})
    divergence_factor: float = field(
        default=10.0, metadata={"help": "Stop when loss > this × the first loss."}
    )

    def __post_init__(self) -> None:
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"training.{name} must be a non-negative integer, got {value!r}")
        checks = [
            (self.steps > 0 or self.epochs > 0, "training.steps or training.epochs must be > 0"),
            (self.learning_rate > 0, f"training.learning_rate must be > 0: {self.learning_rate}"),
            (self.batch_size >= 1, "training.batch_size must be >= 1"),
            (self.grad_accum >= 1, "training.grad_accum must be >= 1"),
            (self.max_length >= 8, "training.max_length must be >= 8"),
            (self.schedule in ("linear", "cosine"), "training.schedule must be linear or cosine"),
            (0 <= self.warmup_fraction < 1, "training.warmup_fraction must be in [0, 1)"),
            (self.max_grad_norm > 0, "training.max_grad_norm must be > 0"),
            (self.divergence_factor > 1, "training.divergence_factor must be > 1"),
            (
                self.patience == 0 or self.eval_every > 0,
                "training.patience needs training.eval_every > 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainingSettings:
        """Build from the pipeline's ``training`` dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, "training setting", INT_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)

    def total_steps(self, examples: int) -> int:
        """Optimizer steps to run for ``examples`` training examples."""
        if self.steps:
            return self.steps
        per_epoch = -(-examples // (self.batch_size * self.grad_accum))
        return max(1, per_epoch * self.epochs)
