"""Component: score the base, the tuned and the production model on the eval split."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    formatted: Input[Dataset],
    adapter: Input[Model],
    base_model: str,
    prompt_template: str,
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
        adapter: The adapter from tune_adapter.
        base_model: The base model the adapter was trained on.
        prompt_template: The template the eval prompts were made with.
        gate: Gate settings; its metric is the primary metric returned as a parameter.
        evaluation: max_new_tokens, temperature, batch_size, seed, report_examples, max_length.
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

    from adaptune.evaluation.compared_models import ProductionModel
    from adaptune.evaluation.evaluate import EvaluationPaths, evaluate_models
    from adaptune.evaluation.gate import GateSettings
    from adaptune.evaluation.settings import EvaluationSettings
    from adaptune.registry import find_production
    from adaptune.step_errors import reported

    with reported("evaluate"):
        metric = GateSettings.from_dict(gate).metric
        settings = EvaluationSettings.from_dict(evaluation)
        champion = find_production(Path(registry_dir), model_name)
        production = None
        if champion is not None:
            production = ProductionModel(champion.path, champion.base_model)
            print(f"comparing with production {champion.ref}")
            used = champion.metadata.get("prompt_template", prompt_template)
            if used != prompt_template:
                print(f"warning: {champion.ref} was tuned with another prompt template: {used!r}")
        result = evaluate_models(
            Path(formatted.path) / "eval.jsonl",
            Path(adapter.path),
            base_model,
            EvaluationPaths(Path(predictions.path), report_html=Path(report.path)),
            production=production,
            settings=settings,
        )
    for model, scores in result.scores.items():
        for name, value in scores.items():
            eval_metrics.log_metric(f"{model}_{name}", value)
    eval_metrics.log_metric("eval_examples", result.examples)
    if champion is not None:
        eval_metrics.log_metric("production_version", champion.version)
    outputs = namedtuple(
        "Outputs", ["tuned_score", "base_score", "production_score", "production_version"]
    )
    return outputs(
        result.tuned[metric],
        result.base[metric],
        result.production[metric] if result.production else 0.0,
        champion.version if champion else 0,
    )
