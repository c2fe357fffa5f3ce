"""Settings are checked before anything runs; every method can be chosen everywhere; a user
error in a retried task is not worked on again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import COMPILED, SAMPLE
from hostile import invoke, one_line_error, tree
from kfp.dsl import HTML, Dataset, Metrics, Model
from test_cli import captured_run  # noqa: F401  (fixture)
from test_vertex_cli import adc, env  # noqa: F401  (fixtures)
from test_vertex_fakes import (  # noqa: F401  (fixtures)
    BUCKET,
    PARENT,
    cloud,
    fake_vertex,
    gcs_emulator,
)

from adaptune.errors import UserError
from adaptune.runner.params import DICT_PARAMS, SCALAR_PARAMS
from adaptune.step_errors import NOT_REPEATED, reported

TRAIN = str(SAMPLE / "train.jsonl")
METHODS = {
    "lora": {"method": "lora", "r": 4},
    "prompt_tuning": {"method": "prompt_tuning", "num_virtual_tokens": 4},
    "ia3": {"method": "ia3"},
    "last_layers": {"method": "last_layers", "num_layers": 1},
}
LORA_DEFAULT_KEYS = {"alpha", "dropout", "target_modules", "use_rslora", "use_dora"}


def test_every_compiled_parameter_has_a_declared_type():
    types = {"STRING": str, "NUMBER_INTEGER": int, "STRUCT": dict}
    expected = {}
    for compiled in (COMPILED, COMPILED.parent / "gemini_tuning.yaml"):  # both backends'
        spec = yaml.safe_load(compiled.read_text())
        declared = spec["root"]["inputDefinitions"]["parameters"]
        expected |= {name: types[info["parameterType"]] for name, info in declared.items()}
    ours = {name: kind for name, (kind, _) in SCALAR_PARAMS.items()}
    ours |= {name: dict for name in DICT_PARAMS}
    assert ours == expected


# --- all four methods, from every command that takes parameters -------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_can_be_chosen_from_run_flags(captured_run, tmp_path, method):  # noqa: F811
    result = invoke(
        "run",
        "--train-data",
        TRAIN,
        "--runs-dir",
        tmp_path,
        "--adapter",
        json.dumps(METHODS[method]),
    )
    assert result.exit_code == 0, result.output
    adapter = captured_run[0]["params"]["adapter"]
    if method == "lora":  # the same method: merged key by key with the LoRA default
        assert adapter["r"] == 4 and set(adapter) >= LORA_DEFAULT_KEYS
    else:  # another method: its own dict, no LoRA key leaks in
        assert adapter == METHODS[method]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_can_be_chosen_from_a_config_file(captured_run, tmp_path, method):  # noqa: F811
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"train_data": TRAIN, "adapter": METHODS[method]}))
    result = invoke("run", "--config", config, "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    adapter = captured_run[0]["params"]["adapter"]
    assert adapter["method"] == method
    if method != "lora":
        assert adapter == METHODS[method]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_can_be_submitted_and_scheduled_on_vertex(env, adc, monkeypatch, method):  # noqa: F811
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", f"gs://{BUCKET}/methods")
    flags = ["--train-data", TRAIN, "--adapter", json.dumps(METHODS[method])]
    submitted = invoke(
        "vertex", "submit", "--run-id", f"adaptune-{method.replace('_', '-')}", *flags
    )
    assert submitted.exit_code == 0, submitted.output
    (create,) = env["vertex"].calls("POST", "/pipelineJobs")
    sent = create.body["runtimeConfig"]["parameterValues"]["adapter"]
    scheduled = invoke("vertex", "schedule", "create", "--cron", "TZ=Etc/UTC 0 3 * * 1", *flags)
    assert scheduled.exit_code == 0, scheduled.output
    (schedule,) = env["vertex"].calls("POST", f"{PARENT}/schedules")
    job = schedule.body["createPipelineJobRequest"]["pipelineJob"]
    assert job["runtimeConfig"]["parameterValues"]["adapter"] == sent
    assert sent["method"] == method
    if method != "lora":
        assert sent == METHODS[method]
    else:
        assert set(sent) >= LORA_DEFAULT_KEYS


# --- a Hugging Face checkpoint directory: its structure, built without weights -----------------


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A GPT-2-shaped checkpoint's config (3 blocks, 64 positions): all a check needs."""
    from transformers import GPT2Config

    directory = tmp_path / "ckpt"
    GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=64, vocab_size=100).save_pretrained(
        directory
    )
    return directory


@pytest.mark.parametrize(
    ("adapter", "training", "named"),
    [
        ({"method": "last_layers", "num_layers": 4}, {}, "adapter.num_layers must be at most 3"),
        ({"method": "lora", "target_modules": ["q_proj"]}, {}, "adapter.target_modules"),
        ({"method": "lora"}, {"max_length": 128}, "training.max_length must be at most 64"),
        (
            {"method": "prompt_tuning", "num_virtual_tokens": 16},
            {"max_length": 56},
            "adapter.num_virtual_tokens (16) + training.max_length (56)",
        ),
    ],
)
def test_a_checkpoint_is_checked_from_its_config_before_anything_runs(
    checkpoint, tmp_path, monkeypatch, adapter, training, named
):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--train-data", TRAIN, "--base-model", checkpoint, "--adapter"]
    args += [json.dumps(adapter), "--training", json.dumps({"max_length": 48, **training})]
    args += ["--set", 'evaluation={"max_length": 48}']
    before = tree(tmp_path)
    line = one_line_error(invoke(*args))
    assert named in line, line
    assert tree(tmp_path) == before


