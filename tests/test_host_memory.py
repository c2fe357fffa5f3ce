"""Tuning on CPU hands freed memory back to the system: glibc's fixed mmap threshold for large
blocks, and heap trimming while activations are checkpointed."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from adaptune.compute.host_memory import (
    LARGE_BLOCK_BYTES,
    TRIM_THREAD,
    return_large_blocks,
    trimming_heap,
)

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


# 64 KiB blocks (under any mmap threshold) fill 192 MiB of heap; freeing all but every 16th
# leaves 960 KiB holes that glibc keeps resident: only trimming gives their pages back.
HOLES = """
import ctypes
import re
import time

from adaptune.compute.host_memory import trimming_heap


def anon():
    status = open("/proc/self/status").read()
    return int(re.search(r"RssAnon:\\s+(\\d+)", status).group(1)) / 1024


libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = anon()
blocks = [libc.malloc(2**16) for _ in range(3072)]
for block in blocks:
    ctypes.memset(block, 1, 2**16)
for i, block in enumerate(blocks):
    if i % 16:
        libc.free(block)
held = anon() - before
time.sleep(0.3)
kept = anon() - before
with trimming_heap(period_s=0.05) as trimming:
    time.sleep(0.3)
print(held, kept, anon() - before, trimming)
"""


def _run(script: str, env: dict[str, str] | None = None) -> str:
    """The last line ``script`` prints in a fresh Python process."""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        check=True,
    ).stdout
    return out.strip().splitlines()[-1]


def _retained_mib(prelude: str, env: dict[str, str] | None = None) -> float:
    """MiB a freed 19 MiB block leaves in a fresh process after ``prelude`` ran."""
    return float(_run(prelude + RETAINED, env))


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


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trimming_gives_back_the_pages_of_holes_in_the_heap():
    held, kept, trimmed, trimming = _run(HOLES).split()
    assert trimming == "True"
    assert float(held) > 150 and float(kept) > 150  # freed between live blocks: still resident
    assert float(trimmed) < 40  # the live 12 MiB and the holes' partial pages


def test_no_thread_trims_when_not_enabled():
    with trimming_heap(enabled=False) as trimming:
        assert trimming is False
        assert all(t.name != TRIM_THREAD for t in threading.enumerate())


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_tuning_with_checkpointing_on_cpu_trims_the_heap_while_it_trains(tmp_path):
    rows = [{"prompt": f"Order {i} is late.\n", "target": f"Sorry about {i}."} for i in range(8)]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = {}
    for checkpointing in (True, False):
        training = {"steps": 3, "batch_size": 2, "eval_every": 0, "checkpoint_every": 0}
        training["gradient_checkpointing"] = checkpointing
        out = tmp_path / f"adapter-{checkpointing}"
        args = ["--train", str(train_file), "--out", str(out), "--quiet"]
        args += ["--base-model", "builtin:tiny-gpt2", "--adapter", '{"method": "lora", "r": 4}']
        args += ["--training", json.dumps(training)]
        # a watcher notes every thread alive while the tuning command runs
        tune = "import threading, time\nimport torch\nfrom adaptune.tuning.__main__ import main\n"
        tune += "names, done = set(), threading.Event()\n"
        tune += "def watch():\n    while not done.is_set():\n"
        tune += "        names.update(t.name for t in threading.enumerate())\n"
        tune += "        time.sleep(0.001)\n"
        tune += "threading.Thread(target=watch, daemon=True).start()\n"
        tune += f"torch.set_num_threads(1)\nassert main({args!r}) == 0\ndone.set()\n"
        tune += f"print({TRIM_THREAD!r} in names)\n"
        seen[checkpointing] = _run(tune, {"CUDA_VISIBLE_DEVICES": ""})
        assert (out / "adapter_config.json").is_file()
    assert seen == {True: "True", False: "False"}
