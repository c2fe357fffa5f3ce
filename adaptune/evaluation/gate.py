"""The deploy gate: a small pure decision with a reason, fed to ``dsl.If`` as a bool."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adaptune.errors import UserError
from adaptune.evaluation.metrics import METRICS
from adaptune.settings_dict import from_pipeline_dict


@dataclass(frozen=True)
class GateSettings:
    """When a tuned model may be deployed.

    Attributes:
        metric: The primary metric compared (one of ``exact_match``, ``rouge_l``, ``bleu``).
        threshold: The tuned model's score must be at least this.
        min_improvement: The tuned score minus the base score must be at least this.
    """

    metric: str = "exact_match"
    threshold: float = 0.6
    min_improvement: float = 0.1

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise UserError(f"gate.metric must be one of {list(METRICS)}, got {self.metric!r}")
        for name in ("threshold", "min_improvement"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"gate.{name} must be a number, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> GateSettings:
        """Build from a pipeline dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, "gate setting")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer.

    Attributes:
        deploy: Whether to deploy.
        reason: Why, with the numbers compared.
    """

    deploy: bool
    reason: str


def should_deploy(tuned: float, base: float, gate: GateSettings) -> GateDecision:
    """Deploy iff ``tuned >= threshold`` and ``tuned - base >= min_improvement``.

    Args:
        tuned: The tuned model's primary metric.
        base: The base model's primary metric.
        gate: Metric name, threshold and minimum improvement.

    Returns:
        The decision and a one-line reason naming every comparison.
    """
    improvement = tuned - base
    checks = [
        (
            tuned >= gate.threshold,
            f"tuned {gate.metric} {tuned:.4f} {'>=' if tuned >= gate.threshold else '<'} "
            f"threshold {gate.threshold:.4f}",
        ),
        (
            improvement >= gate.min_improvement,
            f"improvement over base {improvement:+.4f} "
            f"{'>=' if improvement >= gate.min_improvement else '<'} "
            f"min_improvement {gate.min_improvement:.4f}",
        ),
    ]
    failed = [text for ok, text in checks if not ok]
    if failed:
        return GateDecision(False, "not deployed: " + "; ".join(failed))
    return GateDecision(True, "deploy: " + "; ".join(text for _, text in checks))
