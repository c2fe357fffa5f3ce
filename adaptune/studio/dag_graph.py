"""The run's DAG as a picture: one box per task of ``dag.TASKS``, its state and time inside.

The edges come from the compiled pipeline: a task's ``dependentTasks``, and for a task inside a
``dsl.If`` group with no dependency in it, its group's. Edges implied by longer paths are left
out (validate-dataset → tune-adapter is drawn as validate → format → tune), so the picture
shows the order the tasks run in.
"""

from __future__ import annotations

from typing import Any

from adaptune.runner.dag import TASKS
from adaptune.runner.progress import TaskProgress
from adaptune.studio.graphs import Node, svg

LABEL = "Pipeline tasks"


def task_edges(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """``(upstream, downstream)`` task pairs of the compiled pipeline, implied ones left out."""
    components = spec.get("components", {})
    leaves_of: dict[str, list[str]] = {}
    edges: set[tuple[str, str]] = set()

    def leaves(name: str, tasks: dict[str, Any]) -> list[str]:
        component = components.get(tasks[name]["componentRef"]["name"], {})
        if "dag" not in component:
            return [name]
        inner = component["dag"]["tasks"]
        return [leaf for child in inner for leaf in leaves(child, inner)]

    def walk(tasks: dict[str, Any], inherited: list[str]) -> None:
        for name, task in tasks.items():
            deps = [d for d in task.get("dependentTasks", []) if d in tasks]
            upstream = [leaf for d in deps for leaf in leaves_of.setdefault(d, leaves(d, tasks))]
            component = components.get(task["componentRef"]["name"], {})
            if "dag" in component:
                walk(component["dag"]["tasks"], upstream or inherited)
            else:
                edges.update((source, name) for source in (upstream or inherited))

    walk(spec.get("root", {}).get("dag", {}).get("tasks", {}), [])
    return _reduced(edges)


def _reduced(edges: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The edges not implied by a longer path (the transitive reduction of a DAG)."""
    after: dict[str, set[str]] = {}
    for source, target in edges:
        after.setdefault(source, set()).add(target)

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [t for t in after.get(start, ()) if (start, t) != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(after.get(node, ()))
        return seen

    return sorted(e for e in edges if e[1] not in reachable(e[0], e))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def dag_svg(tasks: list[TaskProgress], edges: list[tuple[str, str]]) -> str:
    """The DAG drawn with each task's state and time (``graphs.svg``, labels escaped)."""
    by_name = {t.name: t for t in tasks}
    nodes = []
    for task in TASKS:
        progress = by_name.get(task.name) or TaskProgress(task.name, "pending")
        time = _duration(progress.seconds)
        detail = f"{progress.state} · {time}" if time else progress.state
        title = " ".join(p for p in (task.name, detail, progress.line) if p)
        nodes.append(
            Node(task.name, task.name, detail, progress.state, f"#task-{task.name}", title)
        )
    return svg(nodes, edges, LABEL)
