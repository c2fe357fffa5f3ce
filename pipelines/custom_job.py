"""The tuning task as a Vertex AI CustomJob, through GCPC's ``create_custom_training_job_...``.

``google_cloud_pipeline_components.v1.custom_job.create_custom_training_job_from_component``
turns the ``tune_adapter`` component (with the profile's image) into a component whose executor
is GCPC's CustomJob launcher and whose ``worker_pool_specs`` input defaults to the tuning
machine: machine type, accelerator type and count, replicas, boot disk, scheduling strategy and
reservation. :func:`run_tuning_as_custom_job` puts that component and its executor in place of
the plain one in a compiled spec: the task keeps its name, inputs, outputs and retry policy; the
new inputs are optional with those defaults, which is what KFP itself writes when a pipeline
calls the wrapped component (a test compares the two). GCPC is imported here, at compile time.
"""

from __future__ import annotations

import copy

from kfp.pipeline_spec import pipeline_spec_pb2

from components.tune_adapter import tune_adapter
from pipelines.profiles import TuningJob


def custom_job_component(image: str, job: TuningJob):
    """``tune_adapter`` in ``image`` wrapped as a CustomJob on ``job``'s machines."""
    from google_cloud_pipeline_components.v1.custom_job import (
        create_custom_training_job_from_component,
    )

    component = copy.deepcopy(tune_adapter)
    component.component_spec.implementation.container.image = image
    return create_custom_training_job_from_component(
        component,
        display_name=component.component_spec.name,
        replica_count=job.replica_count,
        machine_type=job.machine_type,
        accelerator_type=job.accelerator_type,
        accelerator_count=job.accelerator_count,
        boot_disk_type="pd-ssd",
        boot_disk_size_gb=job.boot_disk_size_gb,
        strategy=job.strategy,
        **job.reservation_args(),
    )


def run_tuning_as_custom_job(
    spec: pipeline_spec_pb2.PipelineSpec,
    config: pipeline_spec_pb2.PipelineDeploymentConfig,
    component_name: str,
    image: str,
    job: TuningJob,
) -> None:
    """Make ``spec``'s component ``component_name`` (and its executor) the CustomJob's, in place.

    Args:
        spec: The compiled pipeline.
        config: Its deployment config (the executors), written back by the caller.
        component_name: The tuning task's component (``comp-tune-adapter``).
        image: The image the training containers run (the profile's); the launcher runs in it
            too (it holds GCPC), so one image serves every task.
        job: The CustomJob's machines.
    """
    from google.protobuf import json_format
    from kfp.compiler import pipeline_spec_builder as builder

    component = custom_job_component(image, job)
    wrapped = component.pipeline_spec
    # As KFP builds a task's component in a pipeline (no descriptions; defaults optional).
    wrapped_component = builder._build_component_spec_from_component_spec_structure(
        component.component_spec
    )
    wrapped_config = json_format.ParseDict(
        json_format.MessageToDict(wrapped.deployment_spec),
        pipeline_spec_pb2.PipelineDeploymentConfig(),
    )
    (launcher,) = wrapped_config.executors.values()
    label = spec.components[component_name].executor_label
    wrapped_component.executor_label = label
    spec.components[component_name].CopyFrom(wrapped_component)
    config.executors[label].CopyFrom(launcher)
    config.executors[label].container.image = image
