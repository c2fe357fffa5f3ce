"""The data contract's rules: chat turns, format override, token limits, drops, settings, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_jsonl

from adaptune.cli import main
from adaptune.data.formats import openai_chat_examples
from adaptune.data.formatting import check_target_tokens, format_text_to_text, render_prompt
from adaptune.data.problems import DataValidationError
from adaptune.data.report import SAMPLE_CAP, LengthSample
from adaptune.data.settings import DataSettings
from adaptune.data.validation import check_dataset, validate_dataset
from adaptune.errors import UserError

GOOD = Path(__file__).resolve().parent / "data" / "good"


def _pairs(n, prefix="question"):
    return [{"input_text": f"{prefix} {i}", "output_text": f"answer {i % 3}"} for i in range(n)]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


CONVERSATION = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "weight": 0},
        {"role": "user", "content": "Refund?"},
        {"role": "assistant", "content": "Billing team."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "Bye."},
    ]
}


def test_multi_turn_chat_gives_one_example_per_target_turn_with_earlier_turns_as_context():
    examples = openai_chat_examples(CONVERSATION)
    assert examples == [
        {
            "system": "Be brief.",
            "context": [{"role": "user", "text": "Hi"}, {"role": "model", "text": "Hello!"}],
            "input_text": "Refund?",
            "output_text": "Billing team.",
        },
        {
            "system": "Be brief.",
            "context": [
                {"role": "user", "text": "Hi"},
                {"role": "model", "text": "Hello!"},
                {"role": "user", "text": "Refund?"},
                {"role": "model", "text": "Billing team."},
            ],
            "input_text": "Thanks",
            "output_text": "Bye.",
        },
    ]
    prompt = render_prompt(examples[1], "Q: {input_text}\nA:")
    assert prompt == "Be brief.\nQ: Hi\nA:Hello!\nQ: Refund?\nA:Billing team.\nQ: Thanks\nA:"


def test_gemini_and_openai_conversations_normalise_identically(tmp_path):
    gemini = {
        "systemInstruction": {"parts": [{"text": "Be "}, {"text": "brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Refund?"}]},
            {"role": "model", "parts": [{"text": "Billing team."}]},
        ],
    }
    openai = {"messages": CONVERSATION["messages"][:5]}
    openai["messages"][2] = {"role": "assistant", "content": "Hello!"}  # a target, like Gemini's
    settings = DataSettings(min_examples=2)
    a = validate_dataset(
        str(write_jsonl(tmp_path / "g.jsonl", [gemini])), "", tmp_path / "a", settings
    )
    b = validate_dataset(
        str(write_jsonl(tmp_path / "o.jsonl", [openai])), "", tmp_path / "b", settings
    )
    assert a.files["train"].read_bytes() == b.files["train"].read_bytes()
    assert a.data_sha256 == b.data_sha256
    assert [e["output_text"] for e in _read(a.files["train"])] == ["Hello!", "Billing team."]


def test_the_format_can_be_forced(tmp_path):
    path = GOOD / "prompt_completion.jsonl"
    result = CliRunner().invoke(main, ["validate", str(path), "--format", "vertex_text"])
    assert result.exit_code == 1
    assert f"{path}:1: missing field 'input_text' [missing_field]" in result.output
    result = CliRunner().invoke(main, ["validate", str(path), "--format", "prompt_completion"])
    assert result.exit_code == 0, result.output
    # A CSV named .txt is read as CSV when told so.
    table = tmp_path / "table.txt"
    table.write_bytes((GOOD / "table.csv").read_bytes())
    data = '{"input_column": "question", "output_column": "answer"}'
    result = CliRunner().invoke(main, ["validate", str(table), "--format", "csv", "--data", data])
    assert result.exit_code == 0, result.output


def test_truncate_policy_cuts_inputs_from_the_start_and_outputs_at_the_end(tmp_path):
    records = _pairs(16)
    records[3] = {"input_text": "start " + "middle " * 300 + "END", "output_text": "ok"}
    records[5] = {"input_text": "short", "output_text": "BEGIN " + "more words " * 300}
    path = write_jsonl(tmp_path / "long.jsonl", records)
    limits = {"max_input_tokens": 64, "max_output_tokens": 32}
    with pytest.raises(DataValidationError) as info:
        validate_dataset(str(path), "", tmp_path / "rejected", DataSettings(**limits))
    assert f"{path}:4: input has " in str(info.value) and "[input_too_long]" in str(info.value)
    assert f"{path}:6: output has " in str(info.value) and "[output_too_long]" in str(info.value)
    result = validate_dataset(
        str(path), "", tmp_path / "out", DataSettings(**limits, length_policy="truncate")
    )
    assert result.report.truncations == {"input": 1, "output": 1}
    assert any(f"{path}:4: input" in t for t in result.report.truncated_first)
    rows = _read(result.files["train"])
    cut_input = next(r["input_text"] for r in rows if r["input_text"].endswith("END"))
    cut_output = next(r["output_text"] for r in rows if r["output_text"].startswith("BEGIN"))
    from adaptune.base_models.tokenizer import load_fast_tokenizer
    from adaptune.data.token_counting import TokenCounter

    counter = TokenCounter(load_fast_tokenizer("builtin:tiny-gpt2"))
    assert 50 < counter.count([cut_input])[0] <= 64 and not cut_input.startswith("start")
    assert 20 < counter.count([cut_output])[0] <= 32
    assert "## Truncations" in result.report.to_markdown()


def test_truncating_a_conversation_drops_its_oldest_turns_first(tmp_path):
    long_turn = "old words " * 100
    record = {
        "messages": [
            {"role": "user", "content": long_turn},
            {"role": "assistant", "content": "first", "weight": 0},
            {"role": "user", "content": "latest question"},
            {"role": "assistant", "content": "latest answer"},
        ]
    }
    settings = DataSettings(max_input_tokens=40, length_policy="truncate", min_examples=1)
    result = validate_dataset(
        str(write_jsonl(tmp_path / "c.jsonl", [record])), "", tmp_path / "out", settings
    )
    assert _read(result.files["train"]) == [
        {"input_text": "latest question", "output_text": "latest answer"}
    ]


def test_max_invalid_fraction_drops_bad_records_and_lists_every_drop(tmp_path):
    records = [json.dumps(r) for r in _pairs(20)]
    records[4] = "{broken"
    records[9] = json.dumps({"input_text": "question 1", "output_text": "answer 1"})  # duplicate
    path = tmp_path / "some-bad.jsonl"
    path.write_text("\n".join(records) + "\n")
    with pytest.raises(DataValidationError):
        validate_dataset(str(path), "", tmp_path / "strict")
    with pytest.raises(DataValidationError, match=r"more than max_invalid_fraction=0.05"):
        validate_dataset(str(path), "", tmp_path / "tight", DataSettings(max_invalid_fraction=0.05))
    result = validate_dataset(
        str(path), "", tmp_path / "out", DataSettings(max_invalid_fraction=0.1)
    )
    assert result.counts == {"train": 18}
    dropped = _read(result.files["dropped"])
    assert [(d["line"], d["category"]) for d in dropped] == [(5, "not_json"), (10, "duplicate")]
    assert "dropped, each listed in dropped.jsonl" in result.report.to_markdown()
    assert result.report.to_metadata()["dropped"] == 2


def test_settings_reject_unknown_keys_and_bad_values_and_accept_struct_floats():
    settings = DataSettings.from_dict({"min_examples": 8.0, "max_input_tokens": 512.0})
    assert settings.min_examples == 8 and isinstance(settings.max_input_tokens, int)
    assert DataSettings.from_dict(settings.to_dict()) == settings
    for bad, message in [
        ({"min_exmaples": 3}, r"unknown data setting\(s\) \['min_exmaples'\]"),
        ({"format": "xml"}, "data.format must be one of"),
        ({"length_policy": "cut"}, "data.length_policy"),
        ({"min_examples": 2.5}, "data.min_examples must be an integer >= 0"),
        ({"max_input_tokens": 0}, "data.max_input_tokens must be an integer >= 1"),
        ({"max_invalid_fraction": 1.0}, r"max_invalid_fraction must be a finite number in \[0, 1"),
        ({"eval_fraction": 0}, r"eval_fraction must be a finite number in \(0, 1\)"),
        ({"min_examples": 10, "max_examples": 5}, "below data.min_examples"),
        ({"input_column": ""}, "data.input_column must be a non-empty string"),
    ]:
        with pytest.raises(UserError, match=message):
            DataSettings.from_dict(bad)


def test_the_cli_reports_bad_options_with_exit_2(tmp_path):
    path = str(GOOD / "vertex_text.jsonl")
    result = CliRunner().invoke(main, ["validate", path, "--data", "{nope"])
    assert result.exit_code == 2 and "Invalid value for '--data': not valid JSON" in result.output
    result = CliRunner().invoke(main, ["validate", path, "--data", '{"colour": 1}'])
    assert result.exit_code == 2 and "unknown data setting" in result.output
    result = CliRunner().invoke(main, ["validate", path, "--base-model", str(tmp_path)])
    assert result.exit_code == 2 and "cannot load its tokenizer" in result.output
    html = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["validate", path, "--html", str(html)])
    assert result.exit_code == 0 and "<h1>Data validation: PASSED</h1>" in html.read_text()


def test_report_percentiles_labels_and_metadata(tmp_path):
    records = [{"input_text": "word " * (i + 1), "output_text": f"label{i % 2}"} for i in range(40)]
    report, _ = check_dataset(str(write_jsonl(tmp_path / "r.jsonl", records)))
    lengths = report.lengths["input"]
    assert lengths["sampled"] == 40 and lengths["every"] == 1
    assert lengths["p5"] < lengths["p50"] < lengths["p95"] <= lengths["max"]
    assert report.labels.distribution() == {"label0": 20, "label1": 20}
    meta = report.to_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["token_lengths"]["input"]["max"] == lengths["max"]
    free_text = [{"input_text": f"q{i}", "output_text": f"a long answer {i}"} for i in range(40)]
    report, _ = check_dataset(str(write_jsonl(tmp_path / "f.jsonl", free_text)))
    assert report.labels.distribution() is None
    assert "Output labels" not in report.to_markdown()
    page = report.to_html()
    assert page.startswith("<!doctype html>") and "<table>" in page


def test_the_length_sample_stays_bounded_and_evenly_spread():
    sample = LengthSample()
    for ordinal in range(5 * SAMPLE_CAP):
        if sample.wants(ordinal):
            sample.add(ordinal)
        if ordinal % 1000 == 999:
            sample.thin()
    sample.thin()
    assert len(sample.values) <= SAMPLE_CAP and sample.stride == 8
    assert all(v % sample.stride == 0 for v in sample.values)
    assert sample.values == list(range(0, sample.values[-1] + 1, sample.stride))


def test_the_split_key_includes_the_context():
    base = {"input_text": "q", "output_text": "a"}
    with_context = {**base, "context": [{"role": "user", "text": str(i)} for i in range(2)]}
    decisions = {
        json.dumps(r): [
            format_text_to_text.__globals__["in_eval_split"](r, f / 100) for f in range(1, 100)
        ]
        for r in (base, with_context)
    }
    assert len({tuple(d) for d in decisions.values()}) == 2


def test_format_self_check_catches_examples_without_a_target_token():
    good = [{"prompt": "Q: a\nA:", "target": " yes"}]
    check_target_tokens(good, "builtin:tiny-gpt2")
    with pytest.raises(DataValidationError, match=r"examples 2\) \[target_masked\]"):
        check_target_tokens([*good, {"prompt": "Q: b\nA:", "target": ""}], "builtin:tiny-gpt2")


def test_formatting_renders_chat_examples_and_checks_targets(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", [CONVERSATION] * 1 + [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(30)
    ])
    validate_dataset(str(path), "", tmp_path / "valid")
    result = format_text_to_text(
        tmp_path / "valid", tmp_path / "fmt", "Q: {input_text}\nA:", base_model="builtin:tiny-gpt2"
    )
    pairs = _read(result.files["train"]) + _read(result.files["eval"])
    assert {"prompt": "Be brief.\nQ: Hi\nA:Hello!\nQ: Refund?\nA:", "target": "Billing team."} in (
        pairs
    )
    assert len(pairs) == 32


@pytest.mark.slow
def test_memory_does_not_grow_with_file_size(tmp_path):
    """Peak RSS of the validator on a file 8x larger grows by far less than the file does."""
    script = (
        "import json, resource, sys\n"
        "from adaptune.data.validation import check_dataset\n"
        "path = sys.argv[1]\n"
        "with open(path, 'w') as f:\n"
        "    for i in range(int(sys.argv[2])):\n"
        "        f.write(json.dumps({'input_text': f'record {i} ' + 'text ' * 60,"
        " 'output_text': 'x'}) + '\\n')\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "report, _ = check_dataset(path)\n"
        "assert report.passed\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    peaks = {}
    for n in (20_000, 160_000):
        path = tmp_path / f"{n}.jsonl"
        out = subprocess.run(
            [sys.executable, "-c", script, str(path), str(n)],
            check=True,
            capture_output=True,
            text=True,
        )
        peaks[n] = int(out.stdout.split()[-1]) * 1024
        sizes = path.stat().st_size
        path.unlink()
        peaks[f"size{n}"] = sizes
    file_growth = peaks["size160000"] - peaks["size20000"]
    rss_growth = peaks[160_000] - peaks[20_000]
    assert file_growth > 40_000_000
    assert rss_growth < file_growth / 4, (rss_growth, file_growth)
    print(f"file +{file_growth / 1e6:.0f} MB, peak RSS +{rss_growth / 1e6:.0f} MB")


def test_the_runner_merges_the_data_dict_key_by_key_and_checks_it(tmp_path):
    from conftest import COMPILED

    from adaptune.runner.params import declared_parameters, resolve_params

    declared = declared_parameters(COMPILED)
    (tmp_path / "train.jsonl").write_text((GOOD / "vertex_text.jsonl").read_text())
    params = resolve_params(
        declared,
        {"train_data": "train.jsonl", "data": {"max_examples": 1000}},
        {"data": {"length_policy": "truncate"}},
        tmp_path,
    )
    assert params["data"] == {
        **DataSettings().to_dict(),
        "max_examples": 1000,
        "length_policy": "truncate",
    }
    with pytest.raises(UserError, match="unknown data setting"):
        resolve_params(
            declared, {"train_data": "train.jsonl", "data": {"formt": "csv"}}, {}, tmp_path
        )


def test_run_refuses_bad_data_settings_before_anything_runs(tmp_path):
    runs = tmp_path / "runs"
    args = ["run", "--train-data", str(GOOD / "vertex_text.jsonl"), "--runs-dir", str(runs)]
    result = CliRunner().invoke(main, [*args, "--data", '{"formt": "csv"}'])
    assert result.exit_code == 2 and "unknown data setting(s) ['formt']" in result.output
    result = CliRunner().invoke(main, [*args, "--data", "[1"])
    assert result.exit_code == 2 and "Invalid value for '--data': not valid JSON" in result.output
    assert not runs.exists()


def test_unusual_but_valid_unicode_passes_unchanged(tmp_path):
    texts = [
        "emoji 😀👩‍💻",
        "日本語のテキスト",
        "العربية من اليمين",
        "e\u0301 combining",
        "zero\u200bwidth",
        "ﷺ ligature",
        "tab\tand\nnewline",
    ]
    records = [{"input_text": f"{t} {i}", "output_text": t} for i in range(3) for t in texts]
    result = validate_dataset(
        str(write_jsonl(tmp_path / "u.jsonl", records)), "", tmp_path / "out"
    )
    assert _read(result.files["train"]) == records
