"""The loss curve as a PNG and as a small HTML page (shown as an HTML artifact on Vertex)."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_loss_png(losses: list[float], eval_losses: list[list[float]], title: str) -> bytes:
    """Render the per-step loss, its moving average and the eval losses as PNG bytes."""
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    steps = range(1, len(losses) + 1)
    ax.plot(steps, losses, color="#9ab", linewidth=1, label="loss per step")
    window = max(1, len(losses) // 20)
    if window > 1:
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1])
            / len(losses[max(0, i - window + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, smooth, color="#1f5fa8", linewidth=2, label=f"mean of {window}")
    if eval_losses:
        ax.plot(
            [s for s, _ in eval_losses],
            [v for _, v in eval_losses],
            "o-",
            color="#d9531e",
            linewidth=1.5,
            label="eval loss",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def training_report_html(
    png: bytes, facts: dict[str, object], example: tuple[str, str] | None = None
) -> str:
    """A self-contained HTML page: loss curve, training facts, an example as the model sees it.

    Args:
        png: The loss curve.
        facts: Settings and results, shown as a table.
        example: The example's tokens decoded with special tokens kept: the part the model
            reads, and the part it is trained to write (marked).
    """
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    image = base64.b64encode(png).decode()
    shown = ""
    if example is not None:
        read, written = (html.escape(part) for part in example)
        shown = (
            "<h3>What the model sees (first training example)</h3>"
            "<p>Decoded from its token ids, special tokens kept; the loss is on the marked "
            f"part only.</p><pre class='example'>{read}<mark>{written}</mark></pre>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>adaptune training</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}th{text-align:left;padding-right:1em}"
        "pre.example{white-space:pre-wrap;background:#f6f6f6;padding:.8em}"
        "mark{background:#ffe08a}</style></head><body><h2>Training</h2>"
        f"<img alt='loss curve' src='data:image/png;base64,{image}'>"
        f"<table>{rows}</table>{shown}</body></html>"
    )
