"""Resumable training checkpoints, written atomically.

A checkpoint is a directory ``checkpoint-<step>/`` holding the trainable tensors
(``trainable.safetensors``), the best tensors so far (``best.safetensors``), the optimizer,
scheduler, RNG and data-order states (``states.pt``) and the loop's counters (``loop.json``).
It is assembled under a temporary name and renamed into place, so a directory with the final
name is always complete; the newest one is where a rerun resumes.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from adaptune.atomic import staged_directory

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d{8})$")
KEEP = 2


@dataclass
class LoopState:
    """Counters and history of the training loop (everything but tensors and RNG).

    Attributes:
        step: Optimizer steps done.
        losses: Training loss per step.
        eval_losses: ``[step, eval loss]`` pairs.
        best_eval: Lowest eval loss so far.
        best_step: Step of the lowest eval loss.
        bad_evals: Evaluations in a row without improvement.
        tokens: Real (non-padding) tokens processed.
        target_tokens: Tokens the loss was computed on.
        wall_seconds: Training time, summed over resumed attempts.
        stopped_early: Whether early stopping ended the run.
        resumed_from: Steps done when the last attempt resumed (0 for none).
    """

    step: int = 0
    losses: list[float] = field(default_factory=list)
    eval_losses: list[list[float]] = field(default_factory=list)
    best_eval: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    tokens: int = 0
    target_tokens: int = 0
    wall_seconds: float = 0.0
    stopped_early: bool = False
    resumed_from: int = 0


def rng_states() -> dict[str, Any]:
    """Every random generator the loop draws from."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore generators saved by :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    if not root.is_dir():
        return None
    found = sorted(p for p in root.iterdir() if CHECKPOINT_PATTERN.match(p.name) and p.is_dir())
    return found[-1] if found else None


def save_checkpoint(
    root: Path,
    state: LoopState,
    trainable: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor] | None,
    states: dict[str, Any],
) -> Path:
    """Write ``checkpoint-<step>`` atomically and keep only the newest ``KEEP``.

    Args:
        root: Checkpoint directory of this training run.
        state: Loop counters and history.
        trainable: Trainable tensors by parameter name.
        best: Tensors of the best evaluation so far, if any.
        states: Optimizer, scheduler, RNG and data-order states (saved with ``torch.save``).

    Returns:
        The checkpoint directory.
    """
    final = root / f"checkpoint-{state.step:08d}"
    with staged_directory(final) as staging:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in trainable.items()},
            staging / "trainable.safetensors",
        )
        if best is not None:
            save_file(best, staging / "best.safetensors")
        torch.save(states, staging / "states.pt")
        (staging / "loop.json").write_text(json.dumps(asdict(state)), encoding="utf-8")
    for old in sorted(p for p in root.iterdir() if CHECKPOINT_PATTERN.match(p.name))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: Path,
) -> tuple[LoopState, dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    state = LoopState(**json.loads((path / "loop.json").read_text(encoding="utf-8")))
    trainable = load_file(path / "trainable.safetensors")
    best_file = path / "best.safetensors"
    best = load_file(best_file) if best_file.is_file() else None
    states = torch.load(path / "states.pt", weights_only=False)
    return state, trainable, best, states
