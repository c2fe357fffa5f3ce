"""Compile every pipeline: ``python -m pipelines.compile [--profile P] [--image URI] [--out D]``.

Compilation reads no environment: the same source and profile always give the same YAML. The
``local`` profile (the default) writes the committed ``compiled/``; another profile names its own
image in every executor (and as the image the Vertex AI deploy serves with), gives the tasks
that load model weights (``adaptune.runner.dag``) their accelerator, CPU and memory limits and
the others a small machine; ``vertex-gpu`` also runs the tuning task as a Vertex AI CustomJob
(``--accelerator``, ``--replicas``, ``--strategy``, ``--reservation``, ``--boot-disk-gb``).
"""

import argparse
import ast
import re
from pathlib import Path

from kfp.compiler import compiler_utils
from kfp.compiler import pipeline_spec_builder as builder
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines.adapter_tuning import adapter_tuning
from pipelines.gemini_tuning import gemini_tuning
from pipelines.profiles import (
    ACCELERATORS,
    DEFAULT_PROFILE,
    PROFILES,
    STRATEGIES,
    Profile,
    Resources,
    get_profile,
)

PIPELINES = {"adapter_tuning.yaml": adapter_tuning, "gemini_tuning.yaml": gemini_tuning}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "compiled"


TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][\w-]*:")
HEADER_LINE = re.compile(r"^# (PIPELINE DEFINITION|Name: |Description: |Inputs:|Outputs:|   \w+: )")
DICT_DEFAULT = re.compile(r"^(#\s+\w+: dict \[Default: )(\{.*\})(\])$")


def normalise_header(text: str) -> str:
    r"""Repair and stabilise KFP's comment header (the lines before the first YAML key).

    KFP writes a multi-line string default across raw lines, which breaks the YAML; those lines
    are folded back into their comment with ``\n``. Dict defaults are rendered from a protobuf
    map whose order changes from process to process; their keys are sorted, so the compiled
    file is byte-identical on every compile.
    """
    lines = text.splitlines(keepends=True)
    body = next(i for i, line in enumerate(lines) if TOP_LEVEL_KEY.match(line))
    header: list[str] = []
    for line in lines[:body]:
        if HEADER_LINE.match(line) or not header:
            header.append(line.rstrip("\n"))
        else:
            header[-1] += "\\n" + line.rstrip("\n")
    for index, line in enumerate(header):
        match = DICT_DEFAULT.match(line)
        if match:
            value = ast.literal_eval(match.group(2))
            header[index] = f"{match.group(1)}{dict(sorted(value.items()))}{match.group(3)}"
    return "".join(line + "\n" for line in header) + "".join(lines[body:])


SERVING_IMAGE_INPUT = "serving_image"


def dag_tasks(
    spec: pipeline_spec_pb2.PipelineSpec,
) -> dict[str, pipeline_spec_pb2.PipelineTaskSpec]:
    """Every task of the spec by name: the root DAG's and those of its sub-DAGs (``dsl.If``)."""
    tasks = dict(spec.root.dag.tasks)
    for component in spec.components.values():
        if component.HasField("dag"):
            tasks.update(component.dag.tasks)
    return {name: task for name, task in tasks.items() if not name.startswith("condition-")}


