"""Component (gemini pipeline): score the tuned endpoint, the base model and production.

Its function is named ``evaluate``, so the task is ``evaluate`` with the adapter pipeline's
outputs: the gate, the summary and the lineage read both pipelines alike.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    dataset: Input[Dataset],
    tuned_model: Input[Model],
    data: dict,
    vertex_gemini: dict,
    gate: dict,
    model_name: str,
    registry_dir: str,
    predictions: Output[Dataset],
    report: Output[HTML],
    eval_metrics: Output[Metrics],
) -> NamedTuple(
    "Outputs",
    tuned_score=float,
    base_score=float,
    production_score=float,
    production_version=int,
):
    """Ask every model the eval examples' questions with batched generateContent; score them.

    Args:
        dataset: The validated examples (the eval split is taken as tune_gemini took it).
        tuned_model: tune_gemini's tuned_model.json (the endpoint asked).
        data: Data settings (eval_fraction, system_instruction).
        vertex_gemini: Where the calls go, concurrency, retries and the failure bound.
        gate: Gate settings; its metric is the primary metric returned as a parameter.
        model_name: Registry model name (its production version, a Gemini one, is compared).
        registry_dir: Registry root directory.
        predictions: JSONL of prompt, reference and each model's answer (null: failed).
        report: HTML page: the metrics table and the examples where the models differ most.
        eval_metrics: Every metric of every model, as <model>_<metric>, and call counts.

    Returns:
        tuned_score: The tuned model's primary metric.
        base_score: The base model's primary metric.
        production_score: The production version's primary metric (0.0 without one).
        production_version: The production version compared with (0: none).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.evaluation.gate import GateSettings
    from adaptune.step_errors import reported
    from adaptune.vertex.gemini_steps import evaluate_step

    with reported("evaluate"):
        metric = GateSettings.from_dict(gate).metric
        evaluation = evaluate_step(
            Path(dataset.path),
            data,
            vertex_gemini,
            Path(tuned_model.path),
            model_name,
            Path(registry_dir),
            Path(predictions.path),
            Path(report.path),
        )
    for name, value in evaluation.metrics().items():
        eval_metrics.log_metric(name, value)
    outputs = namedtuple(
        "Outputs", ["tuned_score", "base_score", "production_score", "production_version"]
    )
    return outputs(*evaluation.primary(metric))
