"""Gemini tuning limits and settings: the table, the checks of examples, the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptune.data.problems import TOO_MANY_EXAMPLES, DataValidationError
from adaptune.errors import UserError
from adaptune.vertex.gemini_limits import (
    EXAMPLE_TOO_LONG,
    GEMINI_LIMITS,
    check_gemini_examples,
    estimated_tokens,
    example_tokens,
    limits_for,
    require_within_limits,
)
from adaptune.vertex.gemini_settings import (
    GeminiTuningSettings,
    check_gemini_credentials,
    check_gemini_settings,
)


def write_examples(path: Path, examples: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return path


def test_every_limit_has_a_google_source_and_sane_values():
    for name, limits in GEMINI_LIMITS.items():
        assert limits.model == name
        assert limits.source.startswith("https://cloud.google.com/vertex-ai/")
        assert limits.max_example_tokens == 131_072
        assert limits.max_validation_examples == 5000
        assert limits.max_file_bytes == 1 << 30
        assert set(limits.adapter_sizes) <= {1, 2, 4, 8, 16, 32}


def test_limits_are_found_by_id_version_or_publisher_path():
    assert limits_for("gemini-2.5-flash").adapter_sizes == (1, 2, 4, 8, 16)
    assert limits_for("gemini-2.5-flash-001").model == "gemini-2.5-flash"
    assert limits_for("publishers/google/models/gemini-2.5-flash-lite").model == (
        "gemini-2.5-flash-lite"
    )
    with pytest.raises(UserError, match=r"vertex_gemini.base_model 'gemini-1.0-pro'") as err:
        limits_for("gemini-1.0-pro")
    assert "\n" not in str(err.value)


def test_tokens_are_estimated_from_every_piece_of_the_example():
    example = {
        "system": "s" * 8,
        "context": [{"role": "user", "text": "u" * 4}, {"role": "model", "text": "m" * 5}],
        "input_text": "i" * 4,
        "output_text": "o" * 3,
    }
    assert estimated_tokens("abcde") == 2
    assert example_tokens(example) == 2 + 1 + 2 + 1 + 1
    plain = {"input_text": "abcd", "output_text": "ab"}
    assert example_tokens(plain, system_instruction="x" * 40) == 10 + 1 + 1


def test_an_example_over_the_token_limit_is_named_with_file_and_line(tmp_path):
    limits = limits_for("gemini-2.5-flash")
    long_text = "x" * (4 * limits.max_example_tokens)  # exactly the limit with the input alone
    train = write_examples(
        tmp_path / "train.jsonl",
        [
            {"input_text": "short", "output_text": "fine"},
            {"input_text": long_text, "output_text": "one more token"},
        ],
    )
    problems = check_gemini_examples({"train": train}, limits)
    assert [(p.category, p.file, p.line) for p in problems] == [(EXAMPLE_TOO_LONG, str(train), 2)]
    assert "131,072" in problems[0].message and limits.source in problems[0].message
    with pytest.raises(DataValidationError) as err:
        require_within_limits(problems)
    assert f"{train}:2:" in str(err.value) and "[example_too_long]" in str(err.value)


def test_too_many_validation_examples_is_a_dataset_problem(tmp_path):
    limits = limits_for("gemini-2.5-pro")
    train = write_examples(tmp_path / "train.jsonl", [{"input_text": "a", "output_text": "b"}])
    evaluation = write_examples(
        tmp_path / "eval.jsonl",
        [
            {"input_text": f"q{i}", "output_text": "a"}
            for i in range(limits.max_validation_examples + 1)
        ],
    )
    problems = check_gemini_examples({"train": train, "eval": evaluation}, limits)
    assert [(p.category, p.file, p.line) for p in problems] == [
        (TOO_MANY_EXAMPLES, str(evaluation), 0)
    ]
    assert "5,001 validation examples, more than the 5,000" in problems[0].message
    assert check_gemini_examples({"train": train}, limits) == []


def test_settings_defaults_are_valid_and_round_trip():
    settings = GeminiTuningSettings()
    assert GeminiTuningSettings.from_dict(settings.to_dict()) == settings
    assert settings.tuned_model_name("run-1") == "adaptune-run-1"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"base_model": "gpt-4"}, r"^vertex_gemini.base_model 'gpt-4' is not a Gemini model"),
        ({"epochs": -1}, r"^vertex_gemini.epochs must be an integer from 0 to 100"),
        ({"epochs": 1000}, r"^vertex_gemini.epochs must be an integer from 0 to 100"),
        ({"adapter_size": 3}, r"^vertex_gemini.adapter_size must be one of \[0, 1, 2, 4"),
        (
            {"base_model": "gemini-2.5-pro", "adapter_size": 16},
            r"^vertex_gemini.adapter_size 16 is not one gemini-2.5-pro tunes with; "
            r"one of \[1, 2, 4, 8\]",
        ),
        ({"learning_rate_multiplier": 0}, r"^vertex_gemini.learning_rate_multiplier must be"),
        ({"learning_rate_multiplier": "fast"}, r"^vertex_gemini.learning_rate_multiplier must be"),
        ({"epoch": 3}, r"vertex_gemini.*epoch"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line_naming_it(values, expected):
    with pytest.raises(UserError, match=expected) as err:
        check_gemini_settings(values)
    assert "\n" not in str(err.value)


def test_pipeline_floats_are_taken_for_integer_settings():
    settings = check_gemini_settings({"epochs": 3.0, "adapter_size": 8.0})
    assert (settings.epochs, settings.adapter_size) == (3, 8)


def test_no_project_or_no_credentials_is_a_clear_error_before_anything_runs(monkeypatch, tmp_path):
    with pytest.raises(UserError, match="needs a Google Cloud project"):
        check_gemini_credentials("", "us-central1")
    with pytest.raises(UserError, match="needs a Vertex AI location"):
        check_gemini_credentials("proj", "")
    # No ADC anywhere: no key file, an empty gcloud config, no metadata server (conftest).
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(UserError, match="no Google Cloud credentials were found") as err:
        check_gemini_credentials("proj", "us-central1")
    assert "\n" not in str(err.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(err.value)


def test_credentials_from_a_key_file_pass(monkeypatch, tmp_path):
    key = tmp_path / "adc.json"
    key.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "id",
                "client_secret": "secret",
                "refresh_token": "token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    check_gemini_credentials("proj", "us-central1")  # finds them; makes no call
