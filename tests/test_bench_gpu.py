"""bench/tune_gpu.py (``bench/tune.py --gpu``): its arithmetic, and its arms run on CPU with tiny
dims (``--smoke``), so the prepared GPU script is known to run before a GPU is lent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None


@pytest.fixture(scope="module")
def tune_gpu():
    sys.path.insert(0, str(BENCH))
    try:
        import tune_gpu

        yield tune_gpu
    finally:
        sys.path.remove(str(BENCH))


def test_mfu_counts_both_conventions(tune_gpu):
    dims = {"vocab_size": 10, "hidden_size": 2, "num_hidden_layers": 1}
    figures = {
        "tokens": 1000,
        "seconds": 1.0,
        "n_matmul": 100,  # 20 of them the head
        "mean_length": 100,
        "target_fraction": 0.1,
    }
    # 4N + attention per token: 4 x 80 body + 4 x 20 head x 0.1 + 4 x 1 x 100 x 2 / 2 x 3 = 1528
    six, four = tune_gpu.mfu(figures, dims, peak=1528e3)
    assert four == pytest.approx(1.0)
    assert six == pytest.approx(6 * 100 * 1000 / 1528e3)


def test_the_smoke_plan_is_tiny_and_the_full_plan_the_issues(tune_gpu):
    assert tune_gpu.knob("memory_length", smoke=False) == 2048
    assert tune_gpu.knob("memory_length", smoke=True) < 2048
    assert tune_gpu.LLAMA3_8B["vocab_size"] == 128256
    assert tune_gpu.QWEN25_15B["hidden_size"] == 1536


@pytest.mark.slow
@pytest.mark.parametrize("arm", ["adaptune_packed", "trl"])
def test_a_speed_arm_runs_on_cpu_with_tiny_dims(tune_gpu, arm):
    figures = tune_gpu.run_arm(arm, smoke=True, checkpoint=None)
    assert figures["tokens"] > 0 and figures["seconds"] > 0
    assert figures["attention"] == "sdpa"
    assert 0 < figures["target_fraction"] < 1


@pytest.mark.skipif(not HAS_BNB, reason="bitsandbytes is not installed: no 4-bit base")
def test_the_4bit_arm_loads_through_adaptunes_path_and_trains_on_cpu(tune_gpu, tmp_path):
    checkpoint = str(tmp_path / "llama")
    tune_gpu.run_arm("prepare_8b", smoke=True, checkpoint=checkpoint)
    figures = tune_gpu.run_arm("lora8b_4bit", smoke=True, checkpoint=checkpoint)
    assert figures["quantize"] == "4bit"  # and the arm asserted Linear4bit layers
    assert figures["tokens"] == tune_gpu.knob("memory_length", smoke=True)
