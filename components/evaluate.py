"""Component: score the base and the tuned model on the eval split."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    formatted: Input[Dataset],
    adapter: Input[Model],
    base_model: str,
    gate: dict,
    predictions: Output[Dataset],
    eval_metrics: Output[Metrics],
) -> NamedTuple("Outputs", tuned_score=float, base_score=float):
    """Generate on the eval split with the base and the tuned model and score both.

    Args:
        formatted: Prompt/target pairs from format_text_to_text.
        adapter: The PEFT adapter from tune_adapter.
        base_model: The base model the adapter was trained on.
        gate: Gate settings; its metric is the primary metric reported as a parameter.
        predictions: JSONL of prompt, reference, base and tuned outputs.
        eval_metrics: exact_match, rouge_l and bleu of both models.

    Returns:
        tuned_score: The tuned model's primary metric.
        base_score: The base model's primary metric.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.evaluation.evaluate import evaluate_adapter
    from adaptune.evaluation.gate import GateSettings
    from adaptune.step_errors import reported

    with reported("evaluate"):
        metric = GateSettings.from_dict(gate).metric
        result = evaluate_adapter(
            Path(formatted.path) / "eval.jsonl",
            Path(adapter.path),
            base_model,
            Path(predictions.path),
        )
    for model_name, scores in (("base", result.base), ("tuned", result.tuned)):
        for name, value in scores.items():
            eval_metrics.log_metric(f"{model_name}_{name}", value)
    eval_metrics.log_metric("eval_examples", result.examples)
    outputs = namedtuple("Outputs", ["tuned_score", "base_score"])
    return outputs(result.tuned[metric], result.base[metric])
