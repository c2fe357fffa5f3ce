"""``adaptune vertex lineage``: from a Vertex AI model version back to its job and data."""

from __future__ import annotations

import json
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.vertex.options import vertex_options, vertex_settings


@click.command()
@click.argument("model_ref")
@vertex_options
@reports_errors
def lineage(model_ref: str, **options: Any) -> None:
    """Print a Vertex AI model version's lineage as JSON.

    MODEL_REF is a Vertex AI model, ID[@VERSION] or its resource name; its labels lead back
    to the pipeline job (state, parameters, pipeline root) and the data's sha256.
    """
    from adaptune.vertex.jobs import init_vertex
    from adaptune.vertex.lineage import vertex_model_lineage

    settings = vertex_settings(options)
    init_vertex(settings)
    click.echo(json.dumps(vertex_model_lineage(settings, model_ref), indent=2, default=str))
