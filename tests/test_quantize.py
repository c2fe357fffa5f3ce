"""A quantised base (``adapter.quantize``): QLoRA's 4-bit and LLM.int8()'s 8-bit through
bitsandbytes, trained for real on CPU where bitsandbytes is installed, refused in one line
before anything loads where it cannot run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE
from hostile import invoke, one_line_error, tree
from tiny_checkpoints import save_tiny_llama

from adaptune.base_models import load_base_model
from adaptune.base_models.quantization import quantization_config
from adaptune.tuning.__main__ import main as tuning_main
from adaptune.tuning.fit import QUANTIZED_BYTES, check_memory
from adaptune.tuning.loading import WEIGHTS_FILE, apply_method
from adaptune.tuning.methods import LoraMethod
from adaptune.tuning.settings import TrainingSettings

TRAIN = str(SAMPLE / "train.jsonl")
QUICK = {"steps": 3, "batch_size": 4, "eval_every": 0, "checkpoint_every": 0, "max_length": 48}
HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
needs_bnb = pytest.mark.skipif(
    not HAS_BNB,
    reason="bitsandbytes is not installed in this environment (pip install -e . installs it)",
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random Llama-shaped checkpoint in bf16, with the built-in tokenizer."""
    return save_tiny_llama(tmp_path_factory.mktemp("llama-checkpoint"), 64, 128, 4)


@pytest.fixture
def no_bitsandbytes(monkeypatch):
    """bitsandbytes as if not installed: importing it raises ImportError."""
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)


def test_4bit_is_qloras_config_nf4_double_quantised_bf16_compute():
    config = quantization_config("4bit", torch.float32)
    assert config.load_in_4bit is True
    assert config.load_in_8bit is False
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config("4bit", torch.float16).bnb_4bit_compute_dtype == torch.float16
    eight = quantization_config("8bit", torch.bfloat16)
    assert (eight.load_in_8bit, eight.load_in_4bit) == (True, False)
    assert quantization_config("none", torch.float32) is None


def test_the_fit_check_counts_quantised_linear_weights(checkpoint):
    settings = TrainingSettings.from_dict(QUICK)
    cpu = torch.device("cpu")
    plain = check_memory(str(checkpoint), LoraMethod(), settings, cpu, show=False)
    four = check_memory(str(checkpoint), LoraMethod(quantize="4bit"), settings, cpu, show=False)
    eight = check_memory(str(checkpoint), LoraMethod(quantize="8bit"), settings, cpu, show=False)
    assert plain is not None and four is not None and eight is not None
    plain, four, eight = plain.estimate, four.estimate, eight.estimate
    # fp32 on CPU; only the blocks' linear layers are quantised (q, o 64x64; k, v 64x32; MLP)
    linear = 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128)
    assert abs(plain.weights - four.weights - linear * (4 - QUANTIZED_BYTES["4bit"])) <= 1
    assert abs(plain.weights - eight.weights - linear * (4 - QUANTIZED_BYTES["8bit"])) <= 1
    assert four.weights < eight.weights < plain.weights


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("adapter.quantize=4bit", "adapter.quantize=4bit needs bitsandbytes"),
        ("adapter.quantize=8bit", "adapter.quantize=8bit needs bitsandbytes"),
        ("adapter.quantize=2bit", "adapter.quantize must be one of"),
    ],
)
def test_run_refuses_a_quantised_base_without_bitsandbytes_before_anything_runs(
    checkpoint, tmp_path, monkeypatch, no_bitsandbytes, setting, named
):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    line = one_line_error(
        invoke(
            "run",
            "--train-data",
            TRAIN,
            "--runs-dir",
            tmp_path / "runs",
            "--base-model",
            checkpoint,
            "--set",
            setting,
        )
    )
    assert named in line, line
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "adapter.quantize=4bit"], "needs a checkpoint directory as base_model"),
        (
            ["--adapter", '{"method": "last_layers", "quantize": "8bit"}'],
            "adapter.quantize=8bit needs a method that adds parameters",
        ),
    ],
)
def test_run_refuses_quantising_what_cannot_be_quantised(tmp_path, monkeypatch, args, named):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    line = one_line_error(
        invoke("run", "--train-data", TRAIN, "--runs-dir", tmp_path / "runs", *args)
    )
    assert named in line, line
    assert tree(tmp_path) == before


def test_the_tune_step_refuses_without_bitsandbytes_before_loading(
    checkpoint, tmp_path, monkeypatch, no_bitsandbytes
):
    loads = []
    monkeypatch.setattr("adaptune.tuning.adapter.load_base_model", lambda *a, **k: loads.append(a))
    out = tmp_path / "adapter"
    args = ["--train", TRAIN, "--out", str(out), "--quiet", "--base-model", str(checkpoint)]
    args += ["--adapter", json.dumps({"quantize": "4bit"}), "--training", json.dumps(QUICK)]
    assert tuning_main(args) == 2
    assert loads == []
    assert not out.exists()


