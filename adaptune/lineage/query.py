"""Questions asked of the metadata store: a model's lineage, and how two runs differ."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from adaptune.errors import UserError
from adaptune.lineage.store import MetadataStore

SHORT_HASH = 12


def find_version(store: MetadataStore, model: str, version: int | None) -> int:
    """The artifact id of ``model@vN`` (the newest recorded version when N is None)."""
    found = [
        a
        for a in store.find_artifacts("registry_version", model=model)
        if type(a.properties.get("version")) is int  # a record edited by hand is not one
    ]
    if version is not None:
        found = [a for a in found if a.properties["version"] == version]
    if not found:
        which = f"{model}@v{version}" if version is not None else model
        raise UserError(f"no recorded registration of {which} in {store.path}")
    return max(found, key=lambda a: a.properties["version"]).id


def lineage(store: MetadataStore, artifact_id: int, depth: int = 0) -> dict[str, Any]:
    """The artifact and, recursively, the execution that produced it and that one's inputs."""
    artifact = store.artifact(artifact_id)
    node: dict[str, Any] = {
        "type": artifact.type,
        "uri": artifact.uri,
        "sha256": artifact.sha256,
        "properties": artifact.properties,
    }
    if artifact.problem:
        node["problem"] = artifact.problem
    producer = store.producer(artifact_id) if depth < 20 else None
    if producer:
        node["produced_by"] = {
            "task": producer["type"],
            "run_id": producer["run_id"],
            "status": producer["status"],
            "start_time": producer["start_time"],
            "end_time": producer["end_time"],
            "parameters": producer["parameters"],
            "inputs": {
                name: lineage(store, aid, depth + 1) for name, aid in producer["inputs"].items()
            },
        }
    return node


def _label(name: str, node: dict[str, Any]) -> str:
    digest = (node["sha256"] or "-")[:SHORT_HASH]
    extra = ""
    properties = node["properties"]
    if node["type"] == "registry_version":
        extra = f" {properties.get('model', '?')}@v{properties.get('version', '?')}"
    problem = f"  [red]{escape(node['problem'])}[/]" if node.get("problem") else ""
    label = f"({node['type']}{extra}) sha256 {digest}  {node['uri']}"
    return f"[bold]{escape(name)}[/] {escape(label)}{problem}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, dict | list) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def render_tree(
    node: dict[str, Any],
    name: str = "model",
    tree: Tree | None = None,
    shown: set[str] | None = None,
) -> Tree:
    """A rich Tree of a lineage dict, from the model down to the data files.

    An artifact reached a second time (the adapter feeds both evaluation and registration) is shown
    once, then referred to.
    """
    shown = set() if shown is None else shown
    branch = (tree.add if tree else Tree)(_label(name, node))
    key = f"{node['type']}:{node['uri']}"
    if key in shown:
        branch.label = f"{branch.label}  [dim](lineage shown above)[/]"
        return branch
    shown.add(key)
    producer = node.get("produced_by")
    if producer:
        params = ", ".join(
            f"{k}={_short(v)}"
            for k, v in sorted(producer["parameters"].items())
            if k not in ("pipeline_job_name",)
        )
        run = f"run {producer['run_id']} ({producer['status']})"
        task = branch.add(
            f"[cyan]{escape(str(producer['task']))}[/] {escape(run)}  [dim]{escape(params)}[/]"
        )
        for input_name, child in producer["inputs"].items():
            render_tree(child, input_name, task, shown)
    return branch


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to ``a.b`` keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Parameters, data hashes and metrics that differ between two run manifests."""

    def facts(m: dict[str, Any]) -> dict[str, Any]:
        return flatten(
            {
                "params": {k: v for k, v in m.get("params", {}).items() if k != "run_id"},
                "data": m.get("data_sha256") or {},
                "metrics": m.get("metrics") or {},
                "gate": {"passed": (m.get("gate") or {}).get("passed")},
                "adapter_sha256": m.get("adapter_sha256"),
            }
        )

    fa, fb = facts(a), facts(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
