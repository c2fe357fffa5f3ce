"""``adaptune export-merged``: an adapter merged into its base model, as a plain checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import click

from adaptune.cli.errors import reports_errors
from adaptune.errors import UserError


def check_out_dir(out_dir: Path, adapter_dir: Path, force: bool) -> None:
    """Refuse an ``OUT_DIR`` whose replacement would lose data, before anything is loaded.

    Always refused: the current directory or one holding it, the adapter's directory or one
    holding it, a file or symbolic link, and any registry path (a model's or a version's
    directory, a path inside one, or a directory holding one). Without ``force``, also a
    non-empty directory (with it, that directory is replaced).

    Raises:
        UserError: Naming ``OUT_DIR`` and why.
    """
    from adaptune.registry.index import registry_part

    if out_dir.is_symlink():
        raise UserError(f"OUT_DIR {out_dir} is a symbolic link; give the directory itself")
    target = out_dir.resolve()
    if target == Path(os.getcwd()).resolve() or target in Path(os.getcwd()).resolve().parents:
        raise UserError(f"OUT_DIR {out_dir} is the current directory or holds it; name a new one")
    adapter = adapter_dir.resolve()
    if target == adapter or target in adapter.parents:
        raise UserError(f"OUT_DIR {out_dir} is the adapter's directory or holds it")
    part = registry_part(target)
    if part is not None:
        raise UserError(
            f"OUT_DIR {out_dir} is a registry path ({part}); export outside the registry"
        )
    if target.exists() and not target.is_dir():
        raise UserError(f"OUT_DIR {out_dir} is a file; name a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UserError(
            f"OUT_DIR {out_dir} is not empty; name a new directory, or pass --force to replace it"
        )


@click.command("export-merged")
@click.argument("adapter_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--base-model", required=True, help="The base model the adapter was trained on.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace a non-empty OUT_DIR (never a registry path or the current directory).",
)
@reports_errors
def export_merged(adapter_dir: Path, out_dir: Path, base_model: str, force: bool) -> None:
    """Merge an adapter into its base model and save a plain Hugging Face checkpoint.

    OUT_DIR must be new or empty (--force replaces a non-empty one); a registry path is refused.
    """
    from adaptune.atomic import staged_directory
    from adaptune.base_models import load_base_model
    from adaptune.tuning.loading import export_merged as merge

    check_out_dir(out_dir, adapter_dir, force)
    base = load_base_model(base_model)
    with staged_directory(out_dir.resolve()) as staging:
        merge(base.model, adapter_dir, staging)
        base.tokenizer.save_pretrained(staging)
    click.echo(f"wrote {out_dir}")
