"""``adaptune validate``: check data files as the pipeline would."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import json_mapping_option
from adaptune.cli.params import DATA_HELP
from adaptune.data.settings import FORMATS


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--eval-data", "eval_paths", multiple=True, help=f"Eval data: {DATA_HELP}.")
@click.option(
    "--format",
    "data_format",
    type=click.Choice(FORMATS),
    help="Data format (default: detected per file).",
)
@click.option(
    "--base-model",
    default="builtin:tiny-gpt2",
    show_default=True,
    help="Model whose tokenizer counts tokens.",
)
@json_mapping_option("--data", "data", '{"max_examples": 1000}', "Data settings")
@click.option(
    "--html", "html_path", type=click.Path(path_type=Path), help="Also write the report as HTML."
)
@reports_errors
def validate(
    paths: tuple[str, ...],
    eval_paths: tuple[str, ...],
    data_format: str | None,
    base_model: str,
    data: dict[str, Any] | None,
    html_path: Path | None,
) -> None:
    """Check data (files, globs, gs:// URIs; JSONL, CSV or Parquet) as the pipeline would.

    Prints the report. Exits 1 when the data would fail the pipeline, 2 on bad options.
    """
    from adaptune.atomic import write_text_atomic
    from adaptune.data.settings import DataSettings
    from adaptune.data.validation import check_dataset

    values = dict(data or {})
    if data_format:
        values["format"] = data_format
    settings = DataSettings.from_dict(values)
    report, _ = check_dataset(list(paths), list(eval_paths), settings, base_model)
    click.echo(report.to_markdown())
    if html_path:
        write_text_atomic(html_path, report.to_html())
    if not report.passed:
        click.echo(report.failure_message(), err=True)
        sys.exit(1)
