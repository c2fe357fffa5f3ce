"""Component: the gate, a bool (for dsl.If) and a reason."""

from kfp import dsl

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def passes_gate(
    tuned_score: float,
    base_score: float,
    production_score: float,
    production_version: int,
    gate: dict,
    reason: dsl.OutputPath(str),
) -> bool:
    """Pass iff tuned clears the threshold, beats base and keeps up with production.

    A passing model is registered and promoted. The decision is the single return value
    (output "Output"): kfp.local resolves a dsl.If condition on a task output only when the
    output is named "Output", and silently treats any other as False.

    Args:
        tuned_score: The tuned model's primary metric.
        base_score: The base model's primary metric.
        production_score: The production version's primary metric (ignored without one).
        production_version: The production version evaluated against; 0 when none serves.
        gate: metric, threshold, min_improvement and tolerance.
        reason: The comparison behind the decision, in words.

    Returns:
        Whether the register branch runs.
    """
    from adaptune.evaluation.gate import GateSettings
    from adaptune.evaluation.gate import passes_gate as decide
    from adaptune.step_errors import reported

    with reported("passes_gate"):
        decision = decide(
            tuned_score,
            base_score,
            GateSettings.from_dict(gate),
            production=production_score if production_version else None,
            production_ref=f"production v{production_version}",
        )
    print(decision.reason)
    with open(reason, "w", encoding="utf-8") as f:
        f.write(decision.reason)
    return decision.passed
