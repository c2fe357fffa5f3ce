"""Hostile settings: configs and flags a careless user writes, each refused before anything runs.

Every case goes through the command line as typed (``adaptune run``; a sample through
``adaptune vertex submit`` and ``adaptune vertex schedule create``) and must end with exit 2,
one line naming the setting as the user wrote it, no traceback, no run directory, and nothing
changed in the working directory, the runs directory or the registry.

The field cases are generated from an independent spec (``FIELDS``): for every key of every
dict parameter its kind (an integer >= 0, a fraction, a choice, ...), and for each kind the
values that must be refused (strings for numbers, booleans for integers, ``.inf``/``.nan``,
``10**30``, nulls, lists, NUL characters, huge strings), each sent once through a JSON flag or
a config file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import SAMPLE
from hostile import invoke, one_line_error, tree

pytestmark = pytest.mark.hostile

INF, NAN, HUGE = float("inf"), float("nan"), 10**30
LONG = "x" * 70_000  # over every string limit (64 KiB for free text, 4 KiB otherwise)

# Values refused for each kind of setting, whatever the key.
BAD = {
    "int>=0": ["3", 2.5, True, None, -1, HUGE, [1], INF],
    "int>=1": ["1", 0, False, 1.5, HUGE, {"a": 1}],
    "int>=8": ["256", 4, True, 2.0**70, NAN],
    "seed": ["0", -1, 2**40, True, 0.5],
    "number>0": ["1e-3", "fast", True, 0, -1.0, INF, NAN, None, [0.1]],
    "number>1": ["10", 1, True, INF, NAN],
    "number": ["0.5", True, INF, NAN, None, [0.5]],
    "fraction[0,1)": ["0.1", 1, 1.5, -0.1, INF, NAN, True],
    "fraction(0,1)": ["0.2", 0, 1, INF, NAN, False],
    "fraction[0,1]": ["0", -0.1, 1.5, INF, True],
    "fraction[-1,1]": ["0.1", 2, -2, NAN, True],
    "number>=0": ["0", -0.5, INF, NAN, True],
    "bool": ["true", 1, None, "yes", [True]],
    "choice": [3, None, "nope", ["auto"], {"x": 1}, "auto\x00", ""],
    "string": [3, ["a"], {"a": "b"}, True, None, "a\x00b", LONG],
    "name": [3, "", ["a"], None, "col\x00", LONG],
    "text": [3, ["a"], None, "a\x00b", LONG],
    "modules": [3, [1], "", [], {"a": "b"}, ["ok", ""], True, ["a\x00"]],
    "modules_or_null": [3, [1], "", [], True, {"a": 1}],
    "percent": ["50", 101, -1, 50.5, True, None],
}

FIELDS: dict[str, dict[str, str]] = {
    "training": {
        "steps": "int>=0",
        "epochs": "int>=0",
        "learning_rate": "number>0",
        "batch_size": "int>=1",
        "grad_accum": "int>=1",
        "schedule": "choice",
        "warmup_fraction": "fraction[0,1)",
        "max_grad_norm": "number>0",
        "max_length": "int>=8",
        "max_batch_tokens": "int>=0",
        "eval_every": "int>=0",
        "patience": "int>=0",
        "checkpoint_every": "int>=0",
        "divergence_factor": "number>1",
        "device_memory_gib": "number>=0",
        "attention": "choice",
        "compile": "bool",
        "seed": "seed",
    },
    "data": {
        "format": "choice",
        "input_column": "name",
        "output_column": "name",
        "max_input_tokens": "int>=1",
        "max_output_tokens": "int>=1",
        "length_policy": "choice",
        "min_examples": "int>=0",
        "max_examples": "int>=0",
        "max_invalid_fraction": "fraction[0,1)",
        "eval_fraction": "fraction(0,1)",
        "prompt_format": "choice",
        "system_instruction": "text",
    },
    "evaluation": {
        "max_new_tokens": "int>=0",
        "temperature": "number>=0",
        "batch_size": "int>=1",
        "seed": "seed",
        "report_examples": "int>=0",
        "max_length": "int>=8",
        "attention": "choice",
    },
    "gate": {
        "metric": "choice",
        "threshold": "number",
        "min_improvement": "fraction[-1,1]",
        "tolerance": "fraction[0,1]",
    },
    "adapter:lora": {
        "r": "int>=1",
        "alpha": "number>0",
        "dropout": "fraction[0,1)",
        "target_modules": "modules",
        "use_rslora": "bool",
        "use_dora": "bool",
    },
    "adapter:prompt_tuning": {"num_virtual_tokens": "int>=1", "init": "choice"},
    "adapter:ia3": {"target_modules": "modules_or_null", "feedforward_modules": "modules_or_null"},
    "adapter:last_layers": {"num_layers": "int>=1"},
    "vertex_deploy": {
        "endpoint": "string",
        "traffic_percentage": "percent",
        "machine_type": "name",
        "accelerator_type": "string",
        "accelerator_count": "int>=0",
        "min_replicas": "int>=1",
        "max_replicas": "int>=1",
        "serving_image": "string",
        "artifact_prefix": "string",
        "project": "name",
        "location": "string",
        "pipeline_root": "string",
        "kms_key": "string",
    },
}
# A value of another type where an ia3 list of modules may also be null, and for the keys
# that go together (feedforward_modules needs target_modules), give both.
PAIRED = {("adapter:ia3", "feedforward_modules"): ("target_modules", ["c_attn"])}


def _field_cases() -> list:
    cases = []
    for where, keys in FIELDS.items():
        param, _, method = where.partition(":")
        for key, kind in keys.items():
            for index, value in enumerate(BAD[kind]):
                body: dict = {"method": method} if method else {}
                if param == "vertex_deploy" and key != "project":
                    body["project"] = "p"
                partner = PAIRED.get((where, key))
                if partner:
                    body[partner[0]] = partner[1]
                body[key] = value
                channel = "config" if (index + len(key)) % 2 else "flag"
                name = f"{where}.{key}={_label(value)}-{channel}"
                cases.append(pytest.param(param, key, body, channel, id=name))
    return cases


def _label(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 12 else text[:9] + "..."


FLAG_OF = {"training": "--training", "data": "--data", "adapter": "--adapter"}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A working directory with a data file, and a runner that must never be reached."""
    from adaptune.runner import run

    def must_not_run(*args, **kwargs):
        raise AssertionError("the pipeline was started")

    monkeypatch.setattr(run, "run_local", must_not_run)
    monkeypatch.setattr(run, "unchanged_since", must_not_run)
    monkeypatch.chdir(tmp_path)
    lines = (SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines(True)[:32]
    (tmp_path / "train.jsonl").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "registry").mkdir()
    return tmp_path


