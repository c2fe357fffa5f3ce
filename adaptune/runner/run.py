"""A local run, start to end: manifest → kfp.local → lineage record → summary.

``run_local`` is what ``adaptune run`` does; ``unchanged_since`` is ``--if-changed``;
``plan_reproduction`` and ``reproduce`` are ``adaptune reproduce``. Each returns a result and
prints nothing but the pipeline's own task logs: the CLI decides what to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptune.errors import UserError
from adaptune.hashing import sha256_file
from adaptune.lineage.manifest import data_hashes, fingerprint
from adaptune.lineage.store import MetadataStore

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class RunResult:
    """A finished local run.

    Attributes:
        run_id: The run's id (also its directory's name).
        run_dir: ``<runs_root>/<run_id>``.
        succeeded: Whether every task that ran succeeded.
        error: The failing step's message, when a step failed.
        failed_step: The step that failed.
        manifest: The run manifest (also in ``manifest.json``).
        summary: The run summary (also in ``summary.json``).
    """

    run_id: str
    run_dir: Path
    succeeded: bool
    error: str | None
    failed_step: str | None
    manifest: dict[str, Any]
    summary: dict[str, Any]


def run_local(
    compiled: Path, params: dict[str, Any], runs_root: Path, experiment: str | None = None
) -> RunResult:
    """Run the compiled pipeline with kfp.local, recording lineage and writing the summary.

    Args:
        compiled: The compiled pipeline YAML.
        params: Every pipeline parameter (see ``runner.params.pipeline_params``).
        runs_root: Holds the run directories and ``metadata.sqlite``.
        experiment: Also records the run in this experiment (a named group of runs).

    Returns:
        The finished run, whether it succeeded or failed.
    """
    from adaptune.lineage.tracking import run_tracked
    from adaptune.runner.summary import build_summary

    tracked = run_tracked(
        compiled, params, runs_root, summarise=build_summary, experiment=experiment
    )
    run = tracked.run
    return RunResult(
        run.run_id,
        run.run_dir,
        run.succeeded,
        run.error,
        run.failed_step,
        tracked.manifest,
        tracked.summary,
    )


def unchanged_since(compiled: Path, params: dict[str, Any], runs_root: Path) -> str | None:
    """The id of the last successful run, when its data content and parameters equal these.

    ``None`` when there is no such run, or when anything that decides the result changed:
    the data files' bytes, a parameter (the run id aside) or the compiled pipeline.
    """
    store = MetadataStore(runs_root)
    try:
        last = next((r for r in store.runs() if r.get("status") == "succeeded"), None)
    finally:
        store.close()
    current = fingerprint(params, data_hashes(params), sha256_file(compiled))
    if last and last.get("fingerprint") == current:
        return last["run_id"]
    return None


def read_manifest(runs_root: Path, run_id: str) -> dict[str, Any]:
    """A run's manifest.

    Raises:
        UserError: If the run has none.
    """
    import json

    path = Path(runs_root) / run_id / MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"no manifest for run {run_id!r} in {runs_root}")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ReproductionPlan:
    """What rerunning a run will run.

    Attributes:
        run_id: The run to reproduce.
        compiled: The compiled pipeline it ran.
        params: Its parameters (without its run id).
        expected_sha256: Its adapter's sha256 (None when it made no adapter).
        spec_changed: Whether the compiled pipeline's bytes changed since (or it is gone).
    """

    run_id: str
    compiled: Path
    params: dict[str, Any]
    expected_sha256: str | None
    spec_changed: bool


@dataclass(frozen=True)
class Reproduction:
    """A rerun and whether it made the same adapter."""

    plan: ReproductionPlan
    result: RunResult

    @property
    def adapter_sha256(self) -> str | None:
        """The rerun's adapter sha256."""
        return self.result.manifest.get("adapter_sha256")

    @property
    def reproduced(self) -> bool:
        """Whether the rerun's adapter has the original's sha256."""
        return bool(self.plan.expected_sha256) and self.plan.expected_sha256 == self.adapter_sha256


def plan_reproduction(runs_root: Path, run_id: str) -> ReproductionPlan:
    """Read what a run ran, checking its data files are still there with the same bytes.

    Raises:
        UserError: If the run has no manifest, or a data file is missing or changed.
    """
    manifest = read_manifest(runs_root, run_id)
    compiled = Path(manifest["compiled_spec"]["path"])
    spec_changed = (
        not compiled.is_file() or sha256_file(compiled) != manifest["compiled_spec"]["sha256"]
    )
    params = {k: v for k, v in manifest["params"].items() if k != "run_id"}
    for key, digest in (manifest.get("data_sha256") or {}).items():
        path = Path(params[key])
        if digest and (not path.is_file() or sha256_file(path) != digest):
            raise UserError(f"{key} {path} is missing or its content changed since run {run_id}")
    return ReproductionPlan(run_id, compiled, params, manifest.get("adapter_sha256"), spec_changed)


def reproduce(plan: ReproductionPlan, runs_root: Path) -> Reproduction:
    """Run the plan's pipeline with its parameters again, as a new run.

    Raises:
        UserError: If the compiled pipeline is gone.
    """
    if not plan.compiled.is_file():
        raise UserError(f"compiled pipeline not found: {plan.compiled}")
    return Reproduction(plan, run_local(plan.compiled, plan.params, runs_root))
