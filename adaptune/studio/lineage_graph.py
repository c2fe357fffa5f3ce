"""A version's lineage as graph nodes: version → run → tasks and artifacts → data files.

Drawn from what ``adaptune lineage`` prints: the metadata store's chain
(``lineage.query.lineage``) or, when the store never recorded the registration, the version's
own record (``lineage.query.version_record``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from adaptune.studio.graphs import Node

SHORT_HASH = 12
PATH_CHARS = 30
MAX_MANIFEST_BYTES = 1 << 20


@dataclass
class LineageGraph:
    """Nodes and edges for ``graphs.svg``, and the data files listed beside the drawing.

    Attributes:
        nodes: The boxes.
        edges: (from, to) node ids.
        data_files: Each data file: ``path`` and ``sha256`` (full).
    """

    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    data_files: list[dict[str, str]] = field(default_factory=list)

    def add(self, node: Node, parent: str | None = None) -> str:
        """Add ``node`` once (by id) and an edge from ``parent``; its id."""
        if all(n.id != node.id for n in self.nodes):
            self.nodes.append(node)
        if parent is not None and (parent, node.id) not in self.edges:
            self.edges.append((parent, node.id))
        return node.id


def short_path(path: str) -> str:
    """The end of ``path`` (its file name kept), at most ``PATH_CHARS`` characters."""
    return path if len(path) <= PATH_CHARS else "…" + path[-(PATH_CHARS - 1) :]


def _digest(value: Any) -> str:
    return f"sha256 {str(value)[:SHORT_HASH]}" if value else "sha256 not recorded"


def _version_node(node: dict[str, Any]) -> Node:
    model = str(node["properties"].get("model", "?"))
    number = node["properties"].get("version", "?")
    return Node(
        "version",
        f"{model} v{number}",
        _digest(node.get("sha256")),
        state="version",
        href=f"/models/{quote(model)}",
        title=f"{model}@v{number} {node.get('uri', '')} sha256 {node.get('sha256') or '-'}",
    )


def _run_node(run_id: str, status: str) -> Node:
    return Node(
        f"run:{run_id}",
        f"run {run_id}",
        status,
        state="run",
        href=f"/runs/{quote(run_id)}" if run_id else None,
        title=f"run {run_id} ({status})",
    )


def _data_node(graph: LineageGraph, path: str, digest: str | None, parent: str) -> None:
    graph.add(
        Node(
            f"data:{path}",
            short_path(path),
            _digest(digest),
            state="data",
            title=f"{path} sha256 {digest or 'not recorded'}",
        ),
        parent,
    )
    if all(d["path"] != path for d in graph.data_files):
        graph.data_files.append({"path": path, "sha256": digest or ""})


def _artifact(graph: LineageGraph, name: str, node: dict[str, Any], parent: str) -> None:
    """An input artifact, and (recursively) the task that produced it."""
    if node["type"] == "data_file":
        _data_node(graph, str(node["uri"]), node.get("sha256"), parent)
        return
    node_id = graph.add(
        Node(
            f"artifact:{node['type']}:{node['uri']}",
            name if name == node["type"] else f"{name} ({node['type']})",
            _digest(node.get("sha256")),
            state="artifact",
            title=f"{node['type']} {node['uri']} sha256 {node.get('sha256') or '-'}",
        ),
        parent,
    )
    _producer(graph, node.get("produced_by"), node_id)


def _producer(graph: LineageGraph, producer: dict[str, Any] | None, parent: str) -> None:
    if not producer:
        return
    task_id = graph.add(
        Node(
            f"task:{producer['run_id']}:{producer['task']}",
            str(producer["task"]),
            str(producer["status"]),
            state="task",
        ),
        parent,
    )
    for input_name, child in producer["inputs"].items():
        _artifact(graph, str(input_name), child, task_id)


def recorded_graph(chain: dict[str, Any]) -> LineageGraph:
    """The metadata store's chain (``lineage``'s shape) as a graph."""
    graph = LineageGraph()
    version = graph.add(_version_node(chain))
    producer = chain.get("produced_by")
    if producer:
        run = graph.add(_run_node(str(producer["run_id"]), "recorded"), version)
        _producer(graph, producer, run)
    return graph


def manifest_data_hashes(runs_dir: Path, run_id: str) -> dict[str, str]:
    """Parameter → sha256 of each data file, from ``<runs_dir>/<run_id>/manifest.json``.

    Only a run directory inside ``runs_dir`` is read; {} when there is none or it is unreadable.
    """
    root = Path(runs_dir).resolve()
    path = (root / run_id / "manifest.json").resolve()
    if not run_id or root not in path.parents:
        return {}
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            return {}
        hashes = json.loads(path.read_text(encoding="utf-8")).get("data_sha256")
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in hashes.items() if v} if isinstance(hashes, dict) else {}


def record_graph(record: dict[str, Any], runs_dir: Path) -> LineageGraph:
    """The version's own record (``version_record``'s shape) as a graph.

    The data files are the run's parameters (``train_data``, ``eval_data``) with their sha256
    from the run's manifest when the runs directory holds it; the validated data's hash is the
    one the version recorded.
    """
    graph = LineageGraph()
    version = graph.add(_version_node(record))
    own = record.get("lineage") or {}
    run_id = str(own.get("run_id") or "")
    status = str((record.get("run") or {}).get("status") or "not in the runs store")
    run = graph.add(_run_node(run_id, status), version)
    files = own.get("adapter_files") or {}
    weights = files.get("adapter_model.safetensors") if isinstance(files, dict) else None
    adapter = graph.add(
        Node(
            "adapter",
            "adapter",
            _digest(weights),
            state="artifact",
            title=f"adapter files {json.dumps(files)}",
        ),
        run,
    )
    data = graph.add(
        Node(
            "validated",
            "validated data",
            _digest(own.get("data_sha256")),
            state="artifact",
            title=f"validated data sha256 {own.get('data_sha256') or '-'}",
        ),
        adapter,
    )
    params = record.get("params") or {}
    hashes = manifest_data_hashes(runs_dir, run_id)
    for param in ("train_data", "eval_data"):
        path = params.get(param) if isinstance(params, dict) else None
        if path:
            _data_node(graph, str(path), hashes.get(param), data)
    return graph