def refused(root: Path, *args: object, input: str | None = None) -> str:
    """Run ``adaptune ARGS`` in ``root``: exit 2, one line, nothing changed, no run made."""
    before = tree(root)
    result = invoke(*args, input=input)
    line = one_line_error(result, 2)
    assert line.startswith("adaptune: error: "), line
    assert tree(root) == before, "a refused command changed files"
    assert not (root / "runs").exists()
    return line


class _Dumper(yaml.SafeDumper):
    """Quotes a string such as "1e-3" that a config file reads as a number (YAML 1.2)."""


_Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _write_config(root: Path, mapping: dict) -> Path:
    path = root / "config.yaml"
    path.write_text(yaml.dump(mapping, Dumper=_Dumper, allow_unicode=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("param", "key", "body", "channel"), _field_cases())
def test_a_bad_value_of_a_dict_setting_is_refused_naming_it(workspace, param, key, body, channel):
    args = ["run", "--train-data", "train.jsonl"]
    if channel == "config":
        config = _write_config(workspace, {param: body})
        args += ["--config", config]
    elif param in FLAG_OF:
        args += [FLAG_OF[param], json.dumps(body)]
    else:
        args += ["--set", f"{param}={json.dumps(body)}"]
    line = refused(workspace, *args)
    assert f"{param}.{key}" in line, line
    if channel == "config":
        (workspace / "config.yaml").unlink()


SCALAR_CASES = [
    # (extra args, the setting the one line must name)
    (["--set", 'seed="3"'], "seed"),
    (["--set", "seed=2.5"], "seed"),
    (["--set", "seed=true"], "seed"),
    (["--set", "seed=-1"], "seed"),
    (["--set", f"seed={2**40}"], "seed"),
    (["--set", "seed=[1]"], "seed"),
    (["--set", "train_data=3"], "train_data"),
    (["--set", 'train_data=["a.jsonl"]'], "train_data"),
    (["--set", 'train_data=""'], "train_data"),
    (["--train-data", "no-such.jsonl"], "train_data"),
    (["--train-data", "nothing-*.jsonl"], "train_data"),
    (["--train-data", "."], "train_data"),
    (["--train-data", "a\x00b.jsonl"], "train_data"),
    (["--eval-data", "no-such-eval.jsonl"], "eval_data"),
    (["--eval-data", "none/*.csv"], "eval_data"),
    (["--set", "eval_data=7"], "eval_data"),
    (["--base-model", "builtin:nope"], "builtin:nope"),
    (["--base-model", "no/such/dir"], "base model"),
    (["--base-model", "."], "config.json"),
    (["--base-model", "train.jsonl"], "base model"),
    (["--set", "base_model=5"], "base_model"),
    (["--base-model", ""], "base_model"),
    (["--prompt-template", "no placeholder"], "prompt_template"),
    (["--prompt-template", "{input_text}" + "x" * 70_000], "prompt_template"),
    (["--prompt-template", "{input_text}\x00"], "prompt_template"),
    (["--set", "prompt_template=[1]"], "prompt_template"),
    (["--model-name", "Bad Name"], "model name"),
    (["--model-name", "../escape"], "model name"),
    (["--set", "model_name=12"], "model_name"),
    (["--model-name", ""], "model_name"),
    (["--registry-dir", "train.jsonl"], "registry_dir"),
    (["--registry-dir", "train.jsonl/inside"], "registry_dir"),
    (["--registry-dir", "reg\x00"], "registry_dir"),
    (["--set", "registry_dir=1"], "registry_dir"),
    (["--set", "colour=blue"], "colour"),
    (["--set", "training=5"], "training"),
    (["--set", 'adapter="lora"'], "adapter"),
    (["--set", "data=[1]"], "data"),
    (["--set", "gate=null"], "gate"),
    (["--set", "seed=null"], "seed"),
    (["--training", '{"seed": 3}'], "training.seed"),
    (["--set", 'evaluation="fast"'], "evaluation"),
    (["--set", "vertex_deploy=[1]"], "vertex_deploy"),
    (["--set", 'vertex_deploy={"endpoint": "x"}'], "vertex_deploy.project"),
    (["--set", 'vertex_deploy={"project": "p", "labels": [1]}'], "vertex_deploy.labels"),
    (["--set", 'vertex_deploy={"project": "p", "labels": {"a": 1}}'], "vertex_deploy.labels"),
    (["--set", 'vertex_deploy={"project": "p", "colour": 1}'], "vertex_deploy"),
    (["--training", '{"lerning_rate": 0.1}'], "lerning_rate"),
    (["--data", '{"formt": "csv"}'], "formt"),
    (["--adapter", '{"method": "ia3", "r": 8}'], "'r'"),
    (["--adapter", '{"method": ["lora"]}'], "adapter.method"),
    (["--adapter", '{"method": null}'], "adapter.method"),
    (["--adapter", '{"method": "LoRA"}'], "adapter.method"),
    (["--adapter", '{"method": ""}'], "adapter.method"),
    (["--set", 'gate={"metrik": "bleu"}'], "metrik"),
    (["--set", 'evaluation={"temprature": 0}'], "temprature"),
    (["--learning-rate", "inf"], "training.learning_rate"),
    (["--learning-rate", "nan"], "training.learning_rate"),
    (["--learning-rate", "-1"], "training.learning_rate"),
    (["--learning-rate", "fast"], "--learning-rate"),
    (["--train-steps", "1e3"], "--train-steps"),
    (["--train-steps", str(HUGE)], "training.steps"),
    (["--batch-size", "0"], "training.batch_size"),
    (["--seed", "x"], "--seed"),
    (["--threshold", "nan"], "gate.threshold"),
    (["--tolerance", "-0.5"], "gate.tolerance"),
    (["--min-improvement", "inf"], "gate.min_improvement"),
    (["--gate-metric", "accuracy"], "gate.metric"),
    (["--training", '{"steps": 0, "epochs": 0}'], "training.steps"),
    (["--training", '{"patience": 2, "eval_every": 0}'], "training.patience"),
    (["--data", '{"min_examples": 10, "max_examples": 5}'], "data.max_examples"),
    (
        ["--set", 'vertex_deploy={"project": "p", "min_replicas": 3, "max_replicas": 2}'],
        "vertex_deploy.max_replicas",
    ),
    (
        ["--set", 'vertex_deploy={"project": "p", "accelerator_type": "NVIDIA_L4"}'],
        "vertex_deploy.accelerator_type",
    ),
    (
        ["--set", 'vertex_deploy={"project": "p", "artifact_prefix": "/tmp/x"}'],
        "vertex_deploy.artifact_prefix",
    ),
    (["--set", 'vertex_deploy={"project": "p", "pipeline_root": "/tmp/x"}'], "pipeline_root"),
    (["--set", 'vertex_deploy={"project": "p", "endpoint": "a\\"b"}'], "vertex_deploy.endpoint"),
]


@pytest.mark.parametrize(("extra", "named"), SCALAR_CASES, ids=lambda v: _label(v))
def test_a_bad_parameter_or_flag_is_refused_naming_it(workspace, extra, named):
    gives_train_data = any(str(a).startswith(("--train-data", "train_data=")) for a in extra)
    args = ["run", *([] if gives_train_data else ["--train-data", "train.jsonl"]), *extra]
    line = refused(workspace, *args)
    assert named in line, line


JSON_FLAG_CASES = [
    ("--training", "{steps: 3}", "not valid JSON"),
    ("--training", "", "not valid JSON"),
    ("--training", "[1, 2]", "JSON object"),
    ("--data", '"csv"', "JSON object"),
    ("--adapter", "null", "JSON object"),
    ("--adapter", '{"method": "lora"} trailing', "not valid JSON"),
    ("--adapter", '{"r": 4, "r": 8}', "appears twice"),
    ("--training", "[" * 100_000 + "]" * 100_000, "nested"),
    ("--training", '{"steps": ' + "9" * 5000 + "}", "not valid JSON"),
    ("--data", '{"format": "csv"', "not valid JSON"),
    ("--set", 'training={"steps": 1, "steps": 2}', "appears twice"),
    ("--set", "training=" + "[" * 50 + "]" * 50, "nested"),
    ("--set", "seed", "NAME=VALUE"),
    ("--set", "=3", "NAME=VALUE"),
]


@pytest.mark.parametrize(("flag", "value", "problem"), JSON_FLAG_CASES, ids=lambda v: _label(v))
def test_a_bad_json_flag_is_one_line_naming_the_flag(workspace, flag, value, problem):
    line = refused(workspace, "run", "--train-data", "train.jsonl", flag, value)
    assert flag in line and problem in line, line


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)

