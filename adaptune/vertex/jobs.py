"""Pipeline jobs on Vertex AI: build the request, submit it, read its state and its tasks'."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune import __version__
from adaptune.errors import UserError
from adaptune.run_ids import check_run_id
from adaptune.vertex.settings import VertexSettings, check_labels

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import aiplatform

SUCCEEDED_SUFFIXES = ("SUCCEEDED",)
TERMINAL_SUFFIXES = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED", "PARTIALLY_SUCCEEDED")
STATE_PREFIXES = ("PIPELINE_STATE_", "JOB_STATE_")


def short_state(state: str) -> str:
    """``PIPELINE_STATE_RUNNING`` → ``RUNNING``."""
    for prefix in STATE_PREFIXES:
        if state.startswith(prefix):
            return state[len(prefix) :]
    return state


def is_terminal(state: str) -> bool:
    """Whether a job in this state will not change again.

    Unlike the SDK's ``has_ended``, EXPIRED and PARTIALLY_SUCCEEDED count as ended too.
    """
    return short_state(state) in TERMINAL_SUFFIXES


def label_value(text: str) -> str:
    """Make ``text`` a valid label value (lowercase, ``[a-z0-9_-]``, at most 63 characters)."""
    return re.sub(r"[^a-z0-9_-]", "_", text.lower())[:63]


def job_labels(run_id: str, data_sha256: str, extra: dict[str, str]) -> dict[str, str]:
    """The job's labels: run id, data hash (first 32 hex digits), adaptune version, ``extra``.

    Raises:
        UserError: If an extra label is invalid.
    """
    labels = {"adaptune-run-id": label_value(run_id), "adaptune-version": label_value(__version__)}
    if data_sha256:
        labels["adaptune-data-sha256"] = data_sha256[:32]
    labels.update(extra)
    check_labels(labels)
    return labels


def console_url(settings: VertexSettings, job_id: str) -> str:
    """The Google Cloud console page of a pipeline run."""
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{settings.location}"
        f"/pipelines/runs/{job_id}?project={settings.project}"
    )


def init_vertex(settings: VertexSettings, credentials: Credentials | None = None) -> None:
    """Point the Vertex AI SDK at the project, region and endpoint (REST transport).

    Args:
        settings: The Vertex settings.
        credentials: Credentials to use (default: Application Default Credentials).
    """
    from google.cloud import aiplatform

    kwargs: dict[str, Any] = {}
    if settings.api_endpoint:
        kwargs["api_endpoint"] = settings.api_endpoint
    aiplatform.init(
        project=settings.project,
        location=settings.location,
        credentials=credentials,
        staging_bucket=settings.pipeline_root,
        api_transport="rest",
        **kwargs,
    )


def build_pipeline_job(
    settings: VertexSettings,
    template_path: Path,
    params: dict[str, Any],
    run_id: str,
    labels: dict[str, str],
    credentials: Credentials | None = None,
) -> aiplatform.PipelineJob:
    """Build (not submit) the PipelineJob for a compiled pipeline; makes no network call.

    Args:
        settings: Project, region, pipeline root, CMEK key and caching.
        template_path: The compiled pipeline YAML.
        params: Pipeline parameter values.
        run_id: Job id and display name.
        labels: Job labels.
        credentials: Credentials (default: Application Default Credentials).

    Returns:
        The job, ready for ``submit_job``.
    """
    from google.cloud import aiplatform

    if not template_path.is_file():
        raise UserError(f"compiled pipeline not found: {template_path} (run: make compile)")
    return aiplatform.PipelineJob(
        display_name=run_id,
        template_path=str(template_path),
        job_id=check_run_id(run_id),
        pipeline_root=settings.pipeline_root,
        parameter_values=params,
        enable_caching=settings.enable_caching,
        encryption_spec_key_name=settings.kms_key or None,
        labels=labels,
        project=settings.project,
        location=settings.location,
        credentials=credentials,
    )


def request_body(job: aiplatform.PipelineJob, settings: VertexSettings) -> dict[str, Any]:
    """The PipelineJob as ``submit_job`` sends it, in REST JSON form (for ``--dry-run``)."""
    from google.protobuf import json_format

    pending = job._gca_resource  # the unsent request; the public property needs a created job
    resource = type(pending)(pending)
    if settings.service_account:
        resource.service_account = settings.service_account
    if settings.network:
        resource.network = settings.network
    return json_format.MessageToDict(type(resource).pb(resource))


def submit_job(job: aiplatform.PipelineJob, settings: VertexSettings) -> str:
    """Create the job on Vertex AI; return its console URL.

    The pipeline root's bucket must exist (``staging.check_bucket``); otherwise the SDK would
    try to create it.
    """
    job.submit(
        service_account=settings.service_account or None,
        network=settings.network or None,
        experiment=settings.experiment or None,
    )
    return console_url(settings, job.job_id)


@dataclass(frozen=True)
class TaskStatus:
    """One task of a pipeline job."""

    name: str
    state: str
    start_time: str = ""
    end_time: str = ""
    error: str = ""


@dataclass(frozen=True)
class JobStatus:
    """A pipeline job and its tasks, as Vertex AI reports them."""

    name: str
    state: str
    tasks: list[TaskStatus] = field(default_factory=list)
    error: str = ""

    @property
    def ended(self) -> bool:
        """Whether the job is in a terminal state."""
        return is_terminal(self.state)

    @property
    def succeeded(self) -> bool:
        """Whether the job ended successfully."""
        return short_state(self.state) == "SUCCEEDED"


def job_resource_name(settings: VertexSettings, run: str) -> str:
    """A run id or full resource name → ``projects/P/locations/L/pipelineJobs/ID``."""
    if run.startswith("projects/"):
        return run
    return f"projects/{settings.project}/locations/{settings.location}/pipelineJobs/{run}"


def _time(value: Any) -> str:
    return value.isoformat() if value else ""


def status_from_resource(resource: Any) -> JobStatus:
    """Read a ``PipelineJob`` resource (the API's message) into a ``JobStatus``."""
    tasks = [
        TaskStatus(
            name=task.task_name,
            state=task.state.name,
            start_time=_time(task.start_time),
            end_time=_time(task.end_time),
            error=task.error.message,
        )
        for task in resource.job_detail.task_details
        if task.task_name and task.task_name != resource.job_detail.pipeline_run_context.name
    ]
    return JobStatus(resource.name, resource.state.name, tasks, resource.error.message)


def get_job_status(
    settings: VertexSettings, run: str, credentials: Credentials | None = None
) -> JobStatus:
    """Fetch a pipeline job's state and its tasks' states.

    Raises:
        UserError: If the job does not exist.
    """
    from google.api_core import exceptions
    from google.cloud import aiplatform

    try:
        job = aiplatform.PipelineJob.get(
            job_resource_name(settings, run),
            project=settings.project,
            location=settings.location,
            credentials=credentials,
        )
    except exceptions.NotFound:
        raise UserError(f"pipeline job not found: {run}") from None
    status = status_from_resource(job.gca_resource)
    if job.gca_resource.state == 0:  # a state this SDK's enum lacks (EXPIRED...) parses as 0
        raw = raw_job_state(settings, job.resource_name, job.credentials)
        status = JobStatus(status.name, raw or status.state, status.tasks, status.error)
    return status


def raw_job_state(settings: VertexSettings, name: str, credentials: Credentials) -> str:
    """Read a job's state as the API spells it, bypassing the SDK's enum.

    The SDK's ``PipelineState`` has no EXPIRED or PARTIALLY_SUCCEEDED, and turns any value it
    lacks into ``PIPELINE_STATE_UNSPECIFIED``; this GET keeps the string.
    """
    from google.auth.transport.requests import AuthorizedSession

    endpoint = settings.api_endpoint or f"https://{settings.location}-aiplatform.googleapis.com"
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    response = AuthorizedSession(credentials).get(f"{endpoint.rstrip('/')}/v1/{name}", timeout=60)
    response.raise_for_status()
    return str(response.json().get("state", ""))


def wait_for_job(
    fetch: Callable[[], JobStatus],
    on_update: Callable[[JobStatus], None],
    poll_seconds: float = 15.0,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Poll until the job is in a terminal state, reporting every status.

    Raises:
        UserError: If ``timeout_seconds`` passes first.
    """
    started = time.monotonic()
    while True:
        status = fetch()
        on_update(status)
        if status.ended:
            return status
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise UserError(f"{status.name} still {short_state(status.state)} after the timeout")
        sleep(poll_seconds)
