"""Recording a run's tasks into the metadata store, from task records the runner hands over.

The recorder knows nothing of kfp.local or of the DAG: each ``TaskRecord`` says what a task read
(parameter values, and the keys of the artifacts it consumed), what it wrote, when it ran and
how it ended. Each becomes an execution with INPUT and OUTPUT events; every output artifact is
hashed once (adapters and registry versions by their config and weights, anything else by all
its files).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptune.hashing import adapter_sha256, sha256_tree
from adaptune.lineage.store import MetadataStore

ADAPTER_KINDS = ("adapter", "registry_version")
"""Artifact types hashed as adapters: config and weights, not reports beside them."""
FINAL_STATUSES = ("succeeded", "failed", "skipped")


@dataclass(frozen=True)
class OutputArtifact:
    """An artifact a task wrote.

    Attributes:
        uri: Where it is: a local path, or a remote resource's URI (a Vertex AI model's
            ``https://`` URL).
        kind: Its artifact type in the store (``adapter``, ``registry_version``, or the
            output's name).
        metadata: Its properties.
    """

    uri: str
    kind: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskRecord:
    """One task of a run, as the runner saw it.

    Attributes:
        name: The task's name.
        status: ``succeeded``, ``failed``, ``running`` or ``skipped``.
        start_time: When it started (ISO 8601 with date and UTC offset), if known.
        end_time: When it ended, if it has.
        parameters: Its input parameters' values.
        outputs: Its output parameters' values.
        inputs: Each input artifact's name and the key (``task.output`` or ``data.<param>``)
            of the artifact it consumed.
        artifacts: Its output artifacts by output name (key ``<task>.<output>``).
    """

    name: str
    status: str
    start_time: str | None = None
    end_time: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, OutputArtifact] = field(default_factory=dict)


def artifact_digest(kind: str, uri: Path) -> str | None:
    """An output artifact's sha256 as recorded: adapters by config and weights, else all files.

    None when nothing is at ``uri``.
    """
    if kind in ADAPTER_KINDS:
        return adapter_sha256(uri)
    return sha256_tree(uri) if uri.exists() else None


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names a resource elsewhere (``https://``, ``gs://``), not a local path."""
    return "://" in uri


def data_key(param: str) -> str:
    """The artifact key of the data file a pipeline parameter names."""
    return f"data.{param}"


class RunRecorder:
    """Writes a run's tasks into the store: each artifact hashed once, each task until final.

    Called while the run goes on (tasks appear as they finish) and once at its end.
    """

    def __init__(
        self,
        store: MetadataStore,
        run_id: str,
        log_path: Path,
        data_files: dict[str, tuple[str, str]],
    ):
        """Record the run's data files as artifacts.

        Args:
            store: The metadata store.
            run_id: The run's id.
            log_path: The run's log, stored with each execution.
            data_files: Pipeline parameter → (file path, sha256) of each data file it names.
        """
        self.store, self.run_id, self.log_path = store, run_id, log_path
        self.ids: dict[str, int] = {}
        self.final: set[str] = set()
        for param, (path, digest) in data_files.items():
            self.ids[data_key(param)] = store.put_artifact(
                "data_file", str(Path(path).resolve()), digest, {"parameter": param}
            )

    def record(self, tasks: Iterable[TaskRecord]) -> dict[str, int]:
        """Write the tasks not yet written in a final state.

        Returns:
            Artifact ids by key (``task.output``, ``data.<param>``).
        """
        for task in tasks:
            if task.name in self.final:
                continue
            produced = {name: self._artifact(task, name, a) for name, a in task.artifacts.items()}
            consumed = {name: self.ids[key] for name, key in task.inputs.items() if key in self.ids}
            self.store.put_execution(
                self.run_id,
                task.name,
                task.parameters,
                task.status,
                task.start_time,
                task.end_time,
                str(self.log_path),
                consumed,
                produced,
            )
            if task.status in FINAL_STATUSES:
                self.final.add(task.name)
        return self.ids

    def _artifact(self, task: TaskRecord, name: str, artifact: OutputArtifact) -> int:
        key = f"{task.name}.{name}"
        if key not in self.ids:
            # A Vertex AI resource (google.VertexModel, ...) is kept by its URI, unhashed.
            remote = is_remote(artifact.uri)
            uri = artifact.uri if remote else str(Path(artifact.uri))
            digest = None if remote else artifact_digest(artifact.kind, Path(uri))
            self.ids[key] = self.store.put_artifact(
                artifact.kind,
                uri,
                digest,
                {**artifact.metadata, "run_id": self.run_id, "task": task.name},
            )
        return self.ids[key]