CONFIG_CASES = [
    # (config file bytes, what the line must say)
    (b"train_data: !!python/object/apply:os.system ['touch pwned']\n", "not valid YAML"),
    (b"seed: !!python/name:os.system\n", "not valid YAML"),
    (b"adapter: !!python/object:collections.OrderedDict {}\n", "not valid YAML"),
    (b"seed: 1\nseed: 2\n", "appears twice"),
    (b"training:\n  steps: 1\n  steps: 2\n", "appears twice"),
    (b"base: &b {steps: 2}\ntraining: *b\n", "aliases"),
    (b"base: &b {steps: 2}\ntraining:\n  <<: *b\n", "aliases"),
    (ALIAS_BOMB.encode(), "aliases"),
    (b"seed: !!binary aGVsbG8=\n", "seed"),
    (b"seed: 2024-01-01\n", "seed"),
    (b"training: !!set {steps, epochs}\n", "training"),
    (b"training: {steps: !!float 1.5}\n", "training.steps"),
    (b"training: {learning_rate: .inf}\n", "training.learning_rate"),
    (b"training: {learning_rate: .nan}\n", "training.learning_rate"),
    (b"training: {learning_rate: '1e-3'}\n", "training.learning_rate"),
    (b"training:\n", "training is null"),
    (b"train_data: ~\n", "train_data is null"),
    (b"training: {steps: " + b"9" * 5000 + b"}\n", "not valid YAML"),
    (b"training: " + b"[" * 5000 + b"]" * 5000 + b"\n", "config"),
    (b"1: x\n", "parameter names must be strings"),
    (b"training: {1: 2}\n", "training keys must be strings"),
    (b"[1, 2]: x\n", "config"),
    (b"- train_data: a\n", "expected a mapping"),
    (b"just a string\n", "expected a mapping"),
    (b"42\n", "expected a mapping"),
    (b"training: [1, 2]\n", "training must be a mapping"),
    (b"adapter: lora\n", "adapter must be a mapping"),
    (b"adapter: {method: [ia3]}\n", "adapter.method"),
    (b"train_data: \xff\xfe\n", "not UTF-8"),
    (b"a: [unclosed\n", "not valid YAML"),
    (b"a:\tb\n\t- c\n", "not valid YAML"),
    (b"seed: 1\x00\n", "not valid YAML"),
    (b"x: " + b"y" * (1 << 20) + b"\n", "KiB"),
    (b"prompt_template: no placeholder\n", "prompt_template"),
    (b"model_name: 123\n", "model_name"),
    (b"train_data: missing.jsonl\n", "train_data"),
    (b"registry_dir: train.jsonl\n", "registry_dir"),
    (b"vertex_deploy: {project: p, traffic_percentage: 100.5}\n", "traffic_percentage"),
    (b"evaluation: {temperature: -.inf}\n", "evaluation.temperature"),
    (b"gate: {threshold: null}\n", "gate.threshold"),
    (b'data: {system_instruction: "a\\0b"}\n', "data.system_instruction"),
]


