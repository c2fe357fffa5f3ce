"""The command line as a user types it: the command tree, JSON options, error reporting,
one parameter resolution for local runs, and the runs table."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import COMPILED, SAMPLE

from adaptune.cli import main
from adaptune.cli.errors import reports_errors
from adaptune.errors import UserError
from adaptune.lineage.store import MetadataStore
from adaptune.runner.run import RunResult
from adaptune.vertex.google_errors import imported_google_errors

TRAIN = str(SAMPLE / "train.jsonl")
# The same flags, as `run`, `vertex submit` and `vertex schedule create` take them.
PARAM_FLAGS = [
    "--set",
    "seed=3",
    "--set",
    'evaluation={"max_new_tokens": 8}',
    "--set",
    "prompt_template=Q: {input_text}\nA:",
    "--adapter",
    '{"method": "lora", "r": 4}',
    "--training",
    '{"epochs": 2}',
    "--train-steps",
    "7",
    "--learning-rate",
    "0.01",
    "--gate-metric",
    "chrf",
    "--threshold",
    "0.2",
    "--model-name",
    "router",
]
# What those flags set; every other parameter keeps its declared default.
EXPECTED = {
    "seed": 3,
    "prompt_template": "Q: {input_text}\nA:",
    "model_name": "router",
}


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def commands_listed(help_text: str) -> set[str]:
    listing = help_text.split("Commands:", 1)[1]
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def test_vertex_commands_live_under_one_group():
    top = invoke("--help")
    assert top.exit_code == 0
    listed = commands_listed(top.output)
    assert "vertex" in listed
    assert not listed & {"submit", "status", "schedule", "deploy-vertex"}
    assert {"run", "reproduce", "validate", "runs", "lineage", "models", "promote"} <= listed
    assert {"rollback", "export-merged", "serve", "predict", "compare"} <= listed
    vertex = invoke("vertex", "--help")
    assert vertex.exit_code == 0
    assert commands_listed(vertex.output) == {"submit", "status", "schedule", "deploy", "lineage"}
    schedule = invoke("vertex", "schedule", "--help")
    assert commands_listed(schedule.output) == {"create", "list", "pause", "resume", "delete"}


@pytest.mark.parametrize(
    "args",
    [["submit", "--dry-run"], ["status", "x"], ["schedule", "list"], ["deploy-vertex", "m"]],
)
def test_the_old_vertex_command_names_are_gone(args):
    result = invoke(*args)
    assert result.exit_code == 2 and "No such command" in result.output


def test_local_lineage_has_no_vertex_flag():
    result = invoke("lineage", "router", "--vertex")
    assert result.exit_code == 2 and "No such option '--vertex'" in result.output


def test_help_texts_say_one_thing_per_word():
    run_help = invoke("run", "--help").output
    submit_help = invoke("vertex", "submit", "--help").output
    runs_help = invoke("runs", "list", "--help").output
    meaning = "Experiment: a named group of runs you list and compare together."
    for text in (run_help, submit_help, runs_help):
        assert meaning in " ".join(text.split())
    assert "Vertex AI Experiments" in " ".join(submit_help.split())
    data_help = "a file, glob or gs:// URI; JSONL, CSV or Parquet"
    for text in (run_help, submit_help, invoke("vertex", "schedule", "create", "--help").output):
        flat = " ".join(text.split())
        assert f"Training data: {data_help}" in flat and f"Eval data: {data_help}" in flat
    for text in (run_help, submit_help, runs_help, invoke("runs", "--help").output):
        assert "deploy" not in text.lower()


@pytest.mark.parametrize(
    ("args", "flag", "problem"),
    [
        (["run", "--train-data", TRAIN, "--adapter", "{method: lora}"], "--adapter", "not valid"),
        (["run", "--train-data", TRAIN, "--training", "[1, 2]"], "--training", "JSON object"),
        (["run", "--train-data", TRAIN, "--data", "3"], "--data", "JSON object"),
        (["vertex", "submit", "--dry-run", "--adapter", '"lora"'], "--adapter", "JSON object"),
        (["vertex", "schedule", "create", "--cron", "x", "--data", "{"], "--data", "not valid"),
        (["validate", TRAIN, "--data", "{nope"], "--data", "not valid JSON"),
    ],
)
def test_a_bad_json_option_is_one_line_naming_it(monkeypatch, tmp_path, args, flag, problem):
    monkeypatch.chdir(tmp_path)  # where `run` would create runs/
    result = invoke(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()  # one line, as every refusal
    assert line.startswith(f"adaptune: error: Invalid value for '{flag}': ") and problem in line
    assert list(tmp_path.iterdir()) == []


def test_set_needs_name_equals_value():
    result = invoke("run", "--train-data", TRAIN, "--set", "seed")
    assert result.exit_code == 2
    assert "Invalid value for '--set': expected NAME=VALUE, got 'seed'" in result.output


@click.command()
@click.argument("kind")
@reports_errors
def failing(kind: str) -> None:
    if kind == "user":
        raise UserError("the data file is empty")
    if kind == "google":
        from google.api_core.exceptions import PermissionDenied

        raise PermissionDenied("caller lacks aiplatform.pipelineJobs.create")
    if kind == "auth":
        from google.auth.exceptions import DefaultCredentialsError

        raise DefaultCredentialsError("no credentials found")
    raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("user", "adaptune: error: the data file is empty\n"),
        (
            "google",
            "adaptune: error: Google Cloud refused the request: "
            "403 caller lacks aiplatform.pipelineJobs.create\n",
        ),
        ("auth", "adaptune: error: Google Cloud refused the request: no credentials found\n"),
    ],
)
def test_reports_errors_prints_one_line_and_exits_2(kind, message):
    result = CliRunner().invoke(failing, [kind])
    assert result.exit_code == 2
    assert result.stderr == message and result.stdout == ""


def test_reports_errors_lets_bugs_through():
    result = CliRunner().invoke(failing, ["bug"])
    assert isinstance(result.exception, RuntimeError)


def test_google_errors_are_only_those_of_imported_modules(monkeypatch):
    import google.api_core.exceptions
    import google.auth.exceptions

    assert google.api_core.exceptions.GoogleAPIError in imported_google_errors()
    monkeypatch.delitem(sys.modules, "google.api_core.exceptions")
    monkeypatch.delitem(sys.modules, "google.auth.exceptions")
    assert imported_google_errors() == ()
    result = CliRunner().invoke(failing, ["bug"])
    assert isinstance(result.exception, RuntimeError)


def test_a_google_error_from_a_command_is_one_line(monkeypatch):
    from google.api_core.exceptions import PermissionDenied

    from adaptune.vertex import jobs

    def refuse(settings, run, credentials=None):
        raise PermissionDenied("caller lacks aiplatform.pipelineJobs.get")

    monkeypatch.setattr(jobs, "get_job_status", refuse)
    monkeypatch.setattr(jobs, "init_vertex", lambda settings, credentials=None: None)
    result = invoke("vertex", "status", "adaptune-x", "--project", "p", "--location", "us-east1")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "adaptune: error: Google Cloud refused the request: "
        "403 caller lacks aiplatform.pipelineJobs.get\n"
    )


def test_a_user_error_from_a_command_is_one_line(tmp_path):
    result = invoke("models", "promote", "router", "--registry-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == "adaptune: error: say which version to promote: router@vN\n"


@pytest.fixture
def captured_run(monkeypatch, tmp_path):
    """`adaptune run` up to the runner: the parameters it would run with, and nothing run."""
    from adaptune.runner import run, summary

    calls: list[dict] = []

    def run_local(compiled, params, runs_root, experiment=None, run_id=None, **shown):
        calls.append({"compiled": compiled, "params": params, "experiment": experiment})
        return RunResult("r", tmp_path / "r", True, None, None, {}, {})

    monkeypatch.setattr(run, "run_local", run_local)
    monkeypatch.setattr(summary, "print_summary", lambda s, console=None: None)
    return calls


def test_run_resolves_the_parameter_flags(captured_run, tmp_path):
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", str(tmp_path), *PARAM_FLAGS,
                    "--experiment", "baseline")
    assert result.exit_code == 0, result.output
    (call,) = captured_run
    params = call["params"]
    assert call["experiment"] == "baseline" and call["compiled"] == COMPILED
    assert {k: params[k] for k in EXPECTED} == EXPECTED
    assert params["train_data"] == TRAIN
    assert params["adapter"]["r"] == 4 and params["adapter"]["method"] == "lora"
    assert params["training"]["steps"] == 7 and params["training"]["epochs"] == 2
    assert params["training"]["learning_rate"] == 0.01
    assert params["gate"]["metric"] == "chrf" and params["gate"]["threshold"] == 0.2
    assert params["evaluation"]["max_new_tokens"] == 8


def test_named_flags_apply_on_top_of_set_and_the_config_file(captured_run, tmp_path):
    config = tmp_path / "config.yaml"
    (tmp_path / "data.jsonl").write_text((SAMPLE / "train.jsonl").read_text())
    config.write_text("train_data: data.jsonl\nseed: 1\ntraining: {steps: 2, epochs: 5}\n")
    result = invoke("run", "--config", str(config), "--runs-dir", str(tmp_path / "runs"),
                    "--set", "seed=2", "--seed", "9", "--set", 'training={"steps": 3}',
                    "--train-steps", "4")
    assert result.exit_code == 0, result.output
    params = captured_run[0]["params"]
    assert params["train_data"] == str(tmp_path / "data.jsonl")  # relative to the config file
    assert params["seed"] == 9
    assert params["training"]["steps"] == 4 and params["training"]["epochs"] == 5


def test_set_name_key_sets_one_key_of_a_mapping_parameter(captured_run, tmp_path):
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", str(tmp_path / "runs"),
                    "--set", 'training={"steps": 3, "epochs": 2}', "--set", "training.steps=5",
                    "--set", "adapter.r=4", "--set", "gate.metric=chrf", "--learning-rate", "0.01")
    assert result.exit_code == 0, result.output
    params = captured_run[0]["params"]
    assert params["training"]["steps"] == 5 and params["training"]["epochs"] == 2
    assert params["training"]["learning_rate"] == 0.01
    assert params["adapter"]["r"] == 4 and params["adapter"]["method"] == "lora"
    assert params["gate"]["metric"] == "chrf"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("training.steps=abc", "training.steps must be an integer >= 0, got 'abc'"),
        ("training.stepz=3", "unknown training setting(s) ['stepz']"),
        ("training.a.b=1", "--set training.a.b: give NAME=VALUE or NAME.KEY=VALUE"),
        (".steps=1", "--set .steps: give NAME=VALUE or NAME.KEY=VALUE"),
        ("training.=1", "--set training.: give NAME=VALUE or NAME.KEY=VALUE"),
        ("training.steps=null", "--set training.steps=null: give a value"),
        ("colour.x=1", "unknown pipeline parameter(s) ['colour']"),
    ],
)
def test_set_name_key_errors_are_one_line(captured_run, tmp_path, assignment, message):
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", str(tmp_path / "runs"),
                    "--set", assignment)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert captured_run == [] and not (tmp_path / "runs").exists()


def test_run_refuses_unknown_and_invalid_parameters(captured_run, tmp_path):
    unknown = invoke("run", "--train-data", TRAIN, "--set", "colour=1")
    assert unknown.exit_code == 2 and "unknown pipeline parameter(s) ['colour']" in unknown.stderr
    invalid = invoke("run", "--train-data", TRAIN, "--set", "training=5", "--train-steps", "2")
    assert invalid.exit_code == 2 and "training must be a mapping" in invalid.stderr
    assert captured_run == []


def test_run_if_changed_says_which_run_it_matches(monkeypatch, captured_run, tmp_path):
    from adaptune.runner import run

    monkeypatch.setattr(run, "unchanged_since", lambda compiled, params, root: "20260101-000000")
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", str(tmp_path), "--if-changed")
    assert result.exit_code == 0
    assert result.output == (
        "unchanged since run 20260101-000000 (same data content and parameters): nothing to do\n"
    )
    assert captured_run == []


def test_a_failed_run_exits_1(monkeypatch, tmp_path):
    from adaptune.runner import run, summary

    failed = RunResult("r", tmp_path, False, "boom", "tune_adapter", {}, {"status": "failed"})
    monkeypatch.setattr(run, "run_local", lambda *a, **k: failed)
    shown = []
    monkeypatch.setattr(summary, "print_summary", lambda s, console=None: shown.append(s))
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", str(tmp_path))
    assert result.exit_code == 1 and shown == [{"status": "failed"}]


def _record(runs: Path, run_id: str, gate_metric: str, passed: bool | None, **props):
    """A run in the store as the runner records it: the gate's metric at start, results at end."""
    store = MetadataStore(runs)
    store.start_run(run_id, {"model_name": "router", "gate_metric": gate_metric})
    if passed is not None:
        gate = {"metric": gate_metric, "passed": passed, "reason": "..."}
        store.finish_run(run_id, "succeeded", gate=gate, **props)
    store.close()


