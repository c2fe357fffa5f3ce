"""The committed compiled YAML is exactly what the source compiles to."""

import re

import pytest
import yaml
from conftest import COMPILED

from adaptune.data.formatting import DEFAULT_TEMPLATE
from adaptune.data.settings import DataSettings
from adaptune.evaluation.gate import GateSettings
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.runner import dag
from adaptune.tuning.methods import LoraMethod
from adaptune.tuning.settings import TrainingSettings
from pipelines import adapter_tuning as pipeline_module
from pipelines.compile import compile_all

SDK_LINE = re.compile(r"^sdkVersion: .*$", re.MULTILINE)


def _normalise(text: str) -> str:
    return SDK_LINE.sub("sdkVersion: <normalised>", text)


GEMINI_COMPILED = COMPILED.parent / "gemini_tuning.yaml"
COMPILED_FILES = {"adapter_tuning.yaml": COMPILED, "gemini_tuning.yaml": GEMINI_COMPILED}


def test_committed_yaml_is_in_sync(tmp_path):
    fresh = compile_all(tmp_path)
    assert [p.name for p in fresh] == list(COMPILED_FILES)
    for path in fresh:
        assert _normalise(path.read_text()) == _normalise(COMPILED_FILES[path.name].read_text()), (
            f"compiled/{path.name} is stale: run `make compile` and commit it"
        )


def test_compiling_twice_is_byte_identical(tmp_path):
    first = compile_all(tmp_path / "a")
    second = compile_all(tmp_path / "b")
    assert [a.read_bytes() for a in first] == [b.read_bytes() for b in second]


def _leaf_tasks(spec: dict) -> dict[str, tuple[dict, list[str]]]:
    """Every task with its component and the display names of the dsl.If groups around it."""
    found = {}

    def walk(tasks: dict, groups: list[str]) -> None:
        for name, task in tasks.items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"]["tasks"], [*groups, task["taskInfo"]["name"]])
            else:
                found[name] = (component, groups)

    walk(spec["root"]["dag"]["tasks"], [])
    return found


@pytest.mark.parametrize(
    ("compiled", "table"), [(COMPILED, dag.TASKS), (GEMINI_COMPILED, dag.GEMINI_TASKS)]
)
def test_the_task_table_is_the_compiled_dag(compiled, table):
    spec = yaml.safe_load(compiled.read_text())
    assert dag.tasks_for(spec) == table
    leaves = _leaf_tasks(spec)
    assert {t.name for t in table} == set(leaves), "a task added, removed or renamed"
    for task in table:
        component, groups = leaves[task.name]
        declared = component.get("outputDefinitions", {})
        outputs = set(declared.get("artifacts", {})) | set(declared.get("parameters", {}))
        assert set(task.outputs) == outputs, task.name
        assert set(task.listed) | set(task.kinds) <= set(declared.get("artifacts", {})), task.name
        assert list(task.condition) == groups, task.name
        inputs = component.get("inputDefinitions", {}).get("parameters", {})
        assert set(task.reads_data) <= set(inputs), task.name


def test_the_release_is_a_visible_sub_dag():
    spec = yaml.safe_load(COMPILED.read_text())
    root = spec["root"]["dag"]["tasks"]
    (gate_group,) = [t for t in root.values() if t["taskInfo"]["name"] == dag.GATE_PASSED]
    assert "passes-gate-Output" in gate_group["triggerPolicy"]["condition"]
    inner = spec["components"][gate_group["componentRef"]["name"]]["dag"]["tasks"]
    assert {"register-version", "wants-vertex-deploy"} <= set(inner)
    (vertex_group,) = [t for t in inner.values() if t["taskInfo"]["name"] == dag.VERTEX_DEPLOY]
    assert "wants-vertex-deploy-Output" in vertex_group["triggerPolicy"]["condition"]
    deploy = spec["components"][vertex_group["componentRef"]["name"]]["dag"]["tasks"]
    assert list(deploy) == ["deploy-to-vertex"]
    serving = deploy["deploy-to-vertex"]["inputs"]["parameters"]["serving_image"]
    assert serving["runtimeValue"]["constant"] == "ghcr.io/adaptune/adaptune:0.1.0"
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


