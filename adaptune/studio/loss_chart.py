"""The training loss as an SVG polyline's coordinates (the template draws and escapes it)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
HEIGHT = 220
MARGIN_LEFT = 52
MARGIN_RIGHT = 12
MARGIN_TOP = 12
MARGIN_BOTTOM = 30
MAX_POINTS = 600
"""A longer history is thinned to about this many points (the last one always kept)."""


@dataclass(frozen=True)
class LossChart:
    """A loss curve, laid out.

    Attributes:
        points: The polyline's ``points`` attribute (``x,y`` pairs).
        steps: How many steps were logged.
        first_step, last_step: The x axis' ends.
        low, high: The y axis' ends (lowest and highest loss).
        last_loss: The last step's loss.
        width, height: The drawing's size; the plot area is inside the margins.
    """

    points: str
    steps: int
    first_step: int
    last_step: int
    low: float
    high: float
    last_loss: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = MARGIN_LEFT
    right: int = WIDTH - MARGIN_RIGHT
    top: int = MARGIN_TOP
    bottom: int = HEIGHT - MARGIN_BOTTOM


def loss_chart(losses: list[tuple[int, float]]) -> LossChart | None:
    """The chart of ``(step, loss)`` pairs in step order; None when there are none."""
    if not losses:
        return None
    stride = max(1, len(losses) // MAX_POINTS)
    shown = losses[::stride]
    if shown[-1] != losses[-1]:
        shown.append(losses[-1])
    first, last = losses[0][0], losses[-1][0]
    low = min(v for _, v in losses)
    high = max(v for _, v in losses)
    chart = LossChart("", len(losses), first, last, low, high, losses[-1][1])
    span_x = max(1, last - first)
    span_y = (high - low) or 1.0

    def xy(step: int, value: float) -> str:
        x = chart.left + (step - first) / span_x * (chart.right - chart.left)
        y = chart.bottom - (value - low) / span_y * (chart.bottom - chart.top)
        return f"{x:.1f},{y:.1f}"

    return LossChart(
        " ".join(xy(s, v) for s, v in shown),
        len(losses),
        first,
        last,
        low,
        high,
        losses[-1][1],
    )
