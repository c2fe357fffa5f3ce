"""``adaptune vertex submit`` and ``adaptune vertex status``: pipeline jobs on Vertex AI."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.vertex.options import job_options, prepare, vertex_options, vertex_settings


@click.command()
@job_options
@click.option("--dry-run", is_flag=True, help="Print the request body; call nothing.")
@reports_errors
def submit(dry_run: bool, **options: Any) -> None:
    """Run the compiled pipeline on Vertex AI Pipelines and print its console URL.

    Takes the parameters as `adaptune run` does. Local input files are uploaded below the
    pipeline root first.
    """
    from adaptune.vertex.jobs import submit_job
    from adaptune.vertex.submission import dry_run_request, stage_inputs, storage_client

    with tempfile.TemporaryDirectory() as tmp:
        if dry_run:
            from google.auth.credentials import AnonymousCredentials

            # No call is made; anonymous credentials keep the SDK from looking any up.
            settings, prepared = prepare(options, Path(tmp), AnonymousCredentials())
            click.echo(json.dumps(dry_run_request(prepared, settings), indent=2))
            return
        settings, prepared = prepare(options, Path(tmp))
        stage_inputs(prepared, settings, storage_client(settings))
        url = submit_job(prepared.job, settings)
    click.echo(f"submitted {prepared.run_id}")
    click.echo(url)


@click.command()
@click.argument("run")
@vertex_options
@click.option("--wait", is_flag=True, help="Follow the job until it ends (live display).")
@click.option("--poll", type=float, default=15.0, show_default=True, help="Seconds between polls.")
@reports_errors
def status(run: str, wait: bool, poll: float, **options: Any) -> None:
    """Show a Vertex AI pipeline job's state and each task's; exit 1 if it ended unsuccessfully."""
    from rich.console import Console
    from rich.live import Live

    from adaptune.vertex.display import status_table
    from adaptune.vertex.jobs import get_job_status, init_vertex, wait_for_job

    console = Console()
    settings = vertex_settings(options)
    init_vertex(settings)

    def fetch() -> Any:
        return get_job_status(settings, run)

    if wait:
        with Live(console=console, auto_refresh=False) as live:
            final = wait_for_job(
                fetch, lambda s: live.update(status_table(s), refresh=True), poll_seconds=poll
            )
    else:
        final = fetch()
        console.print(status_table(final))
    if final.ended and not final.succeeded:
        sys.exit(1)
