"""Directed graphs drawn as SVG: the run's DAG and a version's lineage.

A small layered layout (a node's column is the longest path to it from a node with no
inputs; nodes keep their given order within a column) is all these graphs need: tens of
nodes at most. Every label is escaped; a node's ``state`` becomes its CSS class
(``node-<state>``) and is written beside its label, so the picture does not rely on colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

NODE_WIDTH = 210
NODE_HEIGHT = 54
COLUMN_GAP = 60
ROW_GAP = 22
MARGIN = 12
LABEL_CHARS = 30


@dataclass(frozen=True)
class Node:
    """A box in the graph.

    Attributes:
        id: Unique within the graph (edges name it).
        label: The first line (bold).
        detail: The second line (state, time, a sha256...).
        state: CSS class suffix (``node-<state>``), e.g. a task's state or an artifact kind.
        href: Where a click on the box goes (None: nowhere).
        title: Tooltip, the whole text when the lines are cut.
    """

    id: str
    label: str
    detail: str = ""
    state: str = "plain"
    href: str | None = None
    title: str = ""


def _cut(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def columns(nodes: list[Node], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's column: the longest path to it (edges to unknown nodes are ignored)."""
    known = {n.id for n in nodes}
    into: dict[str, list[str]] = {n.id: [] for n in nodes}
    for source, target in edges:
        if source in known and target in known and source != target:
            into[target].append(source)
    column: dict[str, int] = {}

    def depth(node: str, seen: frozenset[str]) -> int:
        if node in column:
            return column[node]
        if node in seen:  # a cycle: break it here
            return 0
        value = max((depth(s, seen | {node}) + 1 for s in into[node]), default=0)
        column[node] = value
        return value

    for n in nodes:
        depth(n.id, frozenset())
    return column


def svg(nodes: list[Node], edges: list[tuple[str, str]], label: str) -> str:
    """The graph as an inline ``<svg>`` element (role ``img``, ``label`` as its name)."""
    column = columns(nodes, edges)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for n in nodes:
        c = column[n.id]
        place[n.id] = (
            MARGIN + c * (NODE_WIDTH + COLUMN_GAP),
            MARGIN + rows.get(c, 0) * (NODE_HEIGHT + ROW_GAP),
        )
        rows[c] = rows.get(c, 0) + 1
    width = MARGIN * 2 + (max(column.values(), default=0) + 1) * (NODE_WIDTH + COLUMN_GAP)
    height = MARGIN * 2 + max(rows.values(), default=1) * (NODE_HEIGHT + ROW_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
        f'width="{width - COLUMN_GAP}" height="{height - ROW_GAP}" '
        f'viewBox="0 0 {width - COLUMN_GAP} {height - ROW_GAP}" class="graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a6"/>'
        "</marker></defs>",
    ]
    for source, target in edges:
        if source not in place or target not in place:
            continue
        (x1, y1), (x2, y2) = place[source], place[target]
        x1, y1 = x1 + NODE_WIDTH, y1 + NODE_HEIGHT // 2
        y2 += NODE_HEIGHT // 2
        bend = (x2 - x1) / 2
        parts.append(
            f'<path d="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}" fill="none" '
            'stroke="#8a94a6" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for n in nodes:
        x, y = place[n.id]
        box = (
            f'<g class="node node-{escape(n.state.replace(" ", "-"))}" data-node="{escape(n.id)}">'
            f"<title>{escape(n.title or f'{n.label} {n.detail}'.strip())}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="{x + 10}" y="{y + 21}" font-weight="600">{escape(_cut(n.label))}</text>'
            f'<text x="{x + 10}" y="{y + 40}">{escape(_cut(n.detail, LABEL_CHARS + 4))}</text>'
            "</g>"
        )
        if n.href:
            box = f'<a href="{escape(n.href)}">{box}</a>'
        parts.append(box)
    parts.append("</svg>")
    return "".join(parts)
