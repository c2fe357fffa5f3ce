"""Lineage of a model version in the Vertex AI Model Registry, read from its labels.

adaptune labels what it creates on Vertex with ``adaptune-run-id`` and ``adaptune-data-sha256``
(see :func:`adaptune.vertex.jobs.job_labels`); a model version carrying them leads back to the
pipeline job that produced it (the job id is the run id) and to the data's hash.
"""

from __future__ import annotations

from typing import Any

from google.auth.credentials import Credentials

from adaptune.errors import UserError
from adaptune.vertex.settings import VertexSettings

RUN_LABEL = "adaptune-run-id"
DATA_LABEL = "adaptune-data-sha256"


def model_resource_name(settings: VertexSettings, model: str) -> tuple[str, str | None]:
    """A full model resource name and version from ``ID``, ``ID@VERSION`` or a full name."""
    name, _, version = model.partition("@")
    if not name.startswith("projects/"):
        name = f"projects/{settings.project}/locations/{settings.location}/models/{name}"
    return name, version or None


def vertex_model_lineage(
    settings: VertexSettings, model: str, credentials: Credentials | None = None
) -> dict[str, Any]:
    """From a Vertex model version to the pipeline job that made it and the data's hash.

    Raises:
        UserError: If the model version carries no adaptune run label.
    """
    from google.cloud import aiplatform

    name, version = model_resource_name(settings, model)
    found = aiplatform.Model(model_name=name, version=version, credentials=credentials)
    labels = dict(found.labels or {})
    run_id = labels.get(RUN_LABEL)
    if not run_id:
        raise UserError(f"{model} has no {RUN_LABEL} label: it was not deployed by adaptune")
    parent = name.split("/models/")[0]
    job = aiplatform.PipelineJob.get(f"{parent}/pipelineJobs/{run_id}", credentials=credentials)
    job_labels = dict(job.labels or {})
    runtime = job.gca_resource.runtime_config
    return {
        "model": {"name": found.resource_name, "version": found.version_id, "labels": labels},
        "pipeline_job": {
            "name": job.resource_name,
            "state": job.gca_resource.state.name,
            "labels": job_labels,
            "pipeline_root": runtime.gcs_output_directory,
            "parameters": {k: v for k, v in dict(runtime.parameter_values).items()},
        },
        "data_sha256": labels.get(DATA_LABEL) or job_labels.get(DATA_LABEL),
    }
