"""Tuning on CPU hands freed large blocks back to the system (glibc's fixed mmap threshold)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from adaptune.compute.host_memory import LARGE_BLOCK_BYTES, return_large_blocks

REPO = Path(__file__).resolve().parents[1]
GLIBC = platform.libc_ver()[0] == "glibc"

# After a 20 MiB block is freed, glibc's default threshold rises past 19 MiB, so a 19 MiB block
# then comes from the heap, and a small block allocated above it keeps it there once freed.
RETAINED = """
import re
import torch


def anon():
    status = open("/proc/self/status").read()
    return int(re.search(r"RssAnon:\\s+(\\d+)", status).group(1)) / 1024


first = torch.ones(20 * 2**18)
del first
before = anon()
block = torch.ones(19 * 2**18)
pinned = torch.ones(1000)
del block
print(anon() - before)
"""


def _retained_mib(prelude: str, env: dict[str, str] | None = None) -> float:
    """MiB a freed 19 MiB block leaves in a fresh process after ``prelude`` ran."""
    out = subprocess.run(
        [sys.executable, "-c", prelude + RETAINED],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the threshold is glibc's malloc's")
def test_a_freed_large_block_goes_back_to_the_system_once_the_threshold_is_fixed():
    assert LARGE_BLOCK_BYTES < 19 * 2**20
    assert _retained_mib("") > 15  # glibc's default: kept in the heap
    fixed = "from adaptune.compute.host_memory import return_large_blocks\n"
    fixed += "assert return_large_blocks()\n"
    assert _retained_mib(fixed) < 2


@pytest.mark.skipif(not GLIBC, reason="the threshold is glibc's malloc's")
def test_tuning_on_cpu_fixes_the_threshold_for_the_rest_of_its_process(tmp_path):
    rows = [{"prompt": f"Order {i} is late.\n", "target": f"Sorry about {i}."} for i in range(4)]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    training = {"steps": 1, "batch_size": 2, "eval_every": 0, "checkpoint_every": 0}
    args = ["--train", str(train_file), "--out", str(tmp_path / "adapter"), "--quiet"]
    args += ["--base-model", "builtin:tiny-gpt2", "--adapter", '{"method": "lora", "r": 4}']
    args += ["--training", json.dumps(training)]
    tune = "import torch\nfrom adaptune.tuning.__main__ import main\n"
    tune += f"torch.set_num_threads(1)\nassert main({args!r}) == 0\n"
    assert _retained_mib(tune, {"CUDA_VISIBLE_DEVICES": ""}) < 2
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_a_threshold_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(64 * 2**20))
    assert return_large_blocks() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=67108864")
    assert return_large_blocks() is False
