"""``adaptune run`` and ``adaptune reproduce``: local runs through the runner's library API."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from adaptune.cli.backends import (
    PIPELINE_NAMES,
    backend_option,
    compiled_for_backend,
    pipeline_name,
)
from adaptune.cli.errors import reports_errors
from adaptune.cli.options import (
    EXPERIMENT,
    compiled_option,
    verbose_option,
    writable_runs_dir_option,
)
from adaptune.cli.params import parameter_options, resolve_parameters
from adaptune.errors import UserError

if TYPE_CHECKING:
    from adaptune.runner.run import RunResult


@click.command()
@parameter_options
@writable_runs_dir_option
@compiled_option(" to run")
@backend_option
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
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    help="Continue this killed or failed run in place: same run id, parameters and pipeline, "
    "reusing the steps whose outputs still match their recorded sha256 and tuning from the "
    "last checkpoint. Takes no other option but --runs-dir and --verbose.",
)
@click.option(
    "--run-id",
    "new_id",
    metavar="RUN_ID",
    help="Give the new run this id (lowercase letters, digits and -; no run may have it). "
    "Default: adaptune-<UTC time>-<random hex>.",
)
@verbose_option
@reports_errors
def run(
    runs_dir: Path,
    compiled: Path,
    experiment: str | None,
    if_changed: bool,
    resume_id: str | None,
    new_id: str | None,
    verbose: bool,
    backend: str,
    **flags: Any,
) -> None:
    """Run the compiled pipeline locally with kfp.local and print a summary.

    Shows the DAG's tasks as they run (a live table on a terminal, a line per state change
    elsewhere); the executor log goes to the run's run.log (--verbose prints it instead).
    Exits 1 when the run fails, 2 on bad options or parameters.
    """
    from adaptune.runner.run import check_new_run_id, run_local, unchanged_since
    from adaptune.runner.summary import print_summary
    from adaptune.vertex.deploy_settings import check_deploy_credentials

    if resume_id is not None:
        _resume(resume_id, runs_dir, verbose)
        return
    if new_id is not None:
        check_new_run_id(runs_dir, new_id)
    compiled = compiled_for_backend(backend, compiled)  # --backend picks the pipeline
    params = resolve_parameters(compiled, flags)
    check_deploy_credentials(params.get("vertex_deploy"))  # a local run deploys with ADC
    if if_changed:
        last = unchanged_since(compiled, params, runs_dir)
        if last is not None:
            click.echo(
                f"unchanged since run {last} (same data content and parameters): nothing to do"
            )
            return
    with _watching(verbose) as shown:
        result = run_local(compiled, params, runs_dir, experiment, run_id=new_id, **shown)
    print_summary(result.summary)
    _print_settled(result.manifest)
    _point_at_log(result, verbose)
    if not result.succeeded:
        sys.exit(1)


@contextmanager
def _watching(verbose: bool) -> Iterator[dict[str, Any]]:
    """How a run shows itself, as the runner's keyword arguments.

    ``--verbose``: the executor log streamed as it comes. Otherwise the task table
    (``runner.task_table``) on this command's stdout, the log going only to run.log.
    """
    if verbose:
        yield {"stream_log": True}
        return
    from rich.console import Console

    from adaptune.runner.task_table import task_table

    # The console is bound to stdout as it is now: the runner sends stdout to run.log.
    with task_table(Console(file=sys.stdout, soft_wrap=True)) as reporter:
        yield {"reporter": reporter}


def _point_at_log(result: RunResult, verbose: bool) -> None:
    """After a failed quiet run: where the executor log that says more is."""
    from adaptune.runner.local import LOG_FILE

    if not result.succeeded and not verbose:
        click.echo(f"the executor log is in {result.run_dir / LOG_FILE} (--verbose prints it)")


def _resume(run_id: str, runs_dir: Path, verbose: bool) -> None:
    """``adaptune run --resume RUN_ID``: refuse any other option, check, then continue the run."""
    from adaptune.runner.resume import plan_resume
    from adaptune.runner.run import resume_local
    from adaptune.runner.summary import print_summary

    ctx = click.get_current_context()
    given = [
        max(option.opts, key=len)
        for option in ctx.command.params
        if option.name not in ("resume_id", "runs_dir", "verbose")
        and ctx.get_parameter_source(option.name) == ParameterSource.COMMANDLINE
    ]
    if given:
        raise UserError(
            f"--resume continues a run with its own parameters: drop {', '.join(sorted(given))}"
        )
    plan = plan_resume(runs_dir, run_id)
    from adaptune.vertex.deploy_settings import check_deploy_credentials

    check_deploy_credentials(plan.params.get("vertex_deploy"))  # before anything runs again
    reused = ", ".join(plan.reusable) or "nothing"
    click.echo(f"resuming run {run_id}: outputs checked and reusable: {reused}")
    for entry in plan.dropped:
        click.echo(f"  runs again: {entry.task or entry.path.name} ({entry.problem})")
    with _watching(verbose) as shown:
        result = resume_local(plan, runs_dir, **shown)
    print_summary(result.summary)
    _print_settled(result.manifest)
    _point_at_log(result, verbose)
    if not result.succeeded:
        sys.exit(1)


def _print_settled(manifest: dict[str, Any]) -> None:
    """What the run's end did about its own interrupted Vertex AI release, if anything."""
    if manifest.get("release_settled"):
        click.echo(f"release: {manifest['release_settled']}")


@click.command()
@click.argument("run_id")
@writable_runs_dir_option
@verbose_option
@reports_errors
def reproduce(run_id: str, runs_dir: Path, verbose: bool) -> None:
    """Rerun a run from its manifest and check the adapter's sha256 matches.

    Exits 1 when the rerun fails or makes a different adapter. A vertex_gemini run is
    refused: Vertex AI's managed tuning makes a new model each time, not the same bytes.
    """
    from adaptune.lineage.run_manifest import REPRODUCED, read_run_manifest
    from adaptune.runner.run import plan_reproduction
    from adaptune.runner.run import reproduce as rerun
    from adaptune.runner.summary import print_summary

    read_run_manifest(runs_dir, run_id, REPRODUCED)  # a broken manifest: one line, before anything
    plan = plan_reproduction(runs_dir, run_id)
    if pipeline_name(plan.compiled) == PIPELINE_NAMES["vertex_gemini"]:
        raise UserError(
            f"run {run_id} tuned Gemini with Vertex AI's managed tuning (--backend "
            "vertex_gemini), which makes a new model each time: it cannot be reproduced bit "
            f"for bit; rerun it with: adaptune run --backend vertex_gemini --config "
            f"{runs_dir / run_id / 'params.yaml'}"
        )
    if plan.spec_changed:
        click.echo("warning: the compiled pipeline changed since the run", err=True)
    with _watching(verbose) as shown:
        reproduction = rerun(plan, runs_dir, **shown)
    print_summary(reproduction.result.summary)
    _point_at_log(reproduction.result, verbose)
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
