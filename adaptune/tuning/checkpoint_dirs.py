"""Where tune-adapter keeps its resumable checkpoints, and which ones it may resume from.

On Vertex AI (and whenever no local run is named) they go beside the adapter output, where a
retry of the same task finds them. A local run names its directory in ``ADAPTUNE_RUN_DIR``
(kfp.local gives each attempt a new output directory, so ``adaptune run --resume`` could not
find them beside the output): then they go under ``<run_dir>/checkpoints/tune-adapter/``.

Either way they sit in a subdirectory named by the sha256 of everything that decides the
training (the formatted data's bytes, the base model, the method, the training settings, the
seed), so a checkpoint made with other settings or data is never resumed from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adaptune.hashing import sha256_file, sha256_json

RUN_DIR_ENV = "ADAPTUNE_RUN_DIR"
"""Set by the local runner for the tasks of a run: the run's directory."""
CHECKPOINTS_SUBDIR = "checkpoints"
KEY_LENGTH = 16


def training_key(files: list[Path], settings: dict[str, Any]) -> str:
    """A short sha256 of the files' bytes (absent ones as None) and the settings."""
    digests = [sha256_file(f) if f.is_file() else None for f in files]
    return sha256_json({"files": digests, "settings": settings})[:KEY_LENGTH]


def checkpoint_dir(task: str, output: Path, key: str) -> Path:
    """The checkpoint directory of a task writing ``output``, for training ``key``."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir:
        return Path(run_dir) / CHECKPOINTS_SUBDIR / task / key
    return output.with_name(output.name + "-checkpoints") / key