@pytest.mark.parametrize(("content", "named"), CONFIG_CASES, ids=lambda v: _label(v))
def test_a_bad_config_file_is_refused_naming_the_problem(workspace, content, named):
    config = workspace / "config.yaml"
    config.write_bytes(content)
    args = ["run", "--config", config]
    if b"train_data" not in content:
        args += ["--train-data", "train.jsonl"]
    line = refused(workspace, *args)
    assert named in line, line
    assert not (workspace / "pwned").exists()


def test_a_config_that_is_a_directory_or_missing_is_refused(workspace):
    (workspace / "confdir").mkdir()
    assert "is a directory" in refused(workspace, "run", "--config", "confdir")
    assert "not found" in refused(workspace, "run", "--config", "missing.yaml")


METHOD_CASES = [
    ({"method": "lora", "target_modules": ["q_proj", "v_proj"]}, {}, "adapter.target_modules"),
    ({"method": "lora", "target_modules": "nope"}, {}, "adapter.target_modules"),
    (
        {"method": "ia3", "target_modules": ["k_proj"], "feedforward_modules": ["k_proj"]},
        {},
        "adapter.target_modules",
    ),
    (
        {"method": "ia3", "target_modules": ["c_attn"], "feedforward_modules": ["c_fc"]},
        {},
        "adapter.feedforward_modules",
    ),
    ({"method": "last_layers", "num_layers": 3}, {}, "adapter.num_layers"),
    (
        {"method": "prompt_tuning", "num_virtual_tokens": 300},
        {"max_length": 256},
        "adapter.num_virtual_tokens",
    ),
    ({"method": "lora"}, {"max_length": 1024}, "training.max_length"),
]


