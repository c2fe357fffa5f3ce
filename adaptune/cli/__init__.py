"""The ``adaptune`` command line: the ``main`` group and the commands it holds.

One module per command group; ``vertex/`` holds every command that talks to Vertex AI.
Commands import what they use inside their bodies, so ``adaptune --help`` stays quick.
"""

from __future__ import annotations

import click

from adaptune import __version__
from adaptune.cli import export, lineage, models, run, runs, serving, studio, validate, vertex
from adaptune.cli.errors import CommandGroup


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adaptune")
def main() -> None:
    """Tune LLM adapters with one compiled Kubeflow pipeline, locally or on Vertex AI."""


for _command in (
    run.run,
    run.reproduce,
    validate.validate,
    runs.runs,
    lineage.lineage,
    models.models,
    export.export_merged,
    serving.serve,
    serving.predict,
    serving.compare,
    studio.studio,
    vertex.vertex,
):
    main.add_command(_command)
main.add_command(models.models_promote, "promote")
main.add_command(models.models_rollback, "rollback")

__all__ = ["main"]
