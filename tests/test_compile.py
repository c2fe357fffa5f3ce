"""The committed compiled YAML is exactly what the source compiles to."""

import re

import yaml
from conftest import COMPILED

from adaptune.data.formatting import DEFAULT_TEMPLATE
from adaptune.data.settings import DataSettings
from adaptune.evaluation.gate import GateSettings
from adaptune.evaluation.settings import EvaluationSettings
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
    assert EvaluationSettings().to_dict() == pipeline_module.DEFAULT_EVALUATION
    assert DEFAULT_TEMPLATE == pipeline_module.DEFAULT_PROMPT_TEMPLATE
    assert DataSettings().to_dict() == pipeline_module.DEFAULT_DATA
    params = yaml.safe_load(COMPILED.read_text())["root"]["inputDefinitions"]["parameters"]
    assert DataSettings.from_dict(params["data"]["defaultValue"]) == DataSettings()
    assert params["seed"]["defaultValue"] == TrainingSettings().seed


def test_tuning_task_is_retried_so_it_can_resume():
    spec = yaml.safe_load(COMPILED.read_text())
    assert spec["root"]["dag"]["tasks"]["tune-adapter"]["retryPolicy"]["maxRetryCount"] == 2


def test_gpu_profile_names_its_image_everywhere_and_gives_the_tune_task_a_gpu(tmp_path):
    from pipelines.profiles import get_profile

    image = "europe-docker.pkg.dev/proj/repo/adaptune:0.1.0-cuda"
    (path,) = compile_all(tmp_path, get_profile("vertex-gpu", image))
    spec = yaml.safe_load(path.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 6
    assert {e["container"]["image"] for e in executors.values()} == {image}
    tune_label = spec["components"]["comp-tune-adapter"]["executorLabel"]
    resources = executors[tune_label]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "NVIDIA_L4"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert resources["resourceCpuLimit"] == "8"
    assert resources["resourceMemoryLimit"] == "32G"
    others = [e for label, e in executors.items() if label != tune_label]
    assert all("resources" not in e["container"] for e in others)
    # Everything but the images and the tune task's resources is the committed local spec.
    local = yaml.safe_load(COMPILED.read_text())
    for executor in executors.values():
        executor["container"]["image"] = "ghcr.io/adaptune/adaptune:0.1.0"
    del executors[tune_label]["container"]["resources"]
    assert spec == local


def test_profile_fields_match_what_kfp_writes_for_the_task_methods(tmp_path):
    from kfp import compiler, dsl

    from pipelines.compile import apply_profile
    from pipelines.profiles import TUNE_TASK, Profile

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def tune_adapter() -> str:
        return "x"

    @dsl.pipeline(name="plain")
    def plain():
        tune_adapter()

    @dsl.pipeline(name="plain")
    def by_kfp():
        task = tune_adapter()
        task.set_container_image("img:1")
        task.set_cpu_limit("4")
        task.set_memory_limit("16G")
        task.set_accelerator_type("NVIDIA_TESLA_T4")
        task.set_accelerator_limit(2)

    profile = Profile("t", "img:1", "NVIDIA_TESLA_T4", 2, "4", "16G")
    assert TUNE_TASK in plain.pipeline_spec.root.dag.tasks
    ours = apply_profile(plain.pipeline_spec, profile)
    expected = tmp_path / "kfp.yaml"
    compiler.Compiler().compile(by_kfp, str(expected))
    mine = tmp_path / "ours.yaml"
    from kfp.compiler import pipeline_spec_builder

    pipeline_spec_builder.write_pipeline_spec_to_file(ours, None, plain.platform_spec, str(mine))
    kfp_spec = yaml.safe_load(expected.read_text())
    assert yaml.safe_load(mine.read_text())["deploymentSpec"] == kfp_spec["deploymentSpec"]
    assert "accelerator" in str(kfp_spec["deploymentSpec"])


def test_unknown_profile_is_refused():
    import pytest

    from pipelines.profiles import get_profile

    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("tpu-pod")