@pytest.mark.parametrize(("adapter", "training", "named"), METHOD_CASES, ids=lambda v: _label(v))
def test_a_method_the_model_cannot_take_is_refused_before_training(
    workspace, adapter, training, named
):
    args = ["run", "--train-data", "train.jsonl", "--adapter", json.dumps(adapter)]
    if training:
        args += ["--training", json.dumps(training)]
    line = refused(workspace, *args)
    assert named in line, line


def test_last_layers_beyond_a_seq2seq_models_depth_is_refused(workspace):
    adapter = json.dumps({"method": "last_layers", "num_layers": 5})
    line = refused(
        workspace,
        "run",
        "--train-data",
        "train.jsonl",
        "--base-model",
        "builtin:tiny-t5",
        "--adapter",
        adapter,
    )
    assert "adapter.num_layers must be at most 2" in line, line


def test_evaluation_beyond_the_context_is_refused(workspace):
    line = refused(
        workspace,
        "run",
        "--train-data",
        "train.jsonl",
        "--set",
        'evaluation={"max_length": 4096}',
    )
    assert "evaluation.max_length must be at most 512" in line, line


RUNS_DIR_CASES = ["train.jsonl", "train.jsonl/runs", "runs\x00x"]


@pytest.mark.parametrize("runs_dir", RUNS_DIR_CASES, ids=_label)
def test_an_unusable_runs_dir_is_refused_before_anything_runs(workspace, runs_dir):
    line = refused(workspace, "run", "--train-data", "train.jsonl", "--runs-dir", runs_dir)
    assert "--runs-dir" in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_runs_dir_is_refused(workspace):
    locked = workspace / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = refused(workspace, "run", "--train-data", "train.jsonl", "--runs-dir", locked)
        assert "not writable" in line
    finally:
        locked.chmod(0o700)


