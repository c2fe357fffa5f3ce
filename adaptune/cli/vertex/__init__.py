"""``adaptune vertex ...``: every command that talks to Vertex AI.

``submit`` and ``status`` (pipeline jobs), ``schedule`` (PipelineJobSchedules), ``deploy``
(a registry version on an endpoint) and ``lineage`` (a Vertex model version's origin).
"""

from __future__ import annotations

import click

from adaptune.cli.vertex import deploy, jobs, lineage, schedule


@click.group()
def vertex() -> None:
    """Run, schedule, follow and deploy on Vertex AI (Google Cloud)."""


vertex.add_command(jobs.submit)
vertex.add_command(jobs.status)
vertex.add_command(schedule.schedule)
vertex.add_command(deploy.deploy)
vertex.add_command(lineage.lineage)
