"""Component: check every record of the data before anything else runs."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_dataset(
    train_data: str,
    eval_data: str,
    base_model: str,
    data: dict,
    dataset: Output[Dataset],
    report: Output[HTML],
) -> NamedTuple("Outputs", data_sha256=str, train_records=int, eval_records=int):
    """Check every record (any supported format) and emit the normalised examples and a report.

    Args:
        train_data: Training data: a file, glob or gs:// URI (JSONL, CSV or Parquet).
        eval_data: Optional eval data in the same forms; empty to split eval off the training data.
        base_model: The model whose tokenizer counts tokens for the length limits.
        data: Data settings: format, columns, token limits, length_policy, example counts,
            max_invalid_fraction, eval_fraction.
        dataset: Directory with the normalised train.jsonl (and eval.jsonl, dropped.jsonl).
        report: The validation report as an HTML page.

    Returns:
        data_sha256: sha256 of the normalised data; every later step is keyed on it.
        train_records: Valid training examples.
        eval_records: Valid eval examples (0 when no eval data was given).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.atomic import write_text_atomic
    from adaptune.data.settings import DataSettings
    from adaptune.data.validation import validate_dataset as validate
    from adaptune.step_errors import reported

    with reported("validate_dataset"):
        settings = DataSettings.from_dict(data)
        result = validate(train_data, eval_data, Path(dataset.path), settings, base_model)
    print(result.report.to_markdown())
    write_text_atomic(Path(report.path), result.report.to_html())
    counts = {f"{split}_records": n for split, n in result.counts.items()}
    validation = result.report.to_metadata()
    dataset.metadata.update({"data_sha256": result.data_sha256, **counts, **validation})
    outputs = namedtuple("Outputs", ["data_sha256", "train_records", "eval_records"])
    return outputs(result.data_sha256, result.counts["train"], result.counts.get("eval", 0))
