"""What each task of a local run did, read from kfp.local's files: outputs, inputs, times.

kfp.local writes ``<pipeline_root>/<pipeline>-<timestamp>/<task>/`` for a task that runs, with
``executor_output.json`` once it succeeded. It runs one task at a time in dependency order, so a
task started when the task before it ended (the first one when the run started). Times come from
those files' own timestamps, with full date and UTC offset; no log line is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from adaptune.lineage.recorder import OutputArtifact, TaskRecord, data_key
from adaptune.runner.dag import BY_NAME, tasks_for
from adaptune.runner.local import PIPELINE_SUBDIR

EXECUTOR_OUTPUT = "executor_output.json"


@dataclass(frozen=True)
class RunState:
    """Where a run stands, for reading its tasks.

    Attributes:
        started: When the run started.
        ended: When it ended (None while it runs).
        succeeded: Whether it succeeded (meaningful once ended).
        failed_task: The task that failed, when known.
        cancelled: Whether it was cancelled (its running task then reads ``cancelled``).
    """

    started: datetime
    ended: datetime | None = None
    succeeded: bool = False
    failed_task: str | None = None
    cancelled: bool = False


def _stamp(when: datetime | float) -> str:
    if isinstance(when, int | float):
        when = datetime.fromtimestamp(when)
    return when.astimezone().isoformat(timespec="milliseconds")


def task_dirs(run_dir: Path) -> dict[str, Path]:
    """The directory kfp.local made for each task that started, by task name.

    A resumed run has one timestamped directory per attempt: the newest attempt's tasks, plus
    the tasks an earlier attempt finished (what a resume reuses), the newer ones winning.
    """
    attempts = sorted(p for p in (run_dir / PIPELINE_SUBDIR).glob("*") if p.is_dir())
    found: dict[str, Path] = {}
    for number, attempt in enumerate(attempts, start=1):
        for task in sorted(p for p in attempt.iterdir() if p.is_dir()):
            if number == len(attempts) or (task / EXECUTOR_OUTPUT).is_file():
                found[task.name] = task
    return found


def read_outputs(task_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """A finished task's output parameters and artifacts (``uri``, ``metadata``); None if not."""
    path = task_dir / EXECUTOR_OUTPUT
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    artifacts = {
        name: {
            "uri": a["artifacts"][0].get("uri", ""),
            "metadata": a["artifacts"][0].get("metadata", {}),
        }
        for name, a in data.get("artifacts", {}).items()
        if a.get("artifacts")
    }
    parameters = dict(data.get("parameterValues", {}))
    artifact_uris = {Path(a["uri"]) for a in artifacts.values()}
    for extra in task_dir.iterdir():  # OutputPath(str) parameters are plain files
        if extra.is_file() and extra != path and extra not in artifact_uris:
            parameters.setdefault(extra.name, extra.read_text(encoding="utf-8"))
    return parameters, artifacts


def _leaf_tasks(spec: dict[str, Any]) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every task, at any depth of ``dsl.If`` sub-DAGs, with its enclosing tasks innermost first."""
    found: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}

    def walk(tasks: dict[str, Any], parents: list[dict[str, Any]]) -> None:
        for name, task in tasks.items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"]["tasks"], [task, *parents])
            else:
                found[name] = (task, parents)

    walk(spec["root"]["dag"]["tasks"], [])
    return found


def _source(binding: dict[str, Any], parents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Follow a sub-DAG input binding out through its enclosing tasks to where it comes from."""
    key = "componentInputArtifact" if kind == "artifacts" else "componentInputParameter"
    for parent in parents:
        name = binding.get(key)
        if not name or name not in parent.get("inputs", {}).get(kind, {}):
            break
        binding = parent["inputs"][kind][name]
    return binding


