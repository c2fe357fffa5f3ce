"""``adaptune run`` and ``adaptune reproduce``: local runs through the runner's library API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import EXPERIMENT, compiled_option, writable_runs_dir_option
from adaptune.cli.params import parameter_options, resolve_parameters


@click.command()
@parameter_options
@writable_runs_dir_option
@compiled_option(" to run")
@click.option(
    "--experiment",
    help=f"{EXPERIMENT} Records this run in it, locally (list them with "
    "`adaptune runs list --experiment NAME`).",
)
@click.option(
    "--if-changed",
    is_flag=True,
    help="Do nothing (exit 0) when data content and parameters equal the last successful run's.",
)
@reports_errors
def run(
    runs_dir: Path, compiled: Path, experiment: str | None, if_changed: bool, **flags: Any
) -> None:
    """Run the compiled pipeline locally with kfp.local and print a summary.

    Exits 1 when the run fails, 2 on bad options or parameters.
    """
    from adaptune.runner.run import run_local, unchanged_since
    from adaptune.runner.summary import print_summary

    params = resolve_parameters(compiled, flags)
    if if_changed:
        last = unchanged_since(compiled, params, runs_dir)
        if last is not None:
            click.echo(
                f"unchanged since run {last} (same data content and parameters): nothing to do"
            )
            return
    result = run_local(compiled, params, runs_dir, experiment)
    print_summary(result.summary)
    if not result.succeeded:
        sys.exit(1)


@click.command()
@click.argument("run_id")
@writable_runs_dir_option
@reports_errors
def reproduce(run_id: str, runs_dir: Path) -> None:
    """Rerun a run from its manifest and check the adapter's sha256 matches.

    Exits 1 when the rerun fails or makes a different adapter.
    """
    from adaptune.runner.run import plan_reproduction
    from adaptune.runner.run import reproduce as rerun
    from adaptune.runner.summary import print_summary

    plan = plan_reproduction(runs_dir, run_id)
    if plan.spec_changed:
        click.echo("warning: the compiled pipeline changed since the run", err=True)
    reproduction = rerun(plan, runs_dir)
    print_summary(reproduction.result.summary)
    if not reproduction.result.succeeded:
        sys.exit(1)
    got = reproduction.adapter_sha256
    if reproduction.reproduced:
        click.echo(f"reproduced: adapter sha256 {got} matches run {run_id}")
        return
    click.echo(
        f"NOT reproduced: adapter sha256 {got} differs from run {run_id}'s {plan.expected_sha256}",
        err=True,
    )
    sys.exit(1)
