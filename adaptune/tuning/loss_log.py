"""The training loss as it is logged, step by step: what the studio draws while tuning runs.

In a local run (``ADAPTUNE_RUN_DIR`` set by the runner) tune-adapter appends one JSON line per
optimizer step, ``{"step": N, "loss": X}``, to ``<run_dir>/training_loss.jsonl``. A resumed run
logs again from its checkpoint's step, so a reader keeps the last value of each step.
``training_history.json`` beside the adapter holds the whole history once tuning ended.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from adaptune.tuning.checkpoint_dirs import RUN_DIR_ENV

LOSS_LOG_FILE = "training_loss.jsonl"
MAX_READ_BYTES = 16 << 20
"""A loss log is read up to this size (a million steps or so); the rest is left unread."""


def loss_log_path() -> Path | None:
    """Where this local run's loss log goes; None outside a local run (no ``ADAPTUNE_RUN_DIR``)."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    return Path(run_dir) / LOSS_LOG_FILE if run_dir else None


def append_loss(path: Path, step: int, loss: float) -> None:
    """Append one step's loss as a JSON line (one ``write`` call: a reader sees whole lines)."""
    line = json.dumps({"step": step, "loss": loss if math.isfinite(loss) else None}) + "\n"
    with path.open("a", encoding="utf-8") as log:
        log.write(line)


def read_loss_log(path: Path) -> list[tuple[int, float]]:
    """``(step, loss)`` pairs in step order, the last value of each step; [] if there is none.

    A line that is not a whole ``{"step", "loss"}`` object (one being written, say) is skipped.
    """
    try:
        with path.open("rb") as log:
            raw = log.read(MAX_READ_BYTES)
    except OSError:
        return []
    losses: dict[int, float] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        step, loss = entry.get("step"), entry.get("loss")
        if type(step) is int and isinstance(loss, int | float) and math.isfinite(loss):
            losses[step] = float(loss)
    return sorted(losses.items())
