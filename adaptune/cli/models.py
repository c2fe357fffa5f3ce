"""``adaptune models list|show|promote|rollback``: the registry from the command line.

``promote`` and ``rollback`` are also top-level commands (``adaptune promote MODEL@vN``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import json_output_option, registry_dir_option
from adaptune.errors import UserError

# The registry and rich are imported in the commands, so `adaptune --help` stays quick.


def _aliases_of(aliases: dict[str, int], version: int) -> str:
    return ", ".join(sorted(name for name, v in aliases.items() if v == version))


def _warn(message: str) -> None:
    click.echo(f"adaptune: warning: {message}", err=True)


def _warn_release(registry_dir: Path, model: str) -> dict[str, object] | None:
    """Warn (one line) about the model's interrupted release; return it as plain values."""
    from adaptune.registry.pending_release import as_dict, read_pending_release

    try:
        record = read_pending_release(registry_dir, model)
    except UserError as exc:  # unreadable: said, and every other model lists as usual
        _warn(str(exc))
        return None
    if record is None or not record.interrupted():
        return None
    _warn(record.warning())
    return as_dict(record)


def _primary(metrics: dict[str, float]) -> str:
    return ", ".join(
        f"{k.removeprefix('tuned_')} {v:.4f}"
        for k, v in metrics.items()
        if k.startswith("tuned_") and k.removeprefix("tuned_") in ("exact_match", "rouge_l")
    )


@click.group()
def models() -> None:
    """List, inspect, promote and roll back registered model versions."""


@models.command("list")
@registry_dir_option
@json_output_option
@reports_errors
def models_list(registry_dir: Path, as_json: bool) -> None:
    """Every model with its versions and where its aliases point.

    A corrupt index or version is listed with its path and the reason (in ``problems``, and on
    stderr); the other models and versions are listed as usual.
    """
    from rich.console import Console
    from rich.table import Table

    from adaptune.registry import list_models, survey_model

    rows = []
    for name in list_models(registry_dir):
        survey = survey_model(registry_dir, name)
        row: dict[str, object] = {
            "model": name,
            "versions": [v.version for v in survey.versions],
            "aliases": survey.aliases,
        }
        if survey.problems:
            row["problems"] = survey.problems
        rows.append(row)
    for row in rows:
        for problem in row.get("problems", []):
            _warn(problem)
        release = _warn_release(registry_dir, str(row["model"]))
        if release is not None:
            row["interrupted_release"] = release
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no models in {registry_dir}")
        return
    table = Table()
    for column in ("model", "production", "previous", "versions", "problems"):
        table.add_column(column)
    for row in rows:
        aliases = row["aliases"]
        problems = row.get("problems", [])
        table.add_row(
            row["model"],
            f"v{aliases['production']}" if "production" in aliases else "-",
            f"v{aliases['previous']}" if "previous" in aliases else "-",
            ", ".join(f"v{n}" for n in row["versions"]),
            f"{len(problems)} (see above)" if problems else "",
        )
    Console(width=max(120, Console().width)).print(table)


@models.command("show")
@click.argument("model_ref")
@registry_dir_option
@json_output_option
@reports_errors
def models_show(model_ref: str, registry_dir: Path, as_json: bool) -> None:
    """One model's versions (MODEL) or one version's metadata (MODEL@vN, MODEL@production)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from adaptune.registry import parse_model_ref, read_aliases, resolve_version, survey_model

    name, ref = parse_model_ref(model_ref)
    aliases = read_aliases(registry_dir, name)
    if ref is not None:
        _warn_release(registry_dir, name)
        version = resolve_version(registry_dir, name, ref)
        record = {
            **version.metadata,
            "aliases": _aliases_of(aliases, version.version),
            "path": str(version.path),
        }
        click.echo(json.dumps(record, indent=2, default=str))
        return
    survey = survey_model(registry_dir, name)
    versions = survey.versions
    if not versions and not survey.problems:
        raise UserError(f"no model {name!r} in registry {registry_dir}")
    for problem in survey.problems:
        _warn(problem)
    release = _warn_release(registry_dir, name)
    if as_json:
        payload: dict[str, object] = {
            "model": name,
            "aliases": aliases,
            "versions": [v.metadata for v in versions],
        }
        if survey.problems:
            payload["problems"] = survey.problems
        if release is not None:
            payload["interrupted_release"] = release
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    table = Table(title=name)
    columns = ("version", "aliases", "created", "run", "data sha256", "base model", "tuned")
    for column in (*columns, "description"):
        table.add_column(column, overflow="fold")
    for v in versions:
        meta = v.metadata
        table.add_row(
            f"v{v.version}",
            _aliases_of(aliases, v.version),
            str(meta.get("created_at", ""))[:19],
            str(meta.get("run_id", "")),
            str(meta.get("data_sha256", ""))[:12],
            str(meta.get("base_model", "")),
            _primary(meta.get("metrics", {})),
            Text(str(meta.get("description") or "")),
        )
    Console(width=max(140, Console().width)).print(table)


def _print_aliases(name: str, aliases: dict[str, int]) -> None:
    click.echo(
        f"{name}: production → v{aliases['production']}"
        + (f", previous → v{aliases['previous']}" if "previous" in aliases else "")
    )


force_option = click.option(
    "--force",
    is_flag=True,
    help="Move the alias even while a release of the model to Vertex AI is interrupted "
    "(deployed, not promoted); the next release settles that deployment.",
)


@models.command("promote")
@click.argument("model_ref")
@registry_dir_option
@force_option
@reports_errors
def models_promote(model_ref: str, registry_dir: Path, force: bool) -> None:
    """Serve MODEL@vN: production moves to it, previous to what served before.

    While a release of the model was interrupted between its Vertex AI deploy and its promotion,
    only that release's version may be promoted (which completes it), unless --force.
    """
    from adaptune.registry import parse_model_ref, promote

    name, ref = parse_model_ref(model_ref)
    if ref is None:
        raise UserError(f"say which version to promote: {name}@vN")
    _print_aliases(name, promote(registry_dir, name, ref, on_note=_warn, force=force))


@models.command("rollback")
@click.argument("model")
@registry_dir_option
@force_option
@reports_errors
def models_rollback(model: str, registry_dir: Path, force: bool) -> None:
    """Serve the previous version again (a second rollback undoes the first).

    Refused while a release of the model was interrupted between its Vertex AI deploy and its
    promotion, unless --force.
    """
    from adaptune.registry import parse_model_ref, rollback

    name, ref = parse_model_ref(model)
    if ref is not None:
        raise UserError(f"rollback takes a model name, not a version: {name}")
    _print_aliases(name, rollback(registry_dir, name, on_note=_warn, force=force))
