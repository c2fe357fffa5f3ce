"""Component: score the base, the tuned and the production model on the eval split."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    formatted: Input[Dataset],
    trained_adapter: Input[Model],
    base_model: str,
    prompt_style: dict,
    gate: dict,
    evaluation: dict,
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
    """Generate on the eval split with every model and score them.

    The models: the base model, the tuned one and, when model_name has a production version in
    the registry, that version (the champion the tuned model challenges).

    Args:
        formatted: Prompt/target pairs from format_text_to_text.
        trained_adapter: The adapter from tune_adapter.
        base_model: The base model the adapter was trained on.
        prompt_style: How the eval prompts were made (format_text_to_text's prompt_style).
        gate: Gate settings; its metric is the primary metric returned as a parameter.
        evaluation: max_new_tokens, temperature, batch_size, seed, report_examples, max_length,
            precision (the dtype the base models are held in), attention (their attention
            implementation).
        model_name: Registry model name (its production version is compared).
        registry_dir: Registry root directory.
        predictions: JSONL of prompt, reference and each model's output.
        report: HTML page: the metrics table and the examples where the models differ most.
        eval_metrics: Every metric of every model, as <model>_<metric>.

    Returns:
        tuned_score: The tuned model's primary metric.
        base_score: The base model's primary metric.
        production_score: The production version's primary metric (0.0 without one).
        production_version: The production version compared with (0: none).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.data.chat import PromptStyle
    from adaptune.evaluation.champion import evaluate_challenger
    from adaptune.evaluation.evaluate import EvaluationPaths
    from adaptune.evaluation.gate import GateSettings
    from adaptune.evaluation.settings import EvaluationSettings
    from adaptune.step_errors import reported

    with reported("evaluate"):
        metric = GateSettings.from_dict(gate).metric
        challenge = evaluate_challenger(
            Path(formatted.path) / "eval.jsonl",
            Path(trained_adapter.path),
            base_model,
            PromptStyle.from_dict(prompt_style),
            Path(registry_dir),
            model_name,
            EvaluationPaths(Path(predictions.path), report_html=Path(report.path)),
            EvaluationSettings.from_dict(evaluation),
        )
    for model, scores in challenge.result.scores.items():
        for name, value in scores.items():
            eval_metrics.log_metric(f"{model}_{name}", value)
    eval_metrics.log_metric("eval_examples", challenge.result.examples)
    if challenge.champion is not None:
        eval_metrics.log_metric("production_version", challenge.champion.version)
    outputs = namedtuple(
        "Outputs", ["tuned_score", "base_score", "production_score", "production_version"]
    )
    return outputs(*challenge.primary(metric))
