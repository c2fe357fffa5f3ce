"""Component: template the inputs and split train/eval."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def format_text_to_text(
    dataset: Input[Dataset],
    data_sha256: str,
    prompt_template: str,
    base_model: str,
    data: dict,
    training: dict,
    formatted: Output[Dataset],
) -> NamedTuple("Outputs", train_examples=int, eval_examples=int, prompt_style=dict):
    """Turn examples into prompt/target pairs; split eval off by content hash if needed.

    Args:
        dataset: Validated data from validate_dataset.
        data_sha256: Hash of the validated data (keys the cache on content).
        prompt_template: Text with {input_text} where the input goes.
        base_model: Checks every training pair keeps a target token with its tokenizer.
        data: Data settings (eval_fraction, prompt_format and system_instruction are used here).
        training: Training settings; max_length bounds the target-token check.
        formatted: Directory with train.jsonl and eval.jsonl of prompt/target pairs.

    Returns:
        train_examples: Training pairs.
        eval_examples: Eval pairs.
        prompt_style: How the prompts were made: format (template or chat), template and
            system_instruction; the registry version records it and the server repeats it.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.data.formatting import format_text_to_text as format_pairs
    from adaptune.data.settings import DataSettings
    from adaptune.step_errors import reported
    from adaptune.tuning.settings import TrainingSettings

    with reported("format_text_to_text"):
        settings = DataSettings.from_dict(data)
        max_length = TrainingSettings.from_dict(training).max_length
        result = format_pairs(
            Path(dataset.path),
            Path(formatted.path),
            prompt_template,
            settings.eval_fraction,
            base_model,
            max_length,
            settings.prompt_format,
            settings.system_instruction,
        )
    formatted.metadata.update(
        {
            "data_sha256": data_sha256,
            "split": result.split_source,
            "prompt_format": result.prompt_style.format,
            **{f"{k}_examples": v for k, v in result.counts.items()},
        }
    )
    outputs = namedtuple("Outputs", ["train_examples", "eval_examples", "prompt_style"])
    return outputs(result.counts["train"], result.counts["eval"], result.prompt_style.to_dict())
