"""The validation report: what was read, what is wrong and where, and what the data looks like.

One structure renders three ways: Markdown (printed by the CLI and the step's log), HTML (the
step's HTML artifact, shown in the Vertex AI UI) and JSON metadata on the Dataset artifact.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from adaptune.data.problems import CATEGORIES, Problem

FIRST_PER_CATEGORY = 5
MAX_MESSAGE_LINES = 20
SAMPLE_CAP = 8192
MAX_LABELS = 20
TRACKED_LABELS = 50


class LengthSample:
    """A systematic sample of token lengths: every ``stride``-th example, at most ``SAMPLE_CAP``.

    Every example is kept until the cap; then every other one is dropped and the stride doubles,
    so the sample stays evenly spread over the data and its memory bounded.
    """

    def __init__(self) -> None:
        self.values: list[int] = []
        self.stride = 1

    def wants(self, ordinal: int) -> bool:
        """Whether the example with this 0-based ordinal belongs to the sample."""
        return ordinal % self.stride == 0

    def add(self, value: int) -> None:
        """Add the length of a sampled example."""
        self.values.append(value)

    def thin(self) -> None:
        """Halve the sample while it is over the cap."""
        while len(self.values) > SAMPLE_CAP:
            self.values = self.values[::2]
            self.stride *= 2

    def summary(self, maximum: int) -> dict[str, Any]:
        """p5, p50, p95 (nearest rank) of the sample, the largest count seen, the sample size."""
        values = sorted(self.values)

        def rank(q: float) -> int:
            return values[min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))]

        if not values:
            return {"p5": 0, "p50": 0, "p95": 0, "max": max(maximum, 0), "sampled": 0, "every": 1}
        return {
            "p5": rank(0.05),
            "p50": rank(0.50),
            "p95": rank(0.95),
            "max": max(maximum, values[-1]),
            "sampled": len(values),
            "every": self.stride,
        }


class LabelCounts:
    """Counts of distinct outputs, given up once there are too many to be labels."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = {}

    def add(self, output: str) -> None:
        """Count one output."""
        counts = self.counts
        if counts is None:
            return
        counts[output] = counts.get(output, 0) + 1
        if len(counts) > TRACKED_LABELS:
            self.counts = None

    def distribution(self) -> dict[str, int] | None:
        """Label counts, most frequent first, when the outputs look categorical; else None."""
        counts = self.counts
        if not counts or len(counts) > MAX_LABELS or sum(counts.values()) < 2 * len(counts):
            return None
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class ValidationReport:
    """Everything validation found.

    Attributes:
        settings: The data settings used.
        base_model: Whose tokenizer counted tokens.
        sources: Files read per split.
        formats: Format of each file (detected or given).
        records: Records (lines or rows) read per split.
        examples: Examples kept per split.
        invalid_records: Records with a problem (duplicates and overlaps count one each).
        dropped: Records dropped because ``max_invalid_fraction`` allowed it.
        problem_counts: Problems per category.
        first: The first problems of each category.
        fatal: Problems that fail the data whatever ``max_invalid_fraction`` says.
        failed_on_records: Whether invalid records exceed ``max_invalid_fraction``.
        truncations: Examples truncated per side (``input``, ``output``).
        truncated_first: The first truncations, as text.
        duplicates: Duplicate examples per split.
        max_tokens: The largest token count seen per side.
        max_exact: Per side, whether ``max_tokens`` is exact; False when it is a lower bound
            (a text counted only until it was over its limit).
        lengths: Token-length percentiles per side.
        labels: Output label counts.
        passed: Whether the data passes.
        data_sha256: sha256 of the written examples (when written).
        prompt_format: ``template`` or ``chat``: how token limits counted the input and output
            (chat: the rendered template, special tokens included).
        rendered_example: The first training example as the chat template renders it: what
            the model reads and what it is trained to write.
    """

    settings: dict[str, Any] = field(default_factory=dict)
    base_model: str = ""
    sources: dict[str, list[str]] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    invalid_records: int = 0
    dropped: int = 0
    problem_counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, list[Problem]] = field(default_factory=dict)
    fatal: list[Problem] = field(default_factory=list)
    failed_on_records: bool = False
    truncations: dict[str, int] = field(default_factory=lambda: {"input": 0, "output": 0})
    truncated_first: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    max_tokens: dict[str, int] = field(default_factory=lambda: {"input": 0, "output": 0})
    max_exact: dict[str, bool] = field(default_factory=lambda: {"input": True, "output": True})
    lengths: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: LabelCounts = field(default_factory=LabelCounts)
    passed: bool = False
    data_sha256: str | None = None
    prompt_format: str = "template"
    rendered_example: tuple[str, str] | None = None

    def add_problem(self, problem: Problem) -> None:
        """Count a problem; keep it when it is among the first of its category."""
        self.problem_counts[problem.category] = self.problem_counts.get(problem.category, 0) + 1
        first = self.first.setdefault(problem.category, [])
        if len(first) < FIRST_PER_CATEGORY:
            first.append(problem)

    def note_max(self, side: str, tokens: int, exact: bool = True) -> None:
        """Note a token count of ``side`` (``input`` or ``output``); a lower bound if not exact."""
        if tokens > self.max_tokens[side] or (tokens == self.max_tokens[side] and not exact):
            self.max_tokens[side] = tokens
            self.max_exact[side] = exact

    def add_truncation(
        self, side: str, path: str, line: int, tokens: int, limit: int, exact: bool = True
    ) -> None:
        """Count a truncation; keep it when it is among the first.

        ``tokens`` is the side's count before the cut, or a lower bound of it (``exact`` False).
        """
        self.truncations[side] += 1
        if len(self.truncated_first) < 2 * FIRST_PER_CATEGORY:
            had = str(tokens) if exact else f"at least {tokens}"
            self.truncated_first.append(f"{path}:{line}: {side} {had} → {limit} tokens")

    def first_problems(self) -> list[Problem]:
        """Fatal problems, then the first problems of each category in category order."""
        listed = list(self.fatal)
        for category in CATEGORIES:
            listed.extend(q for q in self.first.get(category, []) if q not in listed)
        return listed

    def failure_message(self) -> str:
        """A short message for a failed step: the first problems with file, line and category."""
        listed = self.first_problems()
        lines = [str(q) for q in listed[:MAX_MESSAGE_LINES]]
        total = sum(self.problem_counts.values())
        if total > len(lines):
            lines.append(f"... and {total - len(lines)} more problems (see the report)")
        counts = ", ".join(f"{c}: {n}" for c, n in sorted(self.problem_counts.items()))
        return "dataset validation failed:\n  " + "\n  ".join(lines) + f"\n  counts: {counts}"

    # Rendering ------------------------------------------------------------------------
    def blocks(self) -> list[tuple[Any, ...]]:
        """The report as blocks (heading, paragraph, table, list) both renderers walk."""
        status = "PASSED" if self.passed else "FAILED"
        out: list[tuple[Any, ...]] = [("h1", f"Data validation: {status}")]
        total = sum(self.records.values())
        dropped = " (dropped, each listed in dropped.jsonl)" if self.passed and self.dropped else ""
        out.append(
            (
                "p",
                f"Base model tokenizer: {self.base_model}. Records read: {total}; invalid: "
                f"{self.invalid_records}{dropped}.",
            )
        )
        out.append(
            (
                "table",
                ["split", "files", "records", "examples", "duplicates"],
                [
                    [
                        split,
                        ", ".join(
                            f"{f} ({self.formats.get(f, '?')})" for f in self.sources.get(split, [])
                        ),
                        self.records.get(split, 0),
                        self.examples.get(split, 0),
                        self.duplicates.get(split, 0),
                    ]
                    for split in self.records
                ],
            )
        )
        if self.problem_counts:
            out.append(("h2", "Problems"))
            out.append(
                (
                    "table",
                    ["category", "count"],
                    [[c, self.problem_counts[c]] for c in CATEGORIES if c in self.problem_counts],
                )
            )
            for category in CATEGORIES:
                if category in self.first:
                    out.append(("h3", category))
                    out.append(("list", [str(q) for q in self.first[category]]))
        if self.lengths and self.lengths.get("input", {}).get("sampled"):
            out.append(("h2", "Token lengths"))
            sample = self.lengths.get("input", {})
            if sample.get("every", 1) > 1:
                note = (
                    f"Percentiles from a sample of every {sample['every']}th example "
                    f"({sample['sampled']} examples); max is the largest count seen (the sample, "
                    "the longest text and every text that could be over a limit). Limits were "
                    "checked on every example."
                )
            else:
                note = "Exact, over every example."
            out.append(("p", note))
            out.append(
                (
                    "table",
                    ["side", "p5", "p50", "p95", "max", "limit"],
                    [
                        [
                            side,
                            s["p5"],
                            s["p50"],
                            s["p95"],
                            s["max"] if s.get("max_exact", True) else f"at least {s['max']}",
                            self.settings.get(f"max_{side}_tokens"),
                        ]
                        for side, s in self.lengths.items()
                    ],
                )
            )
        if any(self.truncations.values()):
            out.append(("h2", "Truncations"))
            out.append(
                ("p", f"input: {self.truncations['input']}, output: {self.truncations['output']}")
            )
            out.append(("list", list(self.truncated_first)))
        if self.rendered_example is not None:
            out.append(("h2", "What the model sees"))
            out.append(
                (
                    "p",
                    "The first training example, rendered with the base model's chat template "
                    "(token limits count it so, special tokens included); tuning trains on the "
                    "second part only.",
                )
            )
            out.append(("list", [f"prompt: {self.rendered_example[0]}"]))
            out.append(("list", [f"trained: {self.rendered_example[1]}"]))
        labels = self.labels.distribution()
        if labels:
            out.append(("h2", "Output labels"))
            out.append(("table", ["label", "examples"], [[k, v] for k, v in labels.items()]))
        return out

    def to_markdown(self) -> str:
        """The report as Markdown."""
        lines: list[str] = []
        for block in self.blocks():
            kind = block[0]
            if kind in ("h1", "h2", "h3"):
                lines += ["#" * int(kind[1]) + " " + block[1], ""]
            elif kind == "p":
                lines += [block[1], ""]
            elif kind == "list":
                lines += [f"- `{item}`" for item in block[1]] + [""]
            elif kind == "table":
                header, rows = block[1], block[2]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
                lines.append("")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The report as one self-contained HTML page."""
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>Data validation</title>",
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
            "code{white-space:pre-wrap}</style></head><body>",
        ]
        for block in self.blocks():
            kind = block[0]
            if kind in ("h1", "h2", "h3"):
                parts.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(block[1])}</p>")
            elif kind == "list":
                items = "".join(f"<li><code>{html.escape(i)}</code></li>" for i in block[1])
                parts.append(f"<ul>{items}</ul>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
                rows = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                    for row in block[2]
                )
                parts.append(f"<table><tr>{head}</tr>{rows}</table>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def to_metadata(self) -> dict[str, Any]:
        """The same facts as a JSON-able dict, for the Dataset artifact's metadata."""
        return {
            "passed": self.passed,
            "base_model": self.base_model,
            "prompt_format": self.prompt_format,
            "formats": dict(self.formats),
            "records": dict(self.records),
            "examples": dict(self.examples),
            "invalid_records": self.invalid_records,
            "dropped": self.dropped if self.passed else 0,
            "problem_counts": dict(self.problem_counts),
            "first_problems": {c: [str(q) for q in qs] for c, qs in self.first.items()},
            "token_lengths": self.lengths,
            "truncations": dict(self.truncations),
            "duplicates": dict(self.duplicates),
            "labels": self.labels.distribution(),
            "data_sha256": self.data_sha256,
        }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
