"""Questions asked of the metadata store: a model's lineage, and how two runs differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from adaptune.errors import UserError
from adaptune.lineage.store import MetadataStore
from adaptune.registry.version_lineage import LINEAGE_KEYS, PARAMS_FILE, find_run_params

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


MISSING_RECORDS = (
    "the run's task records are missing from the metadata store (its runner stopped before "
    "recording them): shown from the version's own record"
)


def _run_params(run: dict[str, Any] | None, run_id: str) -> tuple[Any, str | None]:
    """The run's parameters from ``params.yaml`` in the run directory the store recorded."""
    run_dir = (run or {}).get("run_dir")
    if not run_dir:
        return None, None
    return find_run_params(Path(run_dir) / PARAMS_FILE, run_id)


def version_record(
    store: MetadataStore, registry_dir: Path, model: str, version: int | None
) -> dict[str, Any]:
    """A version's lineage from its own ``lineage.json`` (else ``version.json``).

    For when the store never recorded its registration (the runner was killed after the commit).

    The run's parameters come from the record, else from ``params.yaml`` in the run directory
    the store's run record names (written when the run started).

    Raises:
        UserError: If the version does not exist or its records are unreadable.
    """
    from adaptune.hashing import adapter_sha256
    from adaptune.registry import read_version_lineage, resolve_version

    registered = resolve_version(registry_dir, model, "latest" if version is None else str(version))
    try:
        own = read_version_lineage(registered.path)
    except ValueError as exc:
        raise UserError(f"{registered.ref} is broken: {exc}") from None
    source = "lineage.json"
    if own is None:  # registered before versions carried lineage.json
        source = "version.json"
        own = {k: v for k, v in registered.metadata.items() if k != "files"}
    run_id = str(own.get("run_id") or "")
    run = store.run(run_id) if run_id else None
    params, params_file = own.get("params"), own.get("params_file")
    if params is None:
        params, params_file = _run_params(run, run_id)
    try:
        digest: str | None = adapter_sha256(registered.path)
    except OSError:
        digest = None
    return {
        "type": "registry_version",
        "uri": str(registered.path),
        "sha256": digest,
        "properties": {"model": model, "version": registered.version},
        "recorded_by": f"{registered.path / source}",
        "note": MISSING_RECORDS,
        "lineage": own,
        "run": {k: run.get(k) for k in ("run_id", "status", "start_time", "end_time", "run_dir")}
        if run
        else None,
        "params": params,
        "params_file": params_file,
    }


def version_lineage(
    store: MetadataStore, registry_dir: Path, model_ref: str
) -> tuple[dict[str, Any], bool]:
    """What ``adaptune lineage MODEL_REF`` shows: the store's chain, else the version's record.

    Args:
        store: The runs' metadata store.
        registry_dir: The registry (``NAME@production`` and a version the store never
            recorded are looked up there).
        model_ref: ``NAME`` (the newest version), ``NAME@vN`` or ``NAME@<alias>``.

    Returns:
        The chain and whether it came from the store (``lineage``'s shape: the version, the
        task that produced it and, recursively, its inputs down to the data files) or from the
        version's own record (``version_record``'s shape).

    Raises:
        UserError: If the reference is malformed or names no recorded or registered version.
    """
    from adaptune.registry import list_models, parse_model_ref, resolve_version
    from adaptune.registry.refs import version_number

    name, ref = parse_model_ref(model_ref)
    in_registry = name in list_models(registry_dir)
    version = None if ref is None else version_number(ref)
    if (ref is not None and version is None) or (ref is None and in_registry):
        version = resolve_version(registry_dir, name, ref or "latest").version
    try:
        return lineage(store, find_version(store, name, version)), True
    except UserError:
        if not in_registry:
            raise
        return version_record(store, registry_dir, name, version), False


def render_version_record(node: dict[str, Any], name: str) -> Tree:
    """A rich Tree of ``version_record``'s answer: the facts the version carries."""
    tree = Tree(_label(name, node))
    tree.add(f"[yellow]{escape(node['note'])}[/] ({escape(node['recorded_by'])})")
    own = node["lineage"]
    for key in (*LINEAGE_KEYS, "adapter_files"):
        if own.get(key) not in (None, "", {}):
            tree.add(f"{key}: [dim]{escape(_short(own[key]))}[/]")
    run = node["run"]
    if run:
        status = escape(str(run["status"]))
        tree.add(f"run {escape(str(run['run_id']))} ({status}) in {run['run_dir']}")
    params = node["params"]
    if params:
        branch = tree.add(f"params ({escape(str(node['params_file']))})")
        for key, value in sorted(params.items()):
            branch.add(f"{escape(str(key))}={escape(_short(value))}")
    else:
        tree.add("params: [dim]not found (no params.yaml for the run)[/]")
    return tree


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
