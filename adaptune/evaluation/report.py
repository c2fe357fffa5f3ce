"""The evaluation report: the metrics of every model, and the examples where they differ most.

Written as one self-contained HTML page (no scripts, styles or images from elsewhere; every
text escaped) and as Markdown for logs.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from adaptune.evaluation.loss import LOSS_METRICS
from adaptune.evaluation.metrics import METRICS, normalise, sentence_chrf

STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:110em}"
    "table{border-collapse:collapse;margin-bottom:1em}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "table.example{width:100%;table-layout:fixed}"
    "pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:.9em}"
    ".best{font-weight:bold}.muted{color:#666}"
)


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


@dataclass
class Comparison:
    """The answers of several models to the same eval examples, and their scores.

    Attributes:
        prompts: The eval prompts.
        references: The expected answers, one per prompt.
        outputs: Model name to its answers, one per prompt, in the order models are shown.
        scores: Model name to metric name to value (text metrics and loss metrics).
        facts: What was compared and how (base model, adapters, settings), shown first.
    """

    prompts: list[str]
    references: list[str]
    outputs: dict[str, list[str]]
    scores: dict[str, dict[str, float]]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """The compared models' names."""
        return list(self.outputs)

    @cached_property
    def example_chrf(self) -> dict[str, list[float]]:
        """Model name to the chrF / 100 of each of its answers."""
        return {m: sentence_chrf(answers, self.references) for m, answers in self.outputs.items()}

    def spread(self, index: int) -> float:
        """How differently the models score on one example: highest minus lowest chrF."""
        values = [self.example_chrf[m][index] for m in self.models]
        return max(values) - min(values)

    def most_different(self, count: int) -> list[int]:
        """Up to ``count`` examples whose answers differ, most different first.

        Ranked by :meth:`spread`, then by how many distinct answers the models gave, then by
        position in the eval set. Examples where every model gave the same answer are left out.
        """
        distinct = [
            len({normalise(answers[i]) for answers in self.outputs.values()})
            for i in range(len(self.prompts))
        ]
        differing = [i for i in range(len(self.prompts)) if distinct[i] > 1]
        differing.sort(key=lambda i: (-self.spread(i), -distinct[i], i))
        return differing[:count]

    def prediction_rows(self) -> Iterator[dict[str, str]]:
        """One dict per example: ``prompt``, ``reference`` and each model's answer."""
        for i, (prompt, reference) in enumerate(zip(self.prompts, self.references, strict=True)):
            yield {
                "prompt": prompt,
                "reference": reference,
                **{m: answers[i] for m, answers in self.outputs.items()},
            }

    def _metric_rows(self) -> Iterator[tuple[str, list[str], str | None]]:
        """Per metric: its name, one formatted value per model, and the best model's name."""
        for metric in (*METRICS, *LOSS_METRICS):
            values = {m: self.scores[m][metric] for m in self.models if metric in self.scores[m]}
            if not values:
                continue
            pick = min if metric in LOSS_METRICS else max
            best_value = pick(values.values())
            winners = [m for m, v in values.items() if v == best_value]
            best = winners[0] if len(winners) == 1 else None
            yield metric, [_number(values[m]) if m in values else "" for m in self.models], best

    def to_html(self, examples: int) -> str:
        """The report as one self-contained HTML page.

        Args:
            examples: How many of the most different examples to show.
        """
        esc = html.escape
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>adaptune evaluation</title><style>{STYLE}</style></head><body>",
            "<h1>Evaluation</h1>",
        ]
        if self.facts:
            parts.append("<table>")
            parts += (
                f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>"
                for k, v in self.facts.items()
            )
            parts.append("</table>")
        header = "".join(f"<th>{esc(m)}</th>" for m in self.models)
        parts.append(
            f"<h2>Metrics on {len(self.prompts)} examples</h2>"
            f"<table><tr><th>metric</th>{header}</tr>"
        )
        for metric, values, best in self._metric_rows():
            cells = "".join(
                f"<td class='num{' best' if m == best else ''}'>{esc(v)}</td>"
                for m, v in zip(self.models, values, strict=True)
            )
            parts.append(f"<tr><th>{esc(metric)}</th>{cells}</tr>")
        parts.append(
            "</table><p class='muted'>Text metrics are in [0, 1], higher is better; eval loss "
            "(mean per target token, teacher-forced) and perplexity: lower is better. Bold: the "
            "best model on that row.</p>"
        )
        shown = self.most_different(examples)
        parts.append(f"<h2>The {len(shown)} examples where the models differ most</h2>")
        parts.append(
            "<p class='muted'>Ranked by the spread of the models' per-example chrF "
            "(highest minus lowest).</p>"
            if shown
            else "<p>Every model gave the same answer to every example.</p>"
        )
        columns = ["prompt", "reference", *self.models]
        for i in shown:
            texts = [
                self.prompts[i],
                self.references[i],
                *(self.outputs[m][i] for m in self.models),
            ]
            chrf = ["", ""] + [_number(self.example_chrf[m][i]) for m in self.models]
            parts.append(
                f"<h3>Example {i + 1} <span class='muted'>(chrF spread "
                f"{_number(self.spread(i))})</span></h3><table class='example'><tr>"
                + "".join(f"<th>{esc(c)}</th>" for c in columns)
                + "</tr><tr>"
                + "".join(f"<td><pre>{esc(t)}</pre></td>" for t in texts)
                + "</tr><tr>"
                + "".join(f"<td class='num muted'>{f'chrF {c}' if c else ''}</td>" for c in chrf)
                + "</tr></table>"
            )
        parts.append("</body></html>")
        return "".join(parts)

    def to_markdown(self, examples: int) -> str:
        """The report as Markdown: facts, the metrics table, the most different examples.

        Args:
            examples: How many of the most different examples to show.
        """
        lines = ["# Evaluation", ""]
        lines += [f"- {k}: {v}" for k, v in self.facts.items()]
        lines += [
            "",
            f"## Metrics on {len(self.prompts)} examples",
            "",
            "| metric | " + " | ".join(self.models) + " |",
            "|---|" + "---:|" * len(self.models),
        ]
        for metric, values, best in self._metric_rows():
            cells = [
                f"**{v}**" if m == best else v for m, v in zip(self.models, values, strict=True)
            ]
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        shown = self.most_different(examples)
        lines += ["", f"## The {len(shown)} examples where the models differ most", ""]
        for i in shown:
            lines += [f"### Example {i + 1} (chrF spread {_number(self.spread(i))})", ""]
            named = [("prompt", self.prompts[i]), ("reference", self.references[i])]
            named += [
                (f"{m} (chrF {_number(self.example_chrf[m][i])})", self.outputs[m][i])
                for m in self.models
            ]
            for name, text in named:
                fence = "`" * max(3, max(map(len, re.findall("`+", text)), default=0) + 1)
                lines += [f"{name}:", "", fence, text, fence, ""]
        return "\n".join(lines).rstrip() + "\n"
