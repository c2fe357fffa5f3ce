"""The bad corpus: every malformed file fails with its category and line, and writes nothing.

Good files in every format pass and give identical normalised examples for identical content.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptune.cli import main
from adaptune.data.problems import DataValidationError
from adaptune.data.settings import DataSettings
from adaptune.data.validation import validate_dataset

DATA = Path(__file__).resolve().parent / "data"
BAD = DATA / "bad"
GOOD = DATA / "good"

# file -> (category, line); line 0: the problem concerns the file or the dataset as a whole.
EXPECTED = {
    "not_json.jsonl": ("not_json", 5),
    "not_utf8.jsonl": ("not_utf8", 4),
    "wrong_type_array.jsonl": ("wrong_type", 3),
    "wrong_type_string.jsonl": ("wrong_type", 2),
    "number_as_text.jsonl": ("wrong_type", 6),
    "missing_field.jsonl": ("missing_field", 7),
    "empty_field.jsonl": ("empty_field", 2),
    "null_field.jsonl": ("missing_field", 9),
    "unknown_format.jsonl": ("unknown_format", 1),
    "mixed_formats.jsonl": ("mixed_formats", 10),
    "unknown_role.jsonl": ("unknown_role", 4),
    "unknown_role_gemini.jsonl": ("unknown_role", 3),
    "bad_role_order.jsonl": ("bad_role_order", 5),
    "ends_with_user.jsonl": ("bad_role_order", 2),
    "system_not_first.jsonl": ("bad_role_order", 11),
    "no_target_turn.jsonl": ("no_target_turn", 6),
    "bad_weight.jsonl": ("wrong_type", 2),
    "nested_wrong_type.jsonl": ("wrong_type", 3),
    "nested_wrong_type_gemini.jsonl": ("wrong_type", 2),
    "gemini_part_without_text.jsonl": ("missing_field", 8),
    "input_too_long.jsonl": ("input_too_long", 9),
    "output_too_long.jsonl": ("output_too_long", 3),
    "duplicate.jsonl": ("duplicate", 12),
    "too_few_examples.jsonl": ("too_few_examples", 0),
    "truncated_last_line.jsonl": ("not_json", 17),
    "binary_garbage.jsonl": ("not_utf8", 1),
    "empty_file.jsonl": ("empty_file", 1),
    "whitespace_only.jsonl": ("empty_file", 1),
    "nan.jsonl": ("not_json", 8),
    "lone_surrogate.jsonl": ("not_json", 5),
    "csv_missing_column.csv": ("missing_field", 1),
    "csv_not_utf8.csv": ("not_utf8", 4),
    "csv_empty_cell.csv": ("empty_field", 3),
    "not_parquet.parquet": ("unreadable_file", 0),
    "parquet_null.parquet": ("missing_field", 5),
    "parquet_number.parquet": ("wrong_type", 1),
}


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}: " if line else f"{path}: "


def test_the_corpus_is_complete():
    on_disk = {p.name for p in BAD.iterdir()} - {"overlap_train.jsonl", "overlap_eval.jsonl"}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) + 1 >= 30  # + the 10 MB line made by a fixture


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_fails_with_its_category_and_line(name, tmp_path):
    category, line = EXPECTED[name]
    path = BAD / name
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"{_where(path, line)}" in result.output
    assert f"[{category}]" in result.output
    expected_line = [s for s in result.output.splitlines() if f"[{category}]" in s]
    assert any(_where(path, line) in s for s in expected_line), expected_line
    out = tmp_path / "validated"
    with pytest.raises(DataValidationError) as info:
        validate_dataset(str(path), "", out)
    assert f"[{category}]" in str(info.value)
    assert not out.exists()


def test_train_eval_overlap_names_the_eval_line(tmp_path):
    train, evaluation = BAD / "overlap_train.jsonl", BAD / "overlap_eval.jsonl"
    result = CliRunner().invoke(main, ["validate", str(train), "--eval-data", str(evaluation)])
    assert result.exit_code == 1
    assert f"{evaluation}:2: the same input is also in the training data [train_eval_overlap]" in (
        result.output
    )
    with pytest.raises(DataValidationError):
        validate_dataset(str(train), str(evaluation), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_too_many_examples_names_the_first_line_over(tmp_path):
    path = GOOD / "vertex_text.jsonl"
    result = CliRunner().invoke(main, ["validate", str(path), "--data", '{"max_examples": 16}'])
    assert result.exit_code == 0
    result = CliRunner().invoke(
        main, ["validate", str(path), "--data", '{"min_examples": 4, "max_examples": 10}']
    )
    assert result.exit_code == 1
    assert f"{path}:11: 16 training examples, more than max_examples=10" in result.output
    assert "[too_many_examples]" in result.output


@pytest.fixture
def ten_mb_line(tmp_path) -> Path:
    path = tmp_path / "ten_mb_line.jsonl"
    text = "lorem ipsum dolor sit amet " * (10_000_000 // 27)
    path.write_text(f'{{"input_text": "{text}", "output_text": "x"}}\n', encoding="utf-8")
    assert path.stat().st_size > 10_000_000
    return path


@pytest.mark.slow
def test_a_10_mb_single_line_fails_cleanly(ten_mb_line, tmp_path):
    result = CliRunner().invoke(main, ["validate", str(ten_mb_line)])
    assert result.exit_code == 1
    assert f"{ten_mb_line}:1: input has " in result.output
    assert "[input_too_long]" in result.output and "Traceback" not in result.output


GOOD_FILES = {
    "vertex_text.jsonl": {},
    "openai_chat.jsonl": {},
    "gemini_chat.jsonl": {},
    "prompt_completion.jsonl": {},
    "bom_crlf.jsonl": {},
    "table.csv": {"input_column": "question", "output_column": "answer"},
    "table.parquet": {"input_column": "question", "output_column": "answer"},
}


def test_good_files_in_every_format_give_identical_examples(tmp_path):
    outputs = {}
    for name, settings in GOOD_FILES.items():
        result = validate_dataset(
            str(GOOD / name), "", tmp_path / name, DataSettings.from_dict(settings)
        )
        assert result.counts == {"train": 16}
        outputs[name] = (result.files["train"].read_bytes(), result.data_sha256)
    assert len(set(outputs.values())) == 1, {k: v[1] for k, v in outputs.items()}
    formats = {}
    for name in GOOD_FILES:
        result = CliRunner().invoke(
            main,
            ["validate", str(GOOD / name)]
            + (
                ["--data", '{"input_column": "question", "output_column": "answer"}']
                if name.startswith("table")
                else []
            ),
        )
        assert result.exit_code == 0, result.output
        formats[name] = result.output.split(f"{GOOD / name} (")[1].split(")")[0]
    assert formats == {
        "vertex_text.jsonl": "vertex_text",
        "openai_chat.jsonl": "openai_chat",
        "gemini_chat.jsonl": "gemini_chat",
        "prompt_completion.jsonl": "prompt_completion",
        "bom_crlf.jsonl": "vertex_text",
        "table.csv": "csv",
        "table.parquet": "parquet",
    }
