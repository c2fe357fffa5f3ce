"""The committed compiled YAML is exactly what the source compiles to."""

import re

import yaml
from conftest import COMPILED

from adaptune.data.formatting import DEFAULT_TEMPLATE
from adaptune.data.settings import DataSettings
from adaptune.evaluation.gate import GateSettings
from adaptune.tuning.methods import LoraMethod
from adaptune.tuning.settings import TrainingSettings
from pipelines import adapter_tuning as pipeline_module
from pipelines.compile import compile_all

SDK_LINE = re.compile(r"^sdkVersion: .*$", re.MULTILINE)


def _normalise(text: str) -> str:
    return SDK_LINE.sub("sdkVersion: <normalised>", text)


def test_committed_yaml_is_in_sync(tmp_path):
    (fresh,) = compile_all(tmp_path)
    assert _normalise(fresh.read_text()) == _normalise(COMPILED.read_text()), (
        "compiled/adapter_tuning.yaml is stale: run `make compile` and commit it"
    )


def test_compiling_twice_is_byte_identical(tmp_path):
    (a,) = compile_all(tmp_path / "a")
    (b,) = compile_all(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()


def test_compiled_yaml_parses_and_has_the_dag():
    spec = yaml.safe_load(COMPILED.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert {
        "validate-dataset",
        "format-text-to-text",
        "tune-adapter",
        "evaluate",
        "should-deploy",
        "condition-1",
    } <= set(tasks)
    condition = tasks["condition-1"]["triggerPolicy"]["condition"]
    assert "should-deploy-Output" in condition
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "pip install" not in " ".join(executor["container"]["command"])


def test_pipeline_defaults_match_the_library_defaults():
    assert LoraMethod().to_dict() == pipeline_module.DEFAULT_ADAPTER
    training = TrainingSettings().to_dict()
    assert training.pop("seed") == 0
    assert training == pipeline_module.DEFAULT_TRAINING
    assert GateSettings().to_dict() == pipeline_module.DEFAULT_GATE
    assert DEFAULT_TEMPLATE == pipeline_module.DEFAULT_PROMPT_TEMPLATE
    assert DataSettings().to_dict() == pipeline_module.DEFAULT_DATA
    params = yaml.safe_load(COMPILED.read_text())["root"]["inputDefinitions"]["parameters"]
    assert DataSettings.from_dict(params["data"]["defaultValue"]) == DataSettings()
    assert params["seed"]["defaultValue"] == TrainingSettings().seed


def test_tuning_task_is_retried_so_it_can_resume():
    spec = yaml.safe_load(COMPILED.read_text())
    assert spec["root"]["dag"]["tasks"]["tune-adapter"]["retryPolicy"]["maxRetryCount"] == 2