@needs_bnb
@pytest.mark.parametrize(("quantize", "layer"), [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_a_quantised_base_trains_fp32_lora_weights_on_cpu(checkpoint, quantize, layer):
    import bitsandbytes as bnb

    base = load_base_model(str(checkpoint), torch.float32, quantize, torch.device("cpu"))
    blocks = [m for n, m in base.model.named_modules() if n.endswith(("q_proj", "down_proj"))]
    assert blocks and all(type(m) is getattr(bnb.nn, layer) for m in blocks)
    weight_types = {type(m.weight).__name__ for m in blocks}
    assert weight_types == {"Params4bit" if quantize == "4bit" else "Int8Params"}
    model = apply_method(base.model, LoraMethod(r=4, quantize=quantize), base.family)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in names), names[:3]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    torch.manual_seed(0)
    ids = torch.randint(0, len(base.tokenizer), (4, 16))
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


@needs_bnb
def test_the_tune_step_saves_a_qlora_adapter_that_passes_its_checks(checkpoint, tmp_path):
    rows = [
        {"prompt": f"Order {i} is late.\n### Response:\n", "target": f"Sorry about order {i}."}
        for i in range(8)
    ]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "adapter"
    args = ["--train", str(train_file), "--out", str(out), "--quiet"]
    args += ["--base-model", str(checkpoint), "--adapter", json.dumps({"r": 4, "quantize": "4bit"})]
    args += ["--training", json.dumps({**QUICK, "learning_rate": 1e-2})]
    assert tuning_main(args) == 0
    from safetensors.torch import load_file

    saved = load_file(out / WEIGHTS_FILE)
    assert saved and {t.dtype for t in saved.values()} == {torch.float32}
    history = json.loads((out / "training_history.json").read_text())
    assert history["adapter"]["quantize"] == "4bit"
    assert history["summary"]["final_loss"] < history["summary"]["first_loss"]


@needs_bnb
def test_an_eval_forward_leaves_4bit_gradients_as_they_were(checkpoint):
    # bitsandbytes repacks 4-bit weights for a CPU inference kernel without a backward at the
    # first eval-mode forward without gradients; a tuned model must keep training correctly
    base = load_base_model(str(checkpoint), torch.float32, "4bit", torch.device("cpu"))
    torch.manual_seed(0)
    model = apply_method(base.model, LoraMethod(r=4, quantize="4bit"), base.family)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # nonzero, so gradients reach lora_A and earlier layers
            torch.nn.init.normal_(param, std=0.1)
    ids = torch.randint(0, len(base.tokenizer), (2, 12))

    def gradients() -> dict[str, torch.Tensor]:
        model.train()
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    before = gradients()
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    after = gradients()
    first = next(n for n in before if ".layers.0." in n and "lora_A" in n)
    assert before[first].abs().sum() > 0
    for name in before:
        torch.testing.assert_close(after[name], before[name], msg=name)


def test_the_setting_spells_the_choices_the_loader_knows():
    from typing import get_args, get_type_hints

    from adaptune.base_models.quantization import QUANTIZE

    assert get_args(get_type_hints(LoraMethod)["quantize"]) == QUANTIZE
    assert LoraMethod().to_dict()["quantize"] == "none"


@needs_bnb
def test_a_4bit_base_keeps_its_frozen_embeddings_in_the_compute_dtype(
    checkpoint, tmp_path, monkeypatch
):
    # PEFT's k-bit preparation would hold them in fp32: 4.2 GB for Llama-3-8B's 128k x 4096
    from adaptune.tuning import adapter as tuning_adapter

    seen: dict[str, set[torch.dtype]] = {}
    real_train = tuning_adapter.train

    def recording_train(model, *args, **kwargs):
        hf = model.get_base_model()
        for name in ("get_input_embeddings", "get_output_embeddings"):
            seen[name] = {getattr(hf, name)().weight.dtype}
        seen["norms"] = {p.dtype for n, p in hf.named_parameters() if "norm" in n}
        seen["lora"] = {p.dtype for n, p in hf.named_parameters() if "lora_" in n}
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(tuning_adapter, "train", recording_train)
    rows = [{"prompt": f"Order {i} is late.\n", "target": f"Sorry about {i}."} for i in range(8)]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["--train", str(train_file), "--out", str(tmp_path / "adapter"), "--quiet"]
    args += ["--base-model", str(checkpoint), "--adapter", json.dumps({"r": 4, "quantize": "4bit"})]
    args += ["--training", json.dumps({**QUICK, "learning_rate": 1e-2, "precision": "bf16"})]
    assert tuning_main(args) == 0
    assert seen == {
        "get_input_embeddings": {torch.bfloat16},
        "get_output_embeddings": {torch.bfloat16},
        "norms": {torch.float32},
        "lora": {torch.float32},
    }
    history = json.loads((tmp_path / "adapter" / "training_history.json").read_text())
    assert history["summary"]["final_loss"] < history["summary"]["first_loss"]
