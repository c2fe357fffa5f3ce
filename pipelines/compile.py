"""Compile every pipeline: ``python -m pipelines.compile [--profile P] [--image URI] [--out D]``.

Compilation reads no environment: the same source and profile always give the same YAML. The
``local`` profile (the default) writes the committed ``compiled/``; another profile names its own
image in every executor (and as the image the Vertex AI deploy serves with), and gives the tasks
that need one (``adaptune.runner.dag``) their accelerator, CPU and memory limits.
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
from pipelines.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile

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
    """Return a copy of ``spec`` with the profile's image and the resources of its GPU tasks.

    The fields are the ones KFP writes for ``set_container_image``, ``set_cpu_limit``,
    ``set_memory_limit``, ``set_accelerator_type`` and ``set_accelerator_limit`` with constant
    values (a test compares them with KFP's own output). The profile's image is also the
    constant ``serving_image`` input of the Vertex AI deploy task, so a GPU profile deploys its
    CUDA image. Nothing is set that the profile leaves empty, so the ``local`` profile returns
    the spec unchanged.
    """
    from google.protobuf import json_format

    from adaptune.runner.dag import TASKS

    spec = pipeline_spec_pb2.PipelineSpec.FromString(spec.SerializeToString())
    tasks = dag_tasks(spec)
    config = json_format.ParseDict(
        json_format.MessageToDict(spec.deployment_spec),
        pipeline_spec_pb2.PipelineDeploymentConfig(),
    )
    for executor in config.executors.values():
        executor.container.image = profile.image
    for task in TASKS:
        if task.accelerator and task.name in tasks:
            label = spec.components[tasks[task.name].component_ref.name].executor_label
            _set_resources(config.executors[label].container.resources, profile)
    for task in tasks.values():
        serving = task.inputs.parameters.get(SERVING_IMAGE_INPUT)
        if serving is not None and serving.HasField("runtime_value"):
            serving.runtime_value.constant.string_value = profile.image
    spec.deployment_spec.Clear()
    spec.deployment_spec.update(json_format.MessageToDict(config))
    return spec


def _set_resources(
    resources: pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec,
    profile: Profile,
) -> None:
    if profile.cpu_limit:
        resources.resource_cpu_limit = profile.cpu_limit
        resources.cpu_limit = compiler_utils._cpu_to_float(profile.cpu_limit)
    if profile.memory_limit:
        resources.resource_memory_limit = profile.memory_limit
        resources.memory_limit = compiler_utils._memory_to_float(profile.memory_limit)
    if profile.accelerator_type:
        resources.accelerator.resource_type = profile.accelerator_type
        resources.accelerator.resource_count = str(profile.accelerator_count)
        resources.accelerator.type = profile.accelerator_type
        resources.accelerator.count = profile.accelerator_count


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
    args = parser.parse_args()
    if args.profile != DEFAULT_PROFILE and args.out == DEFAULT_OUT:
        parser.error("compiled/ holds the local profile; give --out for another profile")
    for path in compile_all(args.out, get_profile(args.profile, args.image)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
