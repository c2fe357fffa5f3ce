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
    from adaptune.errors import UserError
    from adaptune.lineage.query import (
        find_version,
        render_tree,
        render_version_record,
        version_record,
    )
    from adaptune.lineage.query import lineage as trace
    from adaptune.registry import list_models, parse_model_ref, resolve_version
    from adaptune.registry.refs import version_number

    name, ref = parse_model_ref(model_ref)
    in_registry = name in list_models(registry_dir)
    version = None if ref is None else version_number(ref)
    if (ref is not None and version is None) or (ref is None and in_registry):
        version = resolve_version(registry_dir, name, ref or "latest").version
    store = open_store(runs_dir)
    try:
        try:
            chain = trace(store, find_version(store, name, version))
            render = render_tree
        except UserError:
            if not in_registry:
                raise
            chain = version_record(store, registry_dir, name, version)
            render = render_version_record
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(chain, indent=2, default=str))
    else:
        Console(width=max(160, Console().width)).print(render(chain, model_ref))
