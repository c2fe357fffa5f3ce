"""Component: train a LoRA adapter and save it in PEFT format."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_adapter(
    formatted: Input[Dataset],
    data_sha256: str,
    base_model: str,
    train_steps: int,
    learning_rate: float,
    batch_size: int,
    lora: dict,
    seed: int,
    adapter: Output[Model],
    training_metrics: Output[Metrics],
    training_report: Output[HTML],
) -> NamedTuple("Outputs", first_loss=float, final_loss=float):
    """Train LoRA on the formatted pairs, with the loss on output tokens only.

    Args:
        formatted: Prompt/target pairs from format_text_to_text.
        data_sha256: Hash of the validated data (keys the cache on content).
        base_model: builtin:tiny-gpt2, builtin:tiny-t5 or a checkpoint directory.
        train_steps: Optimizer steps.
        learning_rate: Peak learning rate.
        batch_size: Examples per step.
        lora: LoRA settings: r, alpha, dropout, target_modules.
        seed: Random seed.
        adapter: The PEFT adapter directory.
        training_metrics: Loss and throughput scalars; its file holds the loss per step.
        training_report: Loss curve and settings as an HTML page.

    Returns:
        first_loss: Loss at the first step.
        final_loss: Mean loss over the last 10 steps.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.atomic import write_json_atomic, write_text_atomic
    from adaptune.step_errors import reported
    from adaptune.tuning.adapter import tune_adapter as tune
    from adaptune.tuning.lora import LoraSettings
    from adaptune.tuning.settings import TrainingSettings

    with reported("tune_adapter"):
        settings = TrainingSettings(
            steps=train_steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed
        )
        result = tune(
            Path(formatted.path) / "train.jsonl",
            Path(adapter.path),
            base_model,
            settings,
            LoraSettings.from_dict(lora),
        )
    for name, value in result.summary.items():
        training_metrics.log_metric(name, value)
    write_json_atomic(Path(training_metrics.path), {"losses": result.history.losses})
    adapter.metadata.update(
        {"base_model": base_model, "data_sha256": data_sha256, "format": "peft-lora"}
    )
    write_text_atomic(Path(training_report.path), result.report_html)
    outputs = namedtuple("Outputs", ["first_loss", "final_loss"])
    return outputs(result.summary["first_loss"], result.summary["final_loss"])
