import json

import pytest
from conftest import write_jsonl

from adaptune.data.formatting import format_text_to_text, in_eval_split
from adaptune.data.settings import DataSettings
from adaptune.data.validation import DataValidationError, validate_dataset
from adaptune.errors import UserError


def _records(n, prefix="ticket"):
    return [{"input_text": f"{prefix} {i}", "output_text": f"label{i % 3}"} for i in range(n)]


def test_sample_validates_with_counts_and_hash(sample_dir, tmp_path):
    result = validate_dataset(
        str(sample_dir / "train.jsonl"), str(sample_dir / "eval.jsonl"), tmp_path / "out"
    )
    assert result.counts == {"train": 400, "eval": 80}
    assert len(result.data_sha256) == 64
    assert (tmp_path / "out" / "train.jsonl").read_text().count("\n") == 400


def test_every_defect_is_named_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"input_text": "a", "output_text": "b"})
    lines = [
        good,
        "{not json",
        json.dumps({"input_text": "a"}),
        json.dumps({"input_text": 3, "output_text": "b"}),
        json.dumps({"input_text": "  ", "output_text": "b"}),
        json.dumps(["a", "b"]),
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"input_text": "\xff"}\n')
    with pytest.raises(DataValidationError) as info:
        validate_dataset(str(path), "", tmp_path / "out", DataSettings(min_examples=1))
    message = str(info.value)
    assert f"{path}:2: not valid JSON" in message and "[not_json]" in message
    assert f"{path}:3: missing field 'output_text' [missing_field]" in message
    assert f"{path}:4: field 'input_text' must be a string, got int [wrong_type]" in message
    assert f"{path}:5: field 'input_text' is empty [empty_field]" in message
    assert f"{path}:6: expected a JSON object, got list [wrong_type]" in message
    assert f"{path}:7: not valid UTF-8" in message and "[not_utf8]" in message
    assert not (tmp_path / "out").exists()


def test_the_message_lists_the_first_problems_and_counts_the_rest(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("oops\n" * 25)
    with pytest.raises(DataValidationError) as info:
        validate_dataset(str(path), "", tmp_path / "out")
    message = str(info.value)
    assert message.count("[not_json]") == 5  # the first five of the category
    assert "... and 20 more problems" in message
    assert "not_json: 25" in message


def test_bom_crlf_and_blank_lines_are_tolerated(tmp_path):
    body = "\r\n".join(json.dumps(r) for r in _records(16)) + "\r\n\r\n"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert validate_dataset(str(path), "", tmp_path / "out").counts == {"train": 16}


def test_too_few_records_and_missing_files_fail(tmp_path):
    path = write_jsonl(tmp_path / "few.jsonl", _records(3))
    with pytest.raises(
        DataValidationError, match="3 valid training examples, at least min_examples=16"
    ):
        validate_dataset(str(path), "", tmp_path / "out")
    with pytest.raises(UserError, match=r"file not found \[file_not_found\]"):
        validate_dataset(str(tmp_path / "missing.jsonl"), "", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hash_follows_content(tmp_path):
    records = _records(20)
    a = validate_dataset(str(write_jsonl(tmp_path / "a.jsonl", records)), "", tmp_path / "a")
    records[7]["output_text"] = "changed"
    b = validate_dataset(str(write_jsonl(tmp_path / "b.jsonl", records)), "", tmp_path / "b")
    assert a.data_sha256 != b.data_sha256


def test_format_applies_template_and_uses_the_eval_file(sample_dir, tmp_path):
    validate_dataset(
        str(sample_dir / "train.jsonl"), str(sample_dir / "eval.jsonl"), tmp_path / "valid"
    )
    result = format_text_to_text(
        tmp_path / "valid", tmp_path / "fmt", "Ticket: {input_text}\nTeam:"
    )
    assert result.split_source == "file"
    assert result.counts == {"train": 400, "eval": 80}
    first = json.loads((tmp_path / "fmt" / "train.jsonl").read_text().splitlines()[0])
    assert first["prompt"].startswith("Ticket: ") and first["prompt"].endswith("\nTeam:")
    assert first["target"] in {"billing", "technical", "shipping", "account", "sales"}


def test_hash_split_is_stable_when_rows_are_added(tmp_path):
    records = _records(200)
    validate_dataset(str(write_jsonl(tmp_path / "a.jsonl", records)), "", tmp_path / "va")
    small = format_text_to_text(tmp_path / "va", tmp_path / "fa", eval_fraction=0.2)
    assert small.split_source == "hash"
    assert 20 <= small.counts["eval"] <= 60
    validate_dataset(
        str(write_jsonl(tmp_path / "b.jsonl", records + _records(100, "new"))), "", tmp_path / "vb"
    )
    format_text_to_text(tmp_path / "vb", tmp_path / "fb", eval_fraction=0.2)
    eval_a = set((tmp_path / "fa" / "eval.jsonl").read_text().splitlines())
    eval_b = set((tmp_path / "fb" / "eval.jsonl").read_text().splitlines())
    assert eval_a <= eval_b
    held_out = [r for r in records if in_eval_split(r, 0.2)]
    assert len(held_out) == small.counts["eval"]


def test_format_rejects_a_template_without_the_input(tmp_path, sample_dir):
    validate_dataset(str(sample_dir / "train.jsonl"), "", tmp_path / "valid")
    with pytest.raises(UserError, match=r"\{input_text\}"):
        format_text_to_text(tmp_path / "valid", tmp_path / "fmt", "no placeholder")