def test_runs_list_names_each_runs_gate_metric(tmp_path):
    runs = tmp_path / "runs"
    tuned = {"exact_match": 0.5, "chrf": 0.81234, "rouge_l": 0.7}
    _record(runs, "run-chrf", "chrf", True, metrics={"tuned": tuned, "base": {}},
            registry={"model_ref": "router@v1"})
    _record(runs, "run-em", "exact_match", False, metrics={"tuned": tuned, "base": {}})
    _record(runs, "run-live", "bleu", None)
    result = invoke("runs", "list", "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if "gate metric" in line)
    assert "tuned" not in header and "exact_match" not in header
    row = {run_id: next(line for line in lines if run_id in line)
           for run_id in ("run-chrf", "run-em", "run-live")}
    assert "chrf 0.8123" in row["run-chrf"] and "passed" in row["run-chrf"]
    assert "router@v1" in row["run-chrf"]
    assert "exact_match 0.5000" in row["run-em"] and "failed" in row["run-em"]
    assert "running" in row["run-live"]
    assert "deploy" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", 'evaluation={"max_new_tokns": 1}'], "unknown evaluation setting(s)"),
        (["--set", 'vertex_deploy={"endpoint": "router"}'], "vertex_deploy.project is required"),
        (["--set", 'vertex_deploy={"project": "p", "traffic": 5}'], "unknown vertex_deploy"),
    ],
)
def test_evaluation_and_vertex_deploy_settings_are_refused_before_anything_runs(
    tmp_path, args, message
):
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", str(tmp_path / "runs"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()



