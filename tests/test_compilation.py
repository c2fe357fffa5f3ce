"""training.compile: the blocks run compiled while training and give the same losses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE
from hostile import invoke, one_line_error
from test_cli import captured_run  # noqa: F401  (fixture)

from adaptune.base_models import load_base_model
from adaptune.tuning import compilation
from adaptune.tuning.__main__ import main as tuning_main
from adaptune.tuning.adapter import HISTORY_FILE

TRAIN = str(SAMPLE / "train.jsonl")
COMPILER = shutil.which("cc") or shutil.which("gcc")


def test_every_block_is_compiled_while_training_and_plain_after():
    model = load_base_model("builtin:tiny-gpt2").model
    blocks = compilation.blocks(model)
    assert len(blocks) == model.config.n_layer
    with compilation.compiled(model, True) as count:
        assert count == len(blocks)
        assert all(b._compiled_call_impl is not None for b in blocks)
    assert all(b._compiled_call_impl is None for b in blocks)
    with compilation.compiled(model, False) as count:
        assert count == 0 and all(b._compiled_call_impl is None for b in blocks)


def test_run_passes_compile_to_the_tuning_step(captured_run, tmp_path):  # noqa: F811
    result = invoke(
        "run", "--train-data", TRAIN, "--runs-dir", tmp_path, "--set", "training.compile=true"
    )
    assert result.exit_code == 0, result.output
    assert captured_run[0]["params"]["training"]["compile"] is True


def test_run_refuses_compile_without_a_c_compiler(tmp_path, monkeypatch):
    monkeypatch.setattr(compilation.shutil, "which", lambda name: None)
    monkeypatch.chdir(tmp_path)
    line = one_line_error(
        invoke(
            "run",
            "--train-data",
            TRAIN,
            "--runs-dir",
            tmp_path / "runs",
            "--set",
            "training.compile=true",
        )
    )
    assert "training.compile=true needs a C compiler" in line, line
    assert not (tmp_path / "runs").exists()


def _losses(tmp_path: Path, compile_: bool) -> list[float]:
    rows = [
        {"prompt": "Order " * (1 + i % 7) + f"{i} is late.\n", "target": f"Sorry about {i}."}
        for i in range(16)
    ]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / f"adapter-{compile_}"
    training = {
        "steps": 2,
        "batch_size": 4,
        "eval_every": 0,
        "checkpoint_every": 0,
        "max_length": 64,
        "learning_rate": 1e-2,
        "gradient_checkpointing": True,
        "packing": True,
        "max_batch_tokens": 64,
        "compile": compile_,
    }
    args = ["--train", str(train_file), "--out", str(out), "--quiet"]
    args += ["--base-model", "builtin:tiny-gpt2", "--adapter", json.dumps({"method": "lora"})]
    args += ["--training", json.dumps(training)]
    assert tuning_main(args) == 0
    return json.loads((out / HISTORY_FILE).read_text())["losses"]


@pytest.mark.slow
@pytest.mark.skipif(COMPILER is None, reason="inductor needs a C compiler on CPU; none on PATH")
def test_compiled_and_plain_training_give_the_same_losses(tmp_path):
    # LoRA inside checkpointed blocks, packed rows of varying token counts (dynamic shapes)
    from torch._dynamo.utils import counters

    plain = _losses(tmp_path, False)
    torch._dynamo.reset()
    counters.clear()
    compiled = _losses(tmp_path, True)
    assert counters["stats"]["unique_graphs"] >= 1  # the blocks did run compiled
    assert compiled == pytest.approx(plain, rel=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(COMPILER is None, reason="inductor needs a C compiler on CPU; none on PATH")
def test_every_block_and_length_shares_one_compiled_graph():
    # one graph per layer would pass dynamo's cache limit (8) on a 28-layer model and fall back
    from torch._dynamo.utils import counters
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=100, n_embd=32, n_layer=4, n_head=2, n_positions=64)
    model = GPT2LMHeadModel(config)
    torch._dynamo.reset()
    counters.clear()
    with compilation.compiled(model, True), torch.no_grad():
        for length in (10, 17, 23):
            model(torch.randint(0, 100, (2, length)), use_cache=False)
    assert counters["stats"]["unique_graphs"] == 1
