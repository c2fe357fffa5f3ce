"""Pipeline job schedules on Vertex AI: create, list, pause, resume and delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from adaptune.errors import UserError
from adaptune.vertex.settings import VertexSettings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import aiplatform


@dataclass(frozen=True)
class ScheduleSpec:
    """When a pipeline runs.

    Attributes:
        display_name: Schedule name shown in the console.
        cron: Cron expression, optionally prefixed ``TZ=Area/City``.
        max_concurrent_run_count: Runs allowed at once.
        start_time: RFC 3339 time of the first possible run (empty: now).
        end_time: RFC 3339 time after which no run starts (empty: never).
        max_run_count: Runs after which the schedule completes (0: no limit).
    """

    display_name: str
    cron: str
    max_concurrent_run_count: int = 1
    start_time: str = ""
    end_time: str = ""
    max_run_count: int = 0

    def __post_init__(self) -> None:
        fields = self.cron.split()
        if fields and fields[0].startswith(("TZ=", "CRON_TZ=")):
            fields = fields[1:]
        if len(fields) != 5:
            raise UserError(f"cron {self.cron!r}: expected 5 fields, e.g. '0 3 * * 1'")
        if self.max_concurrent_run_count < 1:
            raise UserError("max_concurrent_run_count must be at least 1")
        if self.max_run_count < 0:
            raise UserError("max_run_count must not be negative")
        times = [
            _parse_time(name, value)
            for name, value in (("start_time", self.start_time), ("end_time", self.end_time))
        ]
        if times[0] and times[1] and times[1] <= times[0]:
            raise UserError("end_time must be after start_time")


def _parse_time(name: str, value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{name} {value!r}: expected RFC 3339, e.g. 2026-01-05T03:00:00Z") from None
    if parsed.tzinfo is None:
        raise UserError(f"{name} {value!r}: give a time zone, e.g. a trailing Z")
    return parsed


def create_schedule(
    job: aiplatform.PipelineJob, spec: ScheduleSpec, settings: VertexSettings
) -> aiplatform.PipelineJobSchedule:
    """Create a schedule that runs ``job`` (built by ``jobs.build_pipeline_job``)."""
    from google.cloud import aiplatform

    schedule = aiplatform.PipelineJobSchedule(
        pipeline_job=job,
        display_name=spec.display_name,
        project=settings.project,
        location=settings.location,
        credentials=job.credentials,
    )
    schedule.create(
        cron=spec.cron,
        start_time=spec.start_time or None,
        end_time=spec.end_time or None,
        max_run_count=spec.max_run_count or None,
        max_concurrent_run_count=spec.max_concurrent_run_count,
        service_account=settings.service_account or None,
        network=settings.network or None,
    )
    return schedule


def schedule_resource_name(settings: VertexSettings, schedule: str) -> str:
    """A schedule id or full resource name → ``projects/P/locations/L/schedules/ID``."""
    if schedule.startswith("projects/"):
        return schedule
    return f"projects/{settings.project}/locations/{settings.location}/schedules/{schedule}"


def schedule_row(resource: Any) -> dict[str, str]:
    """One schedule as a table row."""
    return {
        "name": resource.name.rsplit("/", 1)[-1],
        "display_name": resource.display_name,
        "state": resource.state.name,
        "cron": resource.cron,
        "next_run": resource.next_run_time.isoformat() if resource.next_run_time else "",
        "runs": str(resource.started_run_count),
    }


def list_schedules(
    settings: VertexSettings, credentials: Credentials | None = None
) -> list[dict[str, str]]:
    """The region's pipeline job schedules, one row each."""
    from google.cloud import aiplatform

    return [
        schedule_row(s.gca_resource)
        for s in aiplatform.PipelineJobSchedule.list(
            project=settings.project, location=settings.location, credentials=credentials
        )
    ]


def change_schedule(
    settings: VertexSettings,
    schedule: str,
    action: str,
    credentials: Credentials | None = None,
) -> None:
    """Pause, resume or delete a schedule.

    Raises:
        UserError: If the schedule does not exist or the action is unknown.
    """
    from google.api_core import exceptions
    from google.cloud import aiplatform

    if action not in ("pause", "resume", "delete"):
        raise UserError(f"unknown schedule action {action!r}")
    try:
        found = aiplatform.PipelineJobSchedule.get(
            schedule_resource_name(settings, schedule),
            project=settings.project,
            location=settings.location,
            credentials=credentials,
        )
        getattr(found, action)()
    except exceptions.NotFound:
        raise UserError(f"schedule not found: {schedule}") from None