def test_gemini_pipeline_defaults_match_the_library_and_the_release_is_gated():
    from adaptune.vertex.gemini_backend import WHERE_KEYS
    from adaptune.vertex.gemini_settings import GeminiTuningSettings
    from pipelines import gemini_tuning

    assert gemini_tuning.DEFAULT_GEMINI_DATA["format"] == DataSettings().format
    assert DataSettings.from_dict(gemini_tuning.DEFAULT_GEMINI_DATA).max_input_tokens == 131072
    spec = yaml.safe_load(GEMINI_COMPILED.read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {
        "train_data", "eval_data", "data", "gate", "model_name", "registry_dir", "run_id",
        "vertex_gemini",
    }  # fmt: skip
    assert GateSettings.from_dict(params["gate"]["defaultValue"]) == GateSettings()
    assert not set(WHERE_KEYS) & set(GeminiTuningSettings().to_dict())
    root = spec["root"]["dag"]["tasks"]
    assert "retryPolicy" not in root["tune-gemini"]  # a retry would pay for another job
    (gate_group,) = [t for t in root.values() if t["taskInfo"]["name"] == dag.GATE_PASSED]
    assert "passes-gate-Output" in gate_group["triggerPolicy"]["condition"]
    inner = spec["components"][gate_group["componentRef"]["name"]]["dag"]["tasks"]
    assert list(inner) == ["register-version"]
    assert "pipeline_root" in root["tune-gemini"]["inputs"]["parameters"]


def test_tuning_task_is_retried_so_it_can_resume():
    spec = yaml.safe_load(COMPILED.read_text())
    assert spec["root"]["dag"]["tasks"]["tune-adapter"]["retryPolicy"]["maxRetryCount"] == 2


def _deploy_task(spec: dict) -> dict:
    for component in spec["components"].values():
        if "deploy-to-vertex" in component.get("dag", {}).get("tasks", {}):
            return component["dag"]["tasks"]["deploy-to-vertex"]
    raise AssertionError("no deploy-to-vertex task")


def test_gpu_profile_names_its_image_everywhere_and_gives_the_tune_task_a_gpu(tmp_path):
    from pipelines.profiles import get_profile

    image = "europe-docker.pkg.dev/proj/repo/adaptune:0.1.0-cuda"
    path, gemini = compile_all(tmp_path, get_profile("vertex-gpu", image))
    gemini_executors = yaml.safe_load(gemini.read_text())["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in gemini_executors.values()} == {image}
    assert all("resources" not in e["container"] for e in gemini_executors.values())
    spec = yaml.safe_load(path.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 8
    assert {e["container"]["image"] for e in executors.values()} == {image}
    # The Vertex AI deploy serves with the profile's (CUDA) image, not the local CPU one.
    serving = _deploy_task(spec)["inputs"]["parameters"]["serving_image"]
    assert serving["runtimeValue"]["constant"] == image
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
    serving["runtimeValue"]["constant"] = "ghcr.io/adaptune/adaptune:0.1.0"
    assert spec == local


def test_profile_fields_match_what_kfp_writes_for_the_task_methods(tmp_path):
    from kfp import compiler, dsl

    from pipelines.compile import apply_profile
    from pipelines.profiles import Profile

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
    assert dag.TUNE.name in plain.pipeline_spec.root.dag.tasks
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


def test_the_deploy_task_outputs_typed_vertex_artifacts_and_consumes_the_adapter():
    spec = yaml.safe_load(COMPILED.read_text())
    deploy = _deploy_task(spec)
    component = spec["components"][deploy["componentRef"]["name"]]
    artifacts = component["outputDefinitions"]["artifacts"]
    assert {name: a["artifactType"] for name, a in artifacts.items()} == {
        "vertex_model": {"schemaTitle": "google.VertexModel", "schemaVersion": "0.0.1"},
        "vertex_endpoint": {"schemaTitle": "google.VertexEndpoint", "schemaVersion": "0.0.1"},
    }
    assert set(component["outputDefinitions"]["parameters"]) == {"promoted", "note"}
    # The adapter the run trained flows in (through the release sub-DAGs): Vertex AI's lineage
    # links data → adapter → model → endpoint.
    adapter = deploy["inputs"]["artifacts"]["trained_adapter"]["componentInputArtifact"]
    assert adapter == "pipelinechannel--tune-adapter-trained_adapter"
    # The task's command imports GCPC's artifact types, which the image holds.
    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
    source = executor["container"]["command"][-1]
    assert "from google_cloud_pipeline_components.types.artifact_types import VertexModel" in source


def test_the_tune_gemini_task_outputs_typed_vertex_artifacts():
    spec = yaml.safe_load(GEMINI_COMPILED.read_text())
    task = spec["root"]["dag"]["tasks"][dag.TUNE_GEMINI.name]
    component = spec["components"][task["componentRef"]["name"]]
    artifacts = component["outputDefinitions"]["artifacts"]
    assert artifacts["vertex_model"]["artifactType"] == {
        "schemaTitle": "google.VertexModel",
        "schemaVersion": "0.0.1",
    }
    assert artifacts["vertex_endpoint"]["artifactType"] == {
        "schemaTitle": "google.VertexEndpoint",
        "schemaVersion": "0.0.1",
    }
    # The register step still reads the tuned model's record (a plain Model artifact).
    assert artifacts["tuned_model"]["artifactType"]["schemaTitle"] == "system.Model"
    # The register task gets vertex_gemini: it imports the evaluation into the Model Registry.
    register = next(
        c["dag"]["tasks"][dag.REGISTER.name]
        for c in spec["components"].values()
        if dag.REGISTER.name in c.get("dag", {}).get("tasks", {})
    )
    assert register["inputs"]["parameters"]["vertex_gemini"]["componentInputParameter"] == (
        "pipelinechannel--vertex_gemini"
    )