def test_a_checkpoint_that_fits_is_accepted(checkpoint, captured_run, tmp_path):  # noqa: F811
    for adapter in METHODS.values():
        result = invoke(
            "run",
            "--train-data",
            TRAIN,
            "--base-model",
            checkpoint,
            "--runs-dir",
            tmp_path,
            "--adapter",
            json.dumps(adapter),
            "--training",
            '{"max_length": 32}',
            "--set",
            'evaluation={"max_length": 32}',
        )
        assert result.exit_code == 0, result.output


def test_a_checkpoint_config_no_model_comes_from_is_one_line(checkpoint, tmp_path):
    (checkpoint / "config.json").write_text('{"model_type": "no-such-architecture"}')
    line = one_line_error(
        invoke(
            "run",
            "--train-data",
            TRAIN,
            "--base-model",
            checkpoint,
            "--runs-dir",
            tmp_path / "runs",
        )
    )
    assert "base_model" in line and "config.json" in line, line
    assert not (tmp_path / "runs").exists()


# --- a user error in a retried task --------------------------------------------------------------


def test_a_retry_after_a_user_error_fails_at_once_with_the_same_message(tmp_path, capsys):
    marker = tmp_path / "out-user-error.json"
    inputs = {"adapter": {"method": "ia3"}, "seed": 0}
    attempts = []

    def attempt(given_inputs: dict) -> int:
        with pytest.raises(SystemExit) as exit_, reported("tune_adapter", marker, given_inputs):
            attempts.append(1)
            raise UserError("training diverged at step 4: lower training.learning_rate")
        return exit_.value.code

    assert attempt(inputs) == 1 and len(attempts) == 1
    first = capsys.readouterr().err
    assert attempt(inputs) == 1 and len(attempts) == 1  # the block did not run again
    second = capsys.readouterr().err
    assert NOT_REPEATED in second
    assert [line for line in second.splitlines() if NOT_REPEATED not in line] == (
        first.splitlines()
    )
    assert attempt({**inputs, "seed": 1}) == 1 and len(attempts) == 2  # other inputs: work


def test_the_tune_step_checks_the_method_before_loading_weights(tmp_path, monkeypatch, capsys):
    from adaptune.tuning import adapter as tuning
    from components.tune_adapter import tune_adapter

    def must_not_train(*args, **kwargs):
        raise AssertionError("tuning started")

    monkeypatch.setattr(tuning, "tune_adapter", must_not_train)
    outputs = {}
    for name, cls in (
        ("trained_adapter", Model),
        ("training_metrics", Metrics),
        ("training_report", HTML),
    ):
        outputs[name] = cls(uri=str(tmp_path / name))
        outputs[name].path = str(tmp_path / name)
    formatted = Dataset(uri=str(tmp_path / "formatted"))
    formatted.path = str(tmp_path / "formatted")
    for _ in range(2):
        with pytest.raises(SystemExit):
            tune_adapter.python_func(
                formatted=formatted,
                data_sha256="abc",
                base_model="builtin:tiny-gpt2",
                adapter={"method": "last_layers", "num_layers": 7.0},
                training={"steps": 2.0},
                seed=0,
                **outputs,
            )
    err = capsys.readouterr().err
    assert err.count("adapter.num_layers must be at most 2") == 4  # message + error line, twice
    assert err.count(NOT_REPEATED) == 1
    assert (tmp_path / "trained_adapter-user-error.json").is_file()


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_user_error_in_tuning_is_reported_once_and_not_retrained(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:64]))
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text("".join((SAMPLE / "eval.jsonl").read_text().splitlines(True)[:16]))
    result = invoke(
        "run",
        "--train-data",
        train,
        "--eval-data",
        evaluation,
        "--learning-rate",
        "1000",
        "--train-steps",
        "40",
        "--registry-dir",
        tmp_path / "registry",
        "--runs-dir",
        tmp_path / "runs",
    )
    assert result.exit_code == 1, result.output
    assert "FAILED at step tune-adapter" in result.output
    (run_dir,) = (tmp_path / "runs").glob("adaptune-*")
    log = (run_dir / "run.log").read_text()
    attempts = len(re.findall(r"Executing task \S*tune-adapter", log))
    assert attempts == 3  # kfp.local retried the task twice ...
    assert log.count(NOT_REPEATED) == 2  # ... and neither retry trained again
    errors = [line for line in log.splitlines() if "ADAPTUNE_ERROR" in line]
    assert len(errors) == 3 and len({line.strip() for line in errors}) == 1
    assert "training diverged" in errors[0]
    assert not (tmp_path / "registry").exists()
