"""Component: check every record of the text-to-text data before anything else runs."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_dataset(
    train_data: str,
    eval_data: str,
    dataset: Output[Dataset],
) -> NamedTuple("Outputs", data_sha256=str, train_records=int, eval_records=int):
    """Check every JSONL record (input_text, output_text) and emit the normalised data.

    Args:
        train_data: Training JSONL file.
        eval_data: Optional eval JSONL file; empty to split eval off the training data.
        dataset: Directory with the normalised train.jsonl (and eval.jsonl).

    Returns:
        data_sha256: sha256 of the normalised data; every later step is keyed on it.
        train_records: Valid training records.
        eval_records: Valid eval records (0 when no eval file was given).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.data.validation import validate_dataset as validate
    from adaptune.step_errors import reported

    with reported("validate_dataset"):
        result = validate(train_data, eval_data, Path(dataset.path))
    counts = {f"{split}_records": n for split, n in result.counts.items()}
    dataset.metadata.update({"data_sha256": result.data_sha256, **counts})
    outputs = namedtuple("Outputs", ["data_sha256", "train_records", "eval_records"])
    return outputs(result.data_sha256, result.counts["train"], result.counts.get("eval", 0))
