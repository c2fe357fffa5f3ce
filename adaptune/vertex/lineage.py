"""Lineage of a model version in the Vertex AI Model Registry: written as labels, read back.

adaptune labels what it creates on Vertex with ``adaptune-run-id`` and ``adaptune-data-sha256``
(see :func:`adaptune.vertex.jobs.job_labels`); a model version carrying them leads back to the
pipeline job that produced it (the job id is the run id) and to the data's hash. A label value
holds at most 63 characters, so the label has the hash's first 32 hex digits and the version
description the whole hash (``data_sha256=...``). Model versions also carry ``adaptune-model``
and ``adaptune-registry-version``: which local registry version they were uploaded from.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from google.auth.credentials import Credentials

from adaptune.errors import UserError
from adaptune.vertex.jobs import job_labels, label_value
from adaptune.vertex.settings import VertexSettings, check_labels

if TYPE_CHECKING:
    from adaptune.registry.local import RegisteredVersion

RUN_LABEL = "adaptune-run-id"
DATA_LABEL = "adaptune-data-sha256"
MODEL_LABEL = "adaptune-model"
REGISTRY_VERSION_LABEL = "adaptune-registry-version"
DESCRIPTION_HASH = re.compile(r"\bdata_sha256=([0-9a-f]{64})\b")


def model_version_labels(version: RegisteredVersion, extra: dict[str, str]) -> dict[str, str]:
    """Labels of the Vertex model version uploaded from a registry version.

    The job's labels (run id, data hash prefix, adaptune version, ``extra``) plus the registry
    model's name and version number.

    Raises:
        UserError: If an extra label is invalid.
    """
    metadata = version.metadata
    labels = job_labels(
        str(metadata.get("run_id") or ""), str(metadata.get("data_sha256") or ""), extra
    )
    labels[MODEL_LABEL] = label_value(version.model)
    labels[REGISTRY_VERSION_LABEL] = str(version.version)
    check_labels(labels)
    return labels


def version_description(version: RegisteredVersion) -> str:
    """The Vertex version description: the registry reference, run, full data hash, base model."""
    metadata = version.metadata
    return (
        f"adaptune {version.ref} run_id={metadata.get('run_id') or ''} "
        f"data_sha256={metadata.get('data_sha256') or ''} "
        f"base_model={metadata.get('base_model') or ''}"
    )


def data_sha256(labels: dict[str, str], description: str) -> str | None:
    """The data hash: the description's full hash when it extends the label's prefix."""
    prefix = labels.get(DATA_LABEL) or ""
    match = DESCRIPTION_HASH.search(description or "")
    if match and prefix and match.group(1).startswith(prefix):
        return match.group(1)
    return prefix or None


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

    ``pipeline_job`` is None when no Vertex pipeline job has the run id (a run made locally
    with ``adaptune run``); the labels still give the run id and the data hash.

    Raises:
        UserError: If the model version carries no adaptune run label.
    """
    from google.api_core import exceptions
    from google.cloud import aiplatform

    name, version = model_resource_name(settings, model)
    found = aiplatform.Model(model_name=name, version=version, credentials=credentials)
    labels = dict(found.labels or {})
    run_id = labels.get(RUN_LABEL)
    if not run_id:
        raise UserError(f"{model} has no {RUN_LABEL} label: it was not deployed by adaptune")
    parent = name.split("/models/")[0]
    model = {"name": found.resource_name, "version": found.version_id, "labels": labels}
    description = found.gca_resource.version_description
    try:
        job = aiplatform.PipelineJob.get(f"{parent}/pipelineJobs/{run_id}", credentials=credentials)
    except exceptions.NotFound:
        return {
            "model": model,
            "pipeline_job": None,
            "data_sha256": data_sha256(labels, description),
        }
    pipeline_labels = dict(job.labels or {})
    runtime = job.gca_resource.runtime_config
    return {
        "model": model,
        "pipeline_job": {
            "name": job.resource_name,
            "state": job.gca_resource.state.name,
            "labels": pipeline_labels,
            "pipeline_root": runtime.gcs_output_directory,
            "parameters": {k: v for k, v in dict(runtime.parameter_values).items()},
        },
        "data_sha256": data_sha256(labels, description) or pipeline_labels.get(DATA_LABEL),
    }
