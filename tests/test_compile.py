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


def _resources(spec: dict) -> dict[str, dict]:
    """Each DAG task's container resources (empty when none are set), by task name."""
    executors = spec["deploymentSpec"]["executors"]
    found = {}
    for name, (component, _) in _leaf_tasks(spec).items():
        found[name] = executors[component["executorLabel"]]["container"].get("resources", {})
    return found


def _worker_pools(spec: dict) -> list[dict]:
    params = spec["components"]["comp-tune-adapter"]["inputDefinitions"]["parameters"]
    return params["worker_pool_specs"]["defaultValue"]


def test_gpu_profile_names_its_image_everywhere_and_runs_the_tune_task_as_a_custom_job(tmp_path):
    from pipelines.profiles import get_profile

    image = "europe-docker.pkg.dev/proj/repo/adaptune:0.1.0-cuda"
    path, gemini = compile_all(tmp_path, get_profile("vertex-gpu", image))
    gemini_executors = yaml.safe_load(gemini.read_text())["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in gemini_executors.values()} == {image}
    # Nothing of the gemini pipeline loads weights (Vertex AI tunes and answers): small CPU
    # machines only, no accelerator.
    assert {
        (
            e["container"]["resources"]["resourceCpuLimit"],
            e["container"]["resources"].get("resourceMemoryLimit"),
        )
        for e in gemini_executors.values()
    } == {("4", "16G")}
    assert not any("accelerator" in e["container"]["resources"] for e in gemini_executors.values())
    spec = yaml.safe_load(path.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 8
    assert {e["container"]["image"] for e in executors.values()} == {image}
    # The Vertex AI deploy serves with the profile's (CUDA) image, not the local CPU one.
    serving = _deploy_task(spec)["inputs"]["parameters"]["serving_image"]
    assert serving["runtimeValue"]["constant"] == image
    tune_label = spec["components"]["comp-tune-adapter"]["executorLabel"]
    launcher = executors[tune_label]["container"]
    assert (
        launcher["command"][-1]
        == "google_cloud_pipeline_components.container.v1.custom_job.launcher"
    )
    (pool,) = _worker_pools(spec)  # one machine, the default L4 x1
    assert pool["container_spec"]["image_uri"] == image
    assert pool["machine_spec"] == {
        "machine_type": "g2-standard-12",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 1,
    }
    # The training container runs the tune_adapter component itself, with its executor input.
    assert "--function_to_execute" in pool["container_spec"]["args"]
    assert "{{$.json_escape[1]}}" in pool["container_spec"]["args"]
    assert "def tune_adapter(" in pool["container_spec"]["command"][-1]
    # The task keeps its name, inputs, outputs and retries: downstream tasks are untouched.
    local = yaml.safe_load(COMPILED.read_text())
    assert spec["root"] == local["root"]
    outputs = spec["components"]["comp-tune-adapter"]["outputDefinitions"]
    local_outputs = local["components"]["comp-tune-adapter"]["outputDefinitions"]
    assert outputs["artifacts"] == local_outputs["artifacts"]
    assert set(outputs["parameters"]) == set(local_outputs["parameters"]) | {"gcp_resources"}
    # Everything but the images, the resources and the tuning component is the local spec.
    for executor in executors.values():
        executor["container"]["image"] = "ghcr.io/adaptune/adaptune:0.1.0"
        executor["container"].pop("resources", None)
    executors[tune_label] = local["deploymentSpec"]["executors"][tune_label]
    spec["components"]["comp-tune-adapter"] = local["components"]["comp-tune-adapter"]
    serving["runtimeValue"]["constant"] = "ghcr.io/adaptune/adaptune:0.1.0"
    assert spec == local


GPU_CHOICES = {
    "L4x1": ("g2-standard-12", "NVIDIA_L4", 1),
    "L4x4": ("g2-standard-48", "NVIDIA_L4", 4),
    "A100-80GBx1": ("a2-ultragpu-1g", "NVIDIA_A100_80GB", 1),
    "H100x8": ("a3-highgpu-8g", "NVIDIA_H100_80GB", 8),
}


@pytest.mark.parametrize("accelerator", sorted(GPU_CHOICES))
def test_each_gpu_choice_compiles_its_custom_job_and_gives_weight_loading_tasks_a_gpu(
    tmp_path, monkeypatch, capsys, accelerator
):
    from pipelines import compile as compile_module

    machine, kind, count = GPU_CHOICES[accelerator]
    argv = [
        "compile",
        "--profile",
        "vertex-gpu",
        "--accelerator",
        accelerator,
        "--out",
        str(tmp_path),
    ]
    monkeypatch.setattr("sys.argv", argv)
    compile_module.main()
    assert f"wrote {tmp_path / 'adapter_tuning.yaml'}" in capsys.readouterr().out
    spec = yaml.safe_load((tmp_path / "adapter_tuning.yaml").read_text())
    (pool,) = _worker_pools(spec)
    assert pool["machine_spec"] == {
        "machine_type": machine,
        "accelerator_type": kind,
        "accelerator_count": count,
    }
    assert pool["replica_count"] == 1
    assert pool["disk_spec"] == {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": 200}
    params = spec["components"]["comp-tune-adapter"]["inputDefinitions"]["parameters"]
    assert params["strategy"]["defaultValue"] == "STANDARD"
    assert params["display_name"]["defaultValue"] == "tune-adapter"
    resources = _resources(spec)
    for task in dag.TASKS:
        got = resources[task.name]
        if task.loads == dag.MODEL and task.name != dag.TUNE.name:
            # Evaluation generates with three models: one GPU of the kind, and memory.
            assert got["accelerator"] == {
                "type": kind,
                "count": "1",
                "resourceType": kind,
                "resourceCount": "1",
            }, task.name
            assert float(got["resourceCpuLimit"]) >= 12, task.name
            assert got["memoryLimit"] >= 48, task.name
        else:
            # Tokenizer-only and model-free tasks (and the CustomJob's launcher): small CPU.
            assert "accelerator" not in got, task.name
            assert (got["resourceCpuLimit"], got["resourceMemoryLimit"]) == ("4", "16G"), task.name


def test_several_machines_spot_and_a_reservation_reach_the_custom_job(tmp_path):
    from pipelines.profiles import get_profile

    reservation = "projects/p/zones/europe-west4-a/reservations/l4s"
    profile = get_profile(
        "vertex-gpu",
        accelerator="L4x4",
        replicas=3,
        strategy="SPOT",
        reservation=reservation,
        boot_disk_gb=500,
    )
    path, _ = compile_all(tmp_path, profile)
    spec = yaml.safe_load(path.read_text())
    first, others = _worker_pools(spec)  # GCPC: the primary replica, then the other machines
    assert (first["replica_count"], others["replica_count"]) == (1, 2)
    for pool in (first, others):
        assert pool["machine_spec"]["machine_type"] == "g2-standard-48"
        assert pool["machine_spec"]["accelerator_count"] == 4
        assert pool["machine_spec"]["reservation_affinity"] == {
            "reservation_affinity_type": "SPECIFIC_RESERVATION",
            "key": "compute.googleapis.com/reservation-name",
            "values": [reservation],
        }
        assert pool["disk_spec"]["boot_disk_size_gb"] == 500
    params = spec["components"]["comp-tune-adapter"]["inputDefinitions"]["parameters"]
    assert params["strategy"]["defaultValue"] == "SPOT"
    any_one = get_profile("vertex-gpu", reservation="any").tuning_job.reservation_args()
    assert any_one == {"reservation_affinity_type": "ANY_RESERVATION"}


def test_the_cpu_profile_gives_weight_loading_tasks_memory_and_the_others_a_small_machine(
    tmp_path,
):
    from pipelines.profiles import get_profile

    path, _ = compile_all(tmp_path, get_profile("vertex-cpu"))
    spec = yaml.safe_load(path.read_text())
    resources = _resources(spec)
    for task in dag.TASKS:
        expected = ("8", "32G") if task.loads == dag.MODEL else ("4", "16G")
        got = resources[task.name]
        assert (got["resourceCpuLimit"], got["resourceMemoryLimit"]) == expected, task.name
        assert "accelerator" not in got
    assert "launcher" not in str(spec["deploymentSpec"])  # no CustomJob without a GPU


def test_the_local_profile_sets_no_resources():
    spec = yaml.safe_load(COMPILED.read_text())
    assert all(r == {} for r in _resources(spec).values())
    assert "custom_job" not in COMPILED.read_text()


def test_the_task_table_says_which_tasks_load_model_weights():
    loads = {task.name: task.loads for task in dag.TASKS}
    assert {n for n, what in loads.items() if what == dag.MODEL} == {"tune-adapter", "evaluate"}
    assert {n for n, what in loads.items() if what == dag.TOKENIZER} == {
        "validate-dataset",
        "format-text-to-text",
    }


def test_the_grafted_custom_job_is_what_kfp_compiles_for_the_wrapped_component(tmp_path):
    from kfp import compiler, dsl
    from kfp.dsl import Dataset, Output

    from components.tune_adapter import tune_adapter
    from pipelines.compile import apply_profile
    from pipelines.custom_job import custom_job_component
    from pipelines.profiles import get_profile

    profile = get_profile("vertex-gpu", "img:1", accelerator="L4x4", replicas=2)
    wrapped = custom_job_component(profile.image, profile.tuning_job)

    @dsl.component(base_image="img:1", install_kfp_package=False)
    def make(d: Output[Dataset]):
        pass

    def body(step):
        made = make()
        tuning = step(
            formatted=made.outputs["d"],
            data_sha256="x",
            base_model="b",
            adapter={},
            training={},
            seed=0,
        )
        tuning.set_retry(num_retries=2)

    @dsl.pipeline(name="graft")
    def plain():
        body(tune_adapter)

    @dsl.pipeline(name="graft")
    def by_kfp():
        body(wrapped)

    ours = apply_profile(plain.pipeline_spec, profile)
    mine = tmp_path / "ours.yaml"
    from kfp.compiler import pipeline_spec_builder

    pipeline_spec_builder.write_pipeline_spec_to_file(ours, None, plain.platform_spec, str(mine))
    expected = tmp_path / "kfp.yaml"
    compiler.Compiler().compile(by_kfp, str(expected))
    got, want = yaml.safe_load(mine.read_text()), yaml.safe_load(expected.read_text())
    # apply_profile also runs the launcher in the profile's image and gives it a small machine.
    launcher = want["deploymentSpec"]["executors"]["exec-tune-adapter"]["container"]
    launcher["image"] = "img:1"
    launcher["resources"] = got["deploymentSpec"]["executors"]["exec-tune-adapter"]["container"][
        "resources"
    ]
    assert got["components"] == want["components"]
    assert got["root"] == want["root"]
    assert (
        got["deploymentSpec"]["executors"]["exec-tune-adapter"]
        == want["deploymentSpec"]["executors"]["exec-tune-adapter"]
    )


def test_job_settings_are_refused_for_profiles_without_an_accelerator(monkeypatch, capsys):
    from pipelines import compile as compile_module
    from pipelines.profiles import get_profile

    with pytest.raises(ValueError, match="need vertex-gpu"):
        get_profile("vertex-cpu", accelerator="L4x4")
    with pytest.raises(ValueError, match="unknown accelerator"):
        get_profile("vertex-gpu", accelerator="TPUx4")
    monkeypatch.setattr(
        "sys.argv", ["compile", "--profile", "local", "--replicas", "2", "--out", "/nonexistent/x"]
    )
    with pytest.raises(SystemExit) as exited:
        compile_module.main()
    assert exited.value.code == 2
    assert "need vertex-gpu" in capsys.readouterr().err


def test_profile_fields_match_what_kfp_writes_for_the_task_methods(tmp_path):
    from kfp import compiler, dsl

    from pipelines.compile import apply_profile
    from pipelines.profiles import Profile, Resources

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

    profile = Profile("t", "img:1", model=Resources("4", "16G", "NVIDIA_TESLA_T4", 2))
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