def test_a_runs_dir_on_a_read_only_file_system_is_refused(workspace):
    if os.access("/sys", os.W_OK) or not Path("/sys").is_dir():
        pytest.skip("/sys is writable here")
    line = refused(workspace, "run", "--train-data", "train.jsonl", "--runs-dir", "/sys/runs")
    assert "not writable" in line, line


def test_reproduce_refuses_an_unusable_runs_dir(workspace):
    line = refused(workspace, "reproduce", "some-run", "--runs-dir", "train.jsonl")
    assert "--runs-dir" in line


# The same refusals through the Vertex AI commands: nothing is staged or sent.
VERTEX_SAMPLE = [
    ["--training", '{"learning_rate": "fast"}'],
    ["--training", '{"steps": 1e30}'],
    ["--adapter", '{"method": "ia3", "r": 4}'],
    ["--adapter", '{"method": "last_layers", "num_layers": 9}'],
    ["--adapter", '{"method": "lora", "target_modules": ["q_proj"]}'],
    ["--data", '{"eval_fraction": NaN}'],
    ["--set", 'gate={"threshold": Infinity}'],
    ["--set", 'vertex_deploy={"project": "p", "traffic_percentage": true}'],
    ["--set", "seed=true"],
    ["--train-data", "no-such.jsonl"],
    ["--base-model", "builtin:nope"],
    ["--model-name", "Bad Name"],
    ["--adapter", "{bad"],
]


@pytest.fixture
def vertex_env(monkeypatch, workspace):
    """Vertex settings that would reach a dead port: a refusal must come before any call."""
    monkeypatch.setenv("ADAPTUNE_PROJECT", "test-project")
    monkeypatch.setenv("ADAPTUNE_LOCATION", "us-central1")
    monkeypatch.setenv("ADAPTUNE_PIPELINE_ROOT", "gs://bucket/root")
    monkeypatch.setenv("ADAPTUNE_API_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("ADAPTUNE_VERTEX_CONFIG", raising=False)
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), "p"))
    return workspace


@pytest.mark.parametrize(
    "command",
    [["vertex", "submit"], ["vertex", "schedule", "create", "--cron", "0 3 * * 1"]],
    ids=["submit", "schedule"],
)
@pytest.mark.parametrize("extra", VERTEX_SAMPLE, ids=lambda v: _label(v))
def test_vertex_commands_refuse_the_same_settings_before_any_call(vertex_env, command, extra):
    args = [*command, "--train-data", "train.jsonl", *extra]
    line = refused(vertex_env, *args)
    assert "Google Cloud" not in line, line


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("param", ["--train-data", "--eval-data"])
def test_data_that_is_not_a_regular_file_is_refused_without_reading_it(workspace, kind, param):
    path = "/dev/zero"
    if kind == "fifo":
        path = str(workspace / "pipe")
        os.mkfifo(path)  # reading it would wait forever
    args = ["--train-data", "train.jsonl", "--eval-data", path]
    if param == "--train-data":
        args = ["--train-data", path]
    line = refused(workspace, "run", *args)
    assert "is not a regular file (a device, pipe or socket)" in line, line
    assert param.removeprefix("--").replace("-", "_") in line, line


def test_a_runs_dir_that_cannot_be_created_is_one_line(tmp_path, monkeypatch):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    monkeypatch.chdir(tmp_path)
    lines = (SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines(True)[:32]
    (tmp_path / "train.jsonl").write_text("".join(lines), encoding="utf-8")
    before = tree(tmp_path)
    result = invoke("run", "--train-data", "train.jsonl", "--runs-dir", "/proc/adaptune-runs")
    line = one_line_error(result, 2)
    assert "cannot create the runs directory /proc/adaptune-runs" in line, line
    assert tree(tmp_path) == before
