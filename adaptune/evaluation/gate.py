"""The gate: a small pure decision with a reason, fed to ``dsl.If`` as a bool.

A tuned model that passes is registered as a new version and promoted to production.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from adaptune.evaluation.metrics import METRICS
from adaptune.settings_dict import check_fields, from_pipeline_dict, setting


@dataclass(frozen=True)
class GateSettings:
    """When a tuned model passes (and becomes the production version).

    Attributes:
        metric: The primary metric compared (one of ``exact_match``, ``rouge_l``, ``bleu``).
        threshold: The tuned model's score must be at least this.
        min_improvement: The tuned score minus the base score must be at least this.
        tolerance: When a production version exists, the tuned score must be at least the
            production score minus this (0: never fall behind what serves now).
    """

    setting_name: ClassVar[str] = "gate"

    metric: str = setting("exact_match", "Metric compared.", choices=METRICS)
    threshold: float = setting(0.6, "Tuned score needed.")
    min_improvement: float = setting(0.1, "Tuned minus base score needed.", ge=-1, le=1)
    tolerance: float = setting(0.0, "How far below production tuned may score.", ge=0, le=1)

    def __post_init__(self) -> None:
        check_fields(self, self.setting_name)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> GateSettings:
        """Build from a pipeline dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, cls.setting_name)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer.

    Attributes:
        passed: Whether the tuned model passed (it is then registered and promoted).
        reason: Why, with the numbers compared.
    """

    passed: bool
    reason: str


EPSILON = 1e-9
"""Slack on every comparison, so 0.7 - 0.6 counts as the 0.1 it is meant to be."""


def _at_least(value: float, bound: float) -> bool:
    return value >= bound - EPSILON


def _check(ok: bool, left: str, right: str) -> tuple[bool, str]:
    return ok, f"{left} {'>=' if ok else '<'} {right}"


def passes_gate(
    tuned: float,
    base: float,
    gate: GateSettings,
    production: float | None = None,
    production_ref: str = "production",
) -> GateDecision:
    """Pass iff the tuned model clears the threshold, beats base, and keeps up with production.

    The three conditions: ``tuned >= threshold``; ``tuned - base >= min_improvement``; and,
    when a production version exists, ``tuned >= production - tolerance``.

    Args:
        tuned: The tuned model's primary metric.
        base: The base model's primary metric.
        gate: Metric name, threshold, minimum improvement and tolerance.
        production: The production version's primary metric; None when nothing serves yet.
        production_ref: How the reason names the production version (``model@vN``).

    Returns:
        The decision and a one-line reason naming every comparison.
    """
    improvement = tuned - base
    checks = [
        _check(
            _at_least(tuned, gate.threshold),
            f"tuned {gate.metric} {tuned:.4f}",
            f"threshold {gate.threshold:.4f}",
        ),
        _check(
            _at_least(improvement, gate.min_improvement),
            f"improvement over base {improvement:+.4f}",
            f"min_improvement {gate.min_improvement:.4f}",
        ),
    ]
    if production is None:
        checks.append((True, "no production version to compare with"))
    else:
        floor = production - gate.tolerance
        checks.append(
            _check(
                _at_least(tuned, floor),
                f"tuned {tuned:.4f}",
                f"{production_ref} {production:.4f} - tolerance {gate.tolerance:.4f}",
            )
        )
    failed = [text for ok, text in checks if not ok]
    if failed:
        return GateDecision(False, "failed: " + "; ".join(failed))
    return GateDecision(True, "passed: " + "; ".join(text for _, text in checks))
