"""``adaptune lineage``: from a registered model version back to the data files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import registry_dir_option, runs_dir_option


@click.command()
@click.argument("model_ref")
@runs_dir_option
@registry_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
@reports_errors
def lineage(model_ref: str, runs_dir: Path, registry_dir: Path, as_json: bool) -> None:
    """From a registered model version back to the data files.

    MODEL_REF is NAME (the newest version), NAME@vN, or NAME@production / NAME@previous
    (looked up in the registry): "which data produced what serves now?" A version whose run
    was never recorded in the runs store (its runner was killed) is answered from the
    version's own lineage record. For a model on Vertex AI: `adaptune vertex lineage`.
    """
    from rich.console import Console

    from adaptune.cli.runs import open_store
    from adaptune.lineage.query import render_tree, render_version_record, version_lineage
    from adaptune.registry import parse_model_ref

    parse_model_ref(model_ref)  # a malformed reference is refused before any store is opened
    store = open_store(runs_dir)
    try:
        chain, recorded = version_lineage(store, registry_dir, model_ref)
    finally:
        store.close()
    render = render_tree if recorded else render_version_record
    if as_json:
        click.echo(json.dumps(chain, indent=2, default=str))
    else:
        Console(width=max(160, Console().width)).print(render(chain, model_ref))