def _inputs(
    task: dict[str, Any],
    parents: list[dict[str, Any]],
    params: dict[str, Any],
    outputs: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """A task's input parameter values and the keys of the artifacts it consumes."""
    parameters: dict[str, Any] = {}
    for key, binding in task.get("inputs", {}).get("parameters", {}).items():
        binding = _source(binding, parents, "parameters")
        if "componentInputParameter" in binding:
            parameters[key] = params.get(binding["componentInputParameter"])
        elif "taskOutputParameter" in binding:
            ref = binding["taskOutputParameter"]
            parameters[key] = outputs.get(ref["producerTask"], {}).get(ref["outputParameterKey"])
        elif "runtimeValue" in binding:
            parameters[key] = binding["runtimeValue"].get("constant")
    artifacts = {}
    for key, binding in task.get("inputs", {}).get("artifacts", {}).items():
        binding = _source(binding, parents, "artifacts")
        if "taskOutputArtifact" in binding:
            ref = binding["taskOutputArtifact"]
            artifacts[key] = f"{ref['producerTask']}.{ref['outputArtifactKey']}"
    return parameters, artifacts


def _registry_version(params: dict[str, Any], outputs: dict[str, Any]) -> OutputArtifact:
    version = int(outputs["version"])
    path = Path(params["registry_dir"]) / params["model_name"] / f"v{version}"
    return OutputArtifact(
        str(path.resolve()),
        "registry_version",
        {"model": params["model_name"], "version": version},
    )


def read_task_records(
    run_dir: Path, spec: dict[str, Any], params: dict[str, Any], state: RunState
) -> dict[str, TaskRecord]:
    """Every task of the table that ran, runs or was skipped, in the order they ran.

    Args:
        run_dir: The run's directory (kfp.local's outputs are under ``pipeline/``).
        spec: The compiled pipeline (parsed YAML), for the tasks' input bindings.
        params: Every pipeline parameter, with the run id.
        state: When the run started, and how it ended if it has.

    Returns:
        Task name → record. A task that did not run is ``skipped`` when the run succeeded (its
        condition was false) and absent when an earlier task failed.
    """
    dirs = task_dirs(run_dir)
    finished = {name: read_outputs(d) for name, d in dirs.items()}
    outputs = {name: found[0] for name, found in finished.items() if found}
    ends = {name: (dirs[name] / EXECUTOR_OUTPUT).stat().st_mtime for name in outputs}
    leaves = _leaf_tasks(spec)
    times: dict[str, tuple[str, str, str | None]] = {}
    previous_end: datetime | float = state.started
    for name in sorted(ends, key=ends.get):
        times[name] = ("succeeded", _stamp(previous_end), _stamp(ends[name]))
        previous_end = ends[name]
    ended = _stamp(state.ended) if state.ended is not None else None
    unfinished = [name for name in dirs if name not in ends]
    failed = state.failed_task
    if ended and not state.succeeded and failed is None and not unfinished:
        # It failed before writing anything and reported no step: the first task of the table
        # (kfp.local runs them in this order) that did not finish.
        failed = next(
            (t.name for t in tasks_for(spec) if t.name in leaves and t.name not in ends), None
        )
    if ended and failed and failed not in dirs:
        unfinished.append(failed)  # it failed before writing anything
    stopped = "cancelled" if state.cancelled else "failed"
    for name in unfinished:  # running, or failed (cancelled) once the run is over
        times[name] = ("running" if ended is None else stopped, _stamp(previous_end), ended)
    records = {
        name: _with_io(name, *times[name], leaves, params, outputs, finished.get(name))
        for name in times
        if name in leaves
    }
    if ended and state.succeeded:
        for task in tasks_for(spec):
            if task.name not in records and task.name in leaves:
                records[task.name] = TaskRecord(task.name, "skipped")
    return records


def _with_io(
    name: str,
    status: str,
    start: str,
    end: str | None,
    leaves: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]],
    params: dict[str, Any],
    outputs: dict[str, dict[str, Any]],
    found: tuple[dict[str, Any], dict[str, dict[str, Any]]] | None,
) -> TaskRecord:
    """The task's record: its times plus what it read and wrote."""
    task, parents = leaves[name]
    parameters, consumed = _inputs(task, parents, params, outputs)
    table = BY_NAME.get(name)
    if table:
        consumed |= {p: data_key(p) for p in table.reads_data if params.get(p)}
    artifacts: dict[str, OutputArtifact] = {}
    if found:
        for output, a in found[1].items():
            kind = table.kinds.get(output, output) if table else output
            artifacts[output] = OutputArtifact(a["uri"], kind, a["metadata"])
        if table and table.registers:
            artifacts["registry_version"] = _registry_version(params, found[0])
    return TaskRecord(
        name, status, start, end, parameters, found[0] if found else {}, consumed, artifacts
    )
