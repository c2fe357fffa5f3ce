"""Sources: local files and globs, and gs:// through gcsfs against a GCS emulator on 127.0.0.1.

The socket guard from conftest is on: any connection beyond loopback would fail these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_jsonl
from kfp.dsl import HTML, Dataset

from adaptune.data.problems import DataValidationError
from adaptune.data.sources import expand_sources
from adaptune.data.validation import check_dataset, validate_dataset
from components.validate_dataset import validate_dataset as validate_component

GOOD = Path(__file__).resolve().parent / "data" / "good"


def test_local_globs_expand_in_order_and_missing_paths_are_problems(tmp_path):
    files, problems = expand_sources(
        [str(GOOD / "*_chat.jsonl"), str(tmp_path / "none-*.jsonl"), str(tmp_path / "x.jsonl")]
    )
    assert files == [str(GOOD / "gemini_chat.jsonl"), str(GOOD / "openai_chat.jsonl")]
    assert [(p.category, p.message) for p in problems] == [
        ("file_not_found", "no file matches this pattern"),
        ("file_not_found", "file not found"),
    ]


def test_a_local_glob_reads_every_matching_file(tmp_path):
    for part in ("a", "b"):
        write_jsonl(
            tmp_path / f"{part}.jsonl",
            [{"input_text": f"{part} {i}", "output_text": "x"} for i in range(10)],
        )
    report, _ = check_dataset(str(tmp_path / "*.jsonl"))
    assert report.passed
    assert report.sources == {"train": [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]}
    assert report.records == {"train": 20}
    # The same 16 conversations in two formats: the second file repeats the first one's examples.
    report, _ = check_dataset(str(GOOD / "*_chat.jsonl"))
    assert not report.passed
    assert report.duplicates == {"train": 16}
    first = report.first["duplicate"][0]
    assert str(first) == (
        f"{GOOD / 'openai_chat.jsonl'}:1: exact duplicate of the example at line "
        f"{GOOD / 'gemini_chat.jsonl'}:1 [duplicate]"
    )


def test_gs_uris_and_globs_validate_like_local_files(gcs, tmp_path):
    local = validate_dataset(str(GOOD / "vertex_text.jsonl"), "", tmp_path / "local")
    remote = validate_dataset(f"{gcs}/data/vertex_text.jsonl", "", tmp_path / "remote")
    assert remote.data_sha256 == local.data_sha256
    assert remote.report.formats == {f"{gcs}/data/vertex_text.jsonl": "vertex_text"}
    report, _ = check_dataset(f"{gcs}/data/*.jsonl")
    assert report.sources["train"] == [
        f"{gcs}/data/openai_chat.jsonl",
        f"{gcs}/data/vertex_text.jsonl",
    ]
    assert report.records == {"train": 32}


def test_gs_parquet_and_problems_name_the_uri(gcs, tmp_path):
    from adaptune.data.settings import DataSettings

    settings = DataSettings(input_column="question", output_column="answer")
    report, _ = check_dataset(f"{gcs}/data/table.parquet", settings=settings)
    assert report.passed and report.examples == {"train": 16}
    with pytest.raises(DataValidationError) as info:
        validate_dataset(f"{gcs}/bad/broken.jsonl", "", tmp_path / "out")
    assert f"{gcs}/bad/broken.jsonl:1: missing field 'output_text' [missing_field]" in str(
        info.value
    )
    missing, _ = check_dataset(f"{gcs}/data/nothing.jsonl")
    assert [str(p) for p in missing.fatal] == [
        f"{gcs}/data/nothing.jsonl: file not found [file_not_found]"
    ]
    assert not (tmp_path / "out").exists()


def test_the_component_reads_gs_data(gcs, tmp_path):
    dataset = Dataset(uri=str(tmp_path / "dataset"))
    dataset.path = str(tmp_path / "dataset")
    report = HTML(uri=str(tmp_path / "report.html"))
    report.path = str(tmp_path / "report.html")
    out = validate_component.python_func(
        train_data=f"{gcs}/data/openai_chat.jsonl",
        eval_data="",
        base_model="builtin:tiny-gpt2",
        data={},
        dataset=dataset,
        report=report,
    )
    assert (out.train_records, out.eval_records) == (16, 0)
    assert dataset.metadata["formats"] == {f"{gcs}/data/openai_chat.jsonl": "openai_chat"}
    assert (tmp_path / "dataset" / "train.jsonl").read_text().count("\n") == 16