@pytest.mark.parametrize(
    ("adapter", "expected"),
    [
        ('{"method": "ia3"}', {"method": "ia3"}),
        ('{"method": "prompt_tuning", "num_virtual_tokens": 4}',
         {"method": "prompt_tuning", "num_virtual_tokens": 4}),
        ('{"method": "last_layers", "num_layers": 1}', {"method": "last_layers", "num_layers": 1}),
        ('{"r": 4}', None),  # still LoRA: merged key by key with the LoRA default
    ],
)
def test_every_adapter_method_can_be_chosen_from_run(captured_run, tmp_path, adapter, expected):
    result = invoke("run", "--train-data", TRAIN, "--runs-dir", str(tmp_path), "--adapter", adapter)
    assert result.exit_code == 0, result.output
    (call,) = captured_run
    if expected is None:
        assert call["params"]["adapter"]["method"] == "lora"
        assert call["params"]["adapter"]["r"] == 4 and "alpha" in call["params"]["adapter"]
    else:
        assert call["params"]["adapter"] == expected


def test_a_method_chosen_in_a_config_file_replaces_the_default_adapter(captured_run, tmp_path):
    config = tmp_path / "ia3.yaml"
    config.write_text(f"train_data: {TRAIN}\nadapter:\n  method: ia3\n")
    result = invoke("run", "--config", str(config), "--runs-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert captured_run[0]["params"]["adapter"] == {"method": "ia3"}


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BOMB.encode(), "aliases (*a) are not allowed in a config file"),
        (b"train_data: \xff\xfe\n", "not UTF-8 text"),
        (b"- a\n- b\n", "expected a mapping of pipeline parameters"),
        (b"a: [unclosed\n", "not valid YAML"),
        (b"x: " + b"y" * (1 << 20) + b"\n", "is over 1024 KiB"),
        (b"model_name: 123\n", "model_name must be a non-empty string, got 123"),
        (b"model_name: ../../etc\n", "invalid model name"),
        (b"prompt_template: 'no placeholder'\n", "prompt_template must contain {input_text}"),
    ],
)
def test_a_bad_config_file_is_one_line_before_anything_runs(tmp_path, content, message):
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    result = invoke("run", "--config", str(config), "--train-data", TRAIN,
                    "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_directory_as_config_file_is_one_line(tmp_path):
    result = invoke("run", "--config", str(tmp_path), "--train-data", TRAIN)
    assert result.exit_code == 2 and "is a directory" in result.output


def test_runs_list_says_when_there_are_no_runs_and_creates_nothing(tmp_path):
    result = invoke("runs", "list", "--runs-dir", str(tmp_path / "none"))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"no runs in {tmp_path / 'none'}"
    assert not (tmp_path / "none").exists()


def test_the_command_line_starts_without_torch():
    """`adaptune --help` and `adaptune validate` stay quick and small: torch loads only where used
    (it costs about 250 MB of RSS; the 50 MB-record memory bounds of validate rely on it)."""
    import subprocess

    probe = (
        "import sys, adaptune.cli; "
        "print(sorted(m for m in ('torch', 'transformers', 'bitsandbytes') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
