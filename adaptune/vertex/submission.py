"""Submit or schedule a compiled pipeline: plan the inputs, build the job, stage, create."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune.vertex import jobs, staging
from adaptune.vertex.settings import VertexSettings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import aiplatform, storage


@dataclass
class PreparedJob:
    """A pipeline job ready to stage and submit (or to print, for ``--dry-run``).

    Attributes:
        job: The SDK's PipelineJob, not yet created.
        run_id: Job id, display name and ``run_id`` label.
        staged: Parameters on ``/gcs/`` paths and where each local input goes.
        files: Local input files by parameter.
    """

    job: aiplatform.PipelineJob
    run_id: str
    staged: staging.StagedInputs
    files: dict[str, Path]


def prepare_job(
    settings: VertexSettings,
    template_path: Path,
    params: dict[str, Any],
    run_id: str,
    credentials: Credentials | None = None,
) -> PreparedJob:
    """Plan the staging and build the job; makes no network call.

    Args:
        settings: Vertex settings (a pipeline root is required).
        template_path: Compiled pipeline YAML.
        params: Resolved pipeline parameters, local paths absolute.
        run_id: Job id.
        credentials: Credentials (default: Application Default Credentials).

    Returns:
        The prepared job.
    """
    settings.require_pipeline_root()
    if "run_id" in params and not params["run_id"]:
        params = {**params, "run_id": run_id}
    files, staged = staging.plan_inputs(params, settings.pipeline_root)
    labels = jobs.job_labels(run_id, staged.data_sha256, settings.labels)
    job = jobs.build_pipeline_job(
        settings, template_path, staged.params, run_id, labels, credentials
    )
    return PreparedJob(job, run_id, staged, files)


def dry_run_request(prepared: PreparedJob, settings: VertexSettings) -> dict[str, Any]:
    """What ``submit`` would send: the create request and the uploads it would make first."""
    return {
        "parent": f"projects/{settings.project}/locations/{settings.location}",
        "pipelineJobId": prepared.run_id,
        "pipelineJob": jobs.request_body(prepared.job, settings),
        "experiment": settings.experiment,
        "uploads": {str(prepared.files[n]): uri for n, uri in prepared.staged.uploads.items()},
    }


def stage_inputs(prepared: PreparedJob, settings: VertexSettings, client: storage.Client) -> None:
    """Check the pipeline root's bucket, then upload the local inputs."""
    staging.check_bucket(client, settings.bucket)
    staging.upload_inputs(client, prepared.files, prepared.staged.uploads)


def storage_client(
    settings: VertexSettings, credentials: Credentials | None = None
) -> storage.Client:
    """A Cloud Storage client for the project."""
    from google.cloud import storage

    return storage.Client(project=settings.project, credentials=credentials)
