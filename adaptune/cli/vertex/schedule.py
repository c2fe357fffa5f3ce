"""``adaptune vertex schedule create|list|pause|resume|delete``: PipelineJobSchedules."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.vertex.options import job_options, prepare, vertex_options, vertex_settings

ACTIONS = {"pause": "paused", "resume": "resumed", "delete": "deleted"}


@click.group()
def schedule() -> None:
    """Run the pipeline on a schedule on Vertex AI (PipelineJobSchedule)."""


@schedule.command("create")
@job_options
@click.option("--cron", required=True, help="Cron expression, e.g. 'TZ=Etc/UTC 0 3 * * 1'.")
@click.option("--name", "display_name", default="adaptune-retrain", show_default=True)
@click.option("--start-time", default="", help="RFC 3339 time of the first run.")
@click.option("--end-time", default="", help="RFC 3339 time after which no run starts.")
@click.option("--max-concurrent-runs", type=int, default=1, show_default=True)
@click.option("--max-runs", type=int, default=0, help="Stop after this many runs (0: no limit).")
@reports_errors
def schedule_create(
    cron: str,
    display_name: str,
    start_time: str,
    end_time: str,
    max_concurrent_runs: int,
    max_runs: int,
    **options: Any,
) -> None:
    """Create a schedule that submits the pipeline with these parameters (as `vertex submit`)."""
    from adaptune.vertex.schedules import ScheduleSpec, create_schedule
    from adaptune.vertex.submission import stage_inputs, storage_client

    with tempfile.TemporaryDirectory() as tmp:
        spec = ScheduleSpec(display_name, cron, max_concurrent_runs, start_time, end_time, max_runs)
        settings, prepared = prepare(options, Path(tmp))
        stage_inputs(prepared, settings, storage_client(settings))
        created = create_schedule(prepared.job, spec, settings)
    click.echo(f"created {created.resource_name}")


@schedule.command("list")
@vertex_options
@reports_errors
def schedule_list(**options: Any) -> None:
    """List the region's pipeline job schedules."""
    from rich.console import Console

    from adaptune.vertex.display import schedules_table
    from adaptune.vertex.jobs import init_vertex
    from adaptune.vertex.schedules import list_schedules

    settings = vertex_settings(options)
    init_vertex(settings)
    Console().print(schedules_table(list_schedules(settings)))


def _schedule_action(action: str) -> click.Command:
    @schedule.command(action, help=f"{action.capitalize()} a schedule (id or full name).")
    @click.argument("schedule_id")
    @vertex_options
    @reports_errors
    def command(schedule_id: str, **options: Any) -> None:
        from adaptune.vertex.jobs import init_vertex
        from adaptune.vertex.schedules import change_schedule

        settings = vertex_settings(options)
        init_vertex(settings)
        change_schedule(settings, schedule_id, action)
        click.echo(f"{ACTIONS[action]} {schedule_id}")

    return command


for _action in ACTIONS:
    _schedule_action(_action)
