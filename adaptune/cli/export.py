"""``adaptune export-merged``: an adapter merged into its base model, as a plain checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from adaptune.cli.errors import reports_errors


@click.command("export-merged")
@click.argument("adapter_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--base-model", required=True, help="The base model the adapter was trained on.")
@reports_errors
def export_merged(adapter_dir: Path, out_dir: Path, base_model: str) -> None:
    """Merge an adapter into its base model and save a plain Hugging Face checkpoint."""
    from adaptune.atomic import staged_directory
    from adaptune.base_models import load_base_model
    from adaptune.tuning.loading import export_merged as merge

    base = load_base_model(base_model)
    with staged_directory(out_dir) as staging:
        merge(base.model, adapter_dir, staging)
        base.tokenizer.save_pretrained(staging)
    click.echo(f"wrote {out_dir}")
