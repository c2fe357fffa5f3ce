"""Gemini tuning JSONL from the normalised examples, uploaded under its content hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GOOD_DATA

from adaptune.data.problems import DataValidationError
from adaptune.data.validation import validate_dataset
from adaptune.vertex.gemini_data import gemini_records, upload_gemini_data, write_gemini_jsonl
from adaptune.vertex.gemini_limits import FILE_TOO_LARGE, limits_for

LIMITS = limits_for("gemini-2.5-flash")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_text_examples_become_one_user_and_one_model_turn_with_the_system_instruction():
    records = list(
        gemini_records([{"input_text": "Q?", "output_text": "A."}], system_instruction="Be brief.")
    )
    assert records == [
        {
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Q?"}]},
                {"role": "model", "parts": [{"text": "A."}]},
            ],
        }
    ]
    assert "systemInstruction" not in next(
        iter(gemini_records([{"input_text": "q", "output_text": "a"}]))
    )


def test_a_multi_turn_conversation_is_joined_back_into_one_record():
    conversation = {
        "systemInstruction": {"parts": [{"text": "You sort tickets."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "u1"}]},
            {"role": "model", "parts": [{"text": "m1"}]},
            {"role": "user", "parts": [{"text": "u2"}]},
            {"role": "model", "parts": [{"text": "m2"}]},
        ],
    }
    from adaptune.data.formats import gemini_chat_examples

    examples = gemini_chat_examples(conversation)
    assert len(examples) == 2  # one per model turn, the second with the first as context
    other = {"input_text": "u1", "output_text": "different"}  # not a continuation
    records = list(gemini_records([*examples, other, *examples]))
    assert records == [conversation, gemini_records_one(other), conversation]
    # The example's own system text wins over the setting.
    assert list(gemini_records(examples, system_instruction="ignored")) == [conversation]


def gemini_records_one(example: dict) -> dict:
    return next(iter(gemini_records([example])))


def test_gemini_chat_data_converts_back_to_the_records_it_came_from(tmp_path):
    source = GOOD_DATA / "gemini_chat.jsonl"
    result = validate_dataset(str(source), None, tmp_path / "valid")
    count = write_gemini_jsonl(result.files["train"], tmp_path / "train.jsonl")
    assert count == 16
    assert lines(tmp_path / "train.jsonl") == lines(source)


def test_openai_chat_data_converts_to_the_same_gemini_records(tmp_path):
    openai = validate_dataset(str(GOOD_DATA / "openai_chat.jsonl"), None, tmp_path / "o")
    gemini = validate_dataset(str(GOOD_DATA / "gemini_chat.jsonl"), None, tmp_path / "g")
    write_gemini_jsonl(openai.files["train"], tmp_path / "from_openai.jsonl")
    write_gemini_jsonl(gemini.files["train"], tmp_path / "from_gemini.jsonl")
    assert (tmp_path / "from_openai.jsonl").read_bytes() == (
        tmp_path / "from_gemini.jsonl"
    ).read_bytes()


def test_upload_to_a_local_root_is_content_addressed_and_idempotent(tmp_path, small_data):
    train, evaluation = small_data
    result = validate_dataset(str(train), str(evaluation), tmp_path / "v")
    root = tmp_path / "root"
    first = upload_gemini_data(result.files, str(root), tmp_path / "work", LIMITS, "Sort it.")
    assert first.uploaded
    assert first.train_uri == f"{root}/gemini_data/{first.sha256}/train.jsonl"
    assert first.validation_uri == f"{root}/gemini_data/{first.sha256}/validation.jsonl"
    assert first.records == {"train": result.counts["train"], "eval": result.counts["eval"]}
    uploaded = lines(Path(first.train_uri))
    assert all(r["systemInstruction"] == {"parts": [{"text": "Sort it."}]} for r in uploaded)
    before = Path(first.train_uri).stat().st_mtime_ns
    again = upload_gemini_data(result.files, str(root), tmp_path / "work2", LIMITS, "Sort it.")
    assert not again.uploaded and again == type(first)(**{**first.to_dict(), "uploaded": False})
    assert Path(first.train_uri).stat().st_mtime_ns == before
    other = upload_gemini_data(result.files, str(root), tmp_path / "work3", LIMITS, "Other.")
    assert other.uploaded and other.sha256 != first.sha256


def test_upload_to_cloud_storage_goes_under_the_pipeline_root(tmp_path, gcs):
    from adaptune.gcs import gcs_filesystem

    result = validate_dataset(str(GOOD_DATA / "gemini_chat.jsonl"), None, tmp_path / "v")
    dataset = upload_gemini_data(result.files, f"{gcs}/root/", tmp_path / "work", LIMITS)
    assert dataset.train_uri == f"{gcs}/root/gemini_data/{dataset.sha256}/train.jsonl"
    assert dataset.validation_uri == ""
    fs = gcs_filesystem()
    text = fs.cat_file(dataset.train_uri).decode("utf-8")
    assert [json.loads(line) for line in text.splitlines()] == lines(
        GOOD_DATA / "gemini_chat.jsonl"
    )
    assert not upload_gemini_data(result.files, f"{gcs}/root", tmp_path / "w2", LIMITS).uploaded


def test_a_converted_file_over_the_size_limit_is_refused_before_upload(tmp_path):
    result = validate_dataset(str(GOOD_DATA / "vertex_text.jsonl"), None, tmp_path / "v")
    small = type(LIMITS)(**{**LIMITS.__dict__, "max_file_bytes": 100})
    root = tmp_path / "root"
    with pytest.raises(DataValidationError, match=FILE_TOO_LARGE) as err:
        upload_gemini_data(result.files, str(root), tmp_path / "work", small)
    assert "train.jsonl" in str(err.value) and "more than the 100" in str(err.value)
    assert not root.exists()