def apply_profile(
    spec: pipeline_spec_pb2.PipelineSpec, profile: Profile
) -> pipeline_spec_pb2.PipelineSpec:
    """Return a copy of ``spec`` with the profile's image and every task's resources.

    Tasks that load model weights (``adaptune.runner.dag``) get ``profile.model``, the others
    ``profile.small``; with ``profile.tuning_job`` the tuning task runs as that Vertex AI
    CustomJob (``pipelines.custom_job``). The fields are the ones KFP writes for
    ``set_container_image``, ``set_cpu_limit``, ``set_memory_limit``, ``set_accelerator_type``
    and ``set_accelerator_limit`` with constant values (a test compares them with KFP's own
    output). The profile's image is also the
    constant ``serving_image`` input of the Vertex AI deploy task, so a GPU profile deploys its
    CUDA image. Nothing is set that the profile leaves empty, so the ``local`` profile returns
    the spec unchanged.
    """
    from google.protobuf import json_format

    from adaptune.runner.dag import MODEL, TUNE, tasks_for
    from pipelines.custom_job import run_tuning_as_custom_job

    spec = pipeline_spec_pb2.PipelineSpec.FromString(spec.SerializeToString())
    tasks = dag_tasks(spec)
    config = json_format.ParseDict(
        json_format.MessageToDict(spec.deployment_spec),
        pipeline_spec_pb2.PipelineDeploymentConfig(),
    )
    for executor in config.executors.values():
        executor.container.image = profile.image
    for task in tasks_for({"pipelineInfo": {"name": spec.pipeline_info.name}}):
        if task.name not in tasks:
            continue
        component = tasks[task.name].component_ref.name
        wants = profile.model if task.loads == MODEL else profile.small
        if task.name == TUNE.name and profile.tuning_job is not None:
            run_tuning_as_custom_job(spec, config, component, profile.image, profile.tuning_job)
            wants = profile.small  # the launcher waits for the job, whose machines train
        label = spec.components[component].executor_label
        _set_resources(config.executors[label].container.resources, wants)
    for task in tasks.values():
        serving = task.inputs.parameters.get(SERVING_IMAGE_INPUT)
        if serving is not None and serving.HasField("runtime_value"):
            serving.runtime_value.constant.string_value = profile.image
    spec.deployment_spec.Clear()
    spec.deployment_spec.update(json_format.MessageToDict(config))
    return spec


def _set_resources(
    resources: pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec,
    wants: Resources,
) -> None:
    if wants.cpu_limit:
        resources.resource_cpu_limit = wants.cpu_limit
        resources.cpu_limit = compiler_utils._cpu_to_float(wants.cpu_limit)
    if wants.memory_limit:
        resources.resource_memory_limit = wants.memory_limit
        resources.memory_limit = compiler_utils._memory_to_float(wants.memory_limit)
    if wants.accelerator_type:
        resources.accelerator.resource_type = wants.accelerator_type
        resources.accelerator.resource_count = str(wants.accelerator_count)
        resources.accelerator.type = wants.accelerator_type
        resources.accelerator.count = wants.accelerator_count


def compile_all(out_dir: Path, profile: Profile | None = None) -> list[Path]:
    """Compile each pipeline to ``out_dir`` with ``profile`` (default: local); return the files."""
    profile = profile or PROFILES[DEFAULT_PROFILE]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, pipeline in PIPELINES.items():
        path = out_dir / file_name
        tmp = path.with_name(f".tmp-{file_name}")
        builder.write_pipeline_spec_to_file(
            pipeline_spec=apply_profile(pipeline.pipeline_spec, profile),
            pipeline_description=pipeline.description,
            platform_spec=pipeline.platform_spec,
            package_path=str(tmp),
        )
        tmp.write_text(normalise_header(tmp.read_text(encoding="utf-8")), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE)
    parser.add_argument("--image", help="Component image URI (default: the profile's image).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    job = parser.add_argument_group("vertex-gpu: the tuning task's CustomJob")
    job.add_argument("--accelerator", choices=sorted(ACCELERATORS), help="default: L4x1")
    job.add_argument("--replicas", type=int, help="machines (default: 1)")
    job.add_argument("--strategy", choices=STRATEGIES, help="scheduling (default: STANDARD)")
    job.add_argument("--reservation", help="'any', or a reservation's full name")
    job.add_argument("--boot-disk-gb", type=int, help="boot disk per machine (default: 200)")
    args = parser.parse_args()
    if args.profile != DEFAULT_PROFILE and args.out == DEFAULT_OUT:
        parser.error("compiled/ holds the local profile; give --out for another profile")
    options = {
        name: getattr(args, name)
        for name in ("accelerator", "replicas", "strategy", "reservation", "boot_disk_gb")
    }
    try:
        profile = get_profile(args.profile, args.image, **options)
    except ValueError as exc:
        parser.error(str(exc))
    for path in compile_all(args.out, profile):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
