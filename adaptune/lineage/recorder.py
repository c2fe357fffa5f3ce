"""Recording a local run's tasks into the metadata store, from kfp.local's outputs.

Each finished task becomes an execution with its parameters (resolved from the compiled spec),
start and end time and status (from the run log), its output artifacts (with content hashes)
and INPUT events to the artifacts it consumed; the data files become artifacts too, and a
deploy's registry version is recorded as its output.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path
from typing import Any

from adaptune.hashing import adapter_sha256, sha256_tree
from adaptune.lineage.store import MetadataStore
from adaptune.runner.local import task_outputs

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d{3}) - \w+ - (?:Executing task '([\w-]+)'|Task '([\w-]+)' finished "
    r"with status (\w+))"
)
ARTIFACT_TYPES = {("tune-adapter", "adapter"): "adapter"}
DATA_PARAMS = ("train_data", "eval_data")


def task_times(log_path: Path, day: datetime) -> dict[str, dict[str, str]]:
    """Start, end and status of each task, read from the kfp.local log lines of the run."""
    times: dict[str, dict[str, str]] = {}
    if not log_path.is_file():
        return times
    for raw in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = LOG_LINE.match(ANSI.sub("", raw))
        if not match:
            continue
        stamp = datetime.combine(
            day.date(), time.fromisoformat(match.group(1)), day.tzinfo
        ).isoformat(timespec="milliseconds")
        if match.group(2):
            times.setdefault(match.group(2), {})["start"] = stamp
        else:
            entry = times.setdefault(match.group(3), {})
            entry["end"], entry["status"] = stamp, match.group(4).lower()
    return times


def _flatten_tasks(spec: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every task (also inside condition sub-DAGs) with its spec and the enclosing DAG task."""
    tasks: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        if "dag" in component:
            for inner_name, inner in component["dag"]["tasks"].items():
                tasks[inner_name] = (inner, task)
        else:
            tasks[name] = (task, {})
    return tasks


def _source(binding: dict[str, Any], parent: dict[str, Any], kind: str) -> dict[str, Any]:
    """Follow a sub-DAG input binding to its binding in the parent DAG."""
    key = "componentInputArtifact" if kind == "artifacts" else "componentInputParameter"
    name = binding.get(key)
    if parent and name and name in parent.get("inputs", {}).get(kind, {}):
        return parent["inputs"][kind][name]
    return binding


def resolve_inputs(
    spec: dict[str, Any], params: dict[str, Any], outputs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each task's input parameters (values) and input artifacts (producer task, output name)."""
    resolved: dict[str, dict[str, Any]] = {}
    for name, (task, parent) in _flatten_tasks(spec).items():
        parameters: dict[str, Any] = {}
        for key, binding in task.get("inputs", {}).get("parameters", {}).items():
            binding = _source(binding, parent, "parameters")
            if "componentInputParameter" in binding:
                parameters[key] = params.get(binding["componentInputParameter"])
            elif "taskOutputParameter" in binding:
                ref = binding["taskOutputParameter"]
                parameters[key] = (
                    outputs.get(ref["producerTask"], {})
                    .get("parameters", {})
                    .get(ref["outputParameterKey"])
                )
            elif "runtimeValue" in binding:
                parameters[key] = binding["runtimeValue"].get("constant")
        artifacts = {}
        for key, binding in task.get("inputs", {}).get("artifacts", {}).items():
            binding = _source(binding, parent, "artifacts")
            if "taskOutputArtifact" in binding:
                ref = binding["taskOutputArtifact"]
                artifacts[key] = (ref["producerTask"], ref["outputArtifactKey"])
        resolved[name] = {"parameters": parameters, "artifacts": artifacts}
    return resolved


class RunRecorder:
    """Writes a run's finished tasks into the store, each once.

    Called every second while the run goes on and once at its end: a task is hashed and written
    when its outputs appear and written again only until its end is in the log, so outputs are
    not re-hashed on every call.
    """

    def __init__(
        self,
        store: MetadataStore,
        run_id: str,
        run_dir: Path,
        spec: dict[str, Any],
        params: dict[str, Any],
        started: datetime,
        data_sha256: dict[str, str | None],
    ):
        self.store, self.run_id, self.run_dir = store, run_id, run_dir
        self.spec, self.params, self.started = spec, params, started
        self.ids: dict[str, int] = {}
        self.finished: set[str] = set()
        for param, digest in data_sha256.items():
            value = params.get(param)
            if digest and value:
                self.ids[f"data.{param}"] = store.put_artifact(
                    "data_file", str(Path(value).resolve()), digest, {"parameter": param}
                )

    def record(self) -> dict[str, int]:
        """Write the tasks finished since the last call.

        Returns:
            Output artifact ids by ``task.output`` name (plus ``data.<param>`` for data files
            and ``registry.version`` for a deploy).
        """
        outputs = task_outputs(self.run_dir)
        times = task_times(self.run_dir / "run.log", self.started)
        inputs = resolve_inputs(self.spec, self.params, outputs)
        new = [t for t in outputs if t not in self.finished]
        for task in sorted(new, key=lambda t: times.get(t, {}).get("end", "")):
            self._record_task(task, outputs[task], inputs.get(task, {}), times.get(task, {}))
            if "end" in times.get(task, {}):
                self.finished.add(task)
        return self.ids

    def _record_task(
        self, task: str, output: dict[str, Any], inputs: dict[str, Any], info: dict[str, str]
    ) -> None:
        ids = self.ids
        produced = {}
        for name, artifact in output["artifacts"].items():
            key = f"{task}.{name}"
            if key not in ids:
                uri = Path(artifact["uri"])
                kind = ARTIFACT_TYPES.get((task, name), name)
                digest = (
                    adapter_sha256(uri)
                    if kind == "adapter"
                    else (sha256_tree(uri) if uri.exists() else None)
                )
                ids[key] = self.store.put_artifact(
                    kind,
                    str(uri),
                    digest,
                    {**artifact["metadata"], "run_id": self.run_id, "task": task},
                )
            produced[name] = ids[key]
        consumed = {
            key: ids[f"{p}.{k}"]
            for key, (p, k) in inputs.get("artifacts", {}).items()
            if f"{p}.{k}" in ids
        }
        if task == "validate-dataset":
            consumed |= {p: ids[f"data.{p}"] for p in DATA_PARAMS if f"data.{p}" in ids}
        if task == "deploy":
            if "registry.version" not in ids:
                ids["registry.version"] = _registry_artifact(
                    self.store, self.params, output["parameters"], self.run_id
                )
            produced["registry_version"] = ids["registry.version"]
        self.store.put_execution(
            self.run_id,
            task,
            inputs.get("parameters", {}),
            info.get("status", "succeeded"),
            info.get("start"),
            info.get("end"),
            str(self.run_dir / "run.log"),
            consumed,
            produced,
        )


def _registry_artifact(
    store: MetadataStore, params: dict[str, Any], deployed: dict[str, Any], run_id: str
) -> int:
    version = int(deployed["version"])
    path = Path(params["registry_dir"]) / params["model_name"] / f"v{version}"
    return store.put_artifact(
        "registry_version",
        str(path.resolve()),
        adapter_sha256(path),
        {"model": params["model_name"], "version": version, "run_id": run_id},
    )
