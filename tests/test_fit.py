"""The fit check: a tuning run's memory estimated from the base model's config, before loading.

The figures are checked on a Qwen2-0.5B-shaped config (built here, no weights); the refusal
through ``adaptune run`` and through the tuning function, on a tiny checkpoint whose weights
file is not weights at all: a refusal that names the figures shows nothing read it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE
from hostile import invoke, one_line_error, tree

from adaptune.compute.device_memory import DeviceMemory, device_memory
from adaptune.errors import UserError
from adaptune.tuning import adapter as tuning_adapter
from adaptune.tuning.fit import (
    GIB,
    QUANTIZED_BYTES,
    activations_fit,
    check_fits,
    plan_for,
    tokens_per_pass,
)
from adaptune.tuning.methods import LastLayersMethod, LoraMethod
from adaptune.tuning.settings import TrainingSettings

GPT2 = "builtin:tiny-gpt2"
QWEN2_05B_PARAMETERS = 494_000_000  # Qwen2-0.5B's model card: 0.49B parameters
LORA_R16_ALL_LINEAR = 8_798_208  # PEFT's trainable count for r=16 all-linear on Qwen2-0.5B


@pytest.fixture(scope="module")
def qwen_config(tmp_path_factory) -> Path:
    """A Qwen2-0.5B-shaped config.json (stored in bf16), and nothing else."""
    from transformers import Qwen2Config

    directory = tmp_path_factory.mktemp("qwen2-0.5b")
    Qwen2Config(
        vocab_size=151_936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32_768,
        tie_word_embeddings=True,
        dtype="bfloat16",
    ).save_pretrained(directory)
    return directory


def test_the_estimate_of_a_qwen2_05b_shaped_model(qwen_config):
    settings = TrainingSettings(batch_size=4, max_length=512)  # max_batch_tokens 4096: all rows
    plan = plan_for(str(qwen_config), LoraMethod(r=16), settings, torch.device("cuda"))
    assert plan.shape.parameters == pytest.approx(QWEN2_05B_PARAMETERS, rel=0.01)
    assert (plan.shape.hidden, plan.shape.layers, plan.shape.vocab) == (896, 24, 151_936)
    assert plan.trainable == plan.new_parameters == LORA_R16_ALL_LINEAR
    assert plan.tokens == 4 * 512
    assert plan.weight_bytes == 2  # the dtype its config names, as from_pretrained loads it
    plain, checkpointed = plan.estimate(False), plan.estimate(True)
    gib = plain.parts_gib()
    assert gib["weights"] == pytest.approx(0.92, abs=0.05)  # 494M × 2 bytes
    assert gib["optimizer"] == pytest.approx(0.10, abs=0.05)  # 8.8M × (grad + 2 moments) fp32
    # 2048 tokens × 24 layers × (8 × 896 + 3 × 4864) values × 2 bytes (bf16 autocast)
    assert plain.activations == 2048 * 24 * (8 * 896 + 3 * 4864) * 2
    assert gib["activations"] == pytest.approx(2.0, abs=0.05)
    # the chunked loss: 110 positions × 151,936 × 16 bytes (every copy of the logits) at once
    assert plan.logits_chunk == 110
    assert plain.logits == 110 * 151_936 * 16
    assert plain.logits / GIB == pytest.approx(0.25, abs=0.01)
    assert checkpointed.activations < plain.activations / 10
    assert checkpointed.weights == plain.weights
    whole = plan.estimate(False, logits_tokens=2048)  # a loss over the whole pass's logits
    assert whole.logits == 2048 * 151_936 * 16
    assert plain.describe().startswith(f"~{plain.total / GIB:.1f} GiB (weights 0.9, adapter 0.0")
    metrics = plain.metrics()
    assert metrics["memory_estimate_gib"] == pytest.approx(plain.total / GIB, abs=0.01)


def test_precision_quantisation_and_device_change_the_estimate(qwen_config):
    settings = TrainingSettings(batch_size=4, max_length=512)
    name = str(qwen_config)
    bf16 = plan_for(name, LoraMethod(r=16), settings, torch.device("cpu"))
    fp32 = plan_for(name, LoraMethod(r=16), settings, torch.device("cpu"), weight_bytes=4)
    nf4 = plan_for(
        name,
        LoraMethod(r=16),
        settings,
        torch.device("cuda"),
        weight_bytes=2,
        quantized_bytes=QUANTIZED_BYTES["4bit"],
    )
    assert fp32.estimate(False).weights == 2 * bf16.estimate(False).weights
    assert fp32.estimate(False).activations == 2 * bf16.estimate(False).activations  # fp32 on CPU
    linear = nf4.shape.linear_parameters
    assert 0.6 < linear / nf4.shape.parameters < 0.8  # the tied embedding is not quantised
    assert nf4.estimate(False).weights == int(
        linear * QUANTIZED_BYTES["4bit"] + (nf4.shape.parameters - linear) * 2
    )
    last = plan_for(name, LastLayersMethod(num_layers=2), settings, torch.device("cuda"))
    assert last.new_parameters == 0 and last.trainable > 10_000_000  # two whole blocks


def test_max_batch_tokens_bounds_the_tokens_of_a_pass():
    assert tokens_per_pass(TrainingSettings(batch_size=64, max_length=512)) == 8 * 512
    assert tokens_per_pass(TrainingSettings(batch_size=64, max_length=512, max_batch_tokens=0)) == (
        64 * 512
    )
    one_row = TrainingSettings(batch_size=4, max_length=8192, max_batch_tokens=4096)
    assert tokens_per_pass(one_row) == 8192  # rows stay whole
    assert tokens_per_pass(TrainingSettings(batch_size=2, max_length=100), 16) == 2 * 116


def test_activations_fit_decides_with_and_without_checkpointing(qwen_config):
    settings = TrainingSettings(batch_size=4, max_length=512)
    plan = plan_for(str(qwen_config), LoraMethod(r=16), settings, torch.device("cuda"))
    between = DeviceMemory(plan.estimate(True).total + GIB // 4, "cuda:0")
    assert activations_fit(plan, between, gradient_checkpointing=True)
    assert not activations_fit(plan, between, gradient_checkpointing=False)
    with pytest.raises(UserError) as refused:
        check_fits(plan, between, settings)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"does not fit: needs {plan.estimate(False).describe()} of ")
    assert "GiB on cuda:0; lower training.batch_size (now 4) or training.max_length (now 512)" in (
        message
    )
    tiny = DeviceMemory(GIB // 2, "cuda:0")
    with pytest.raises(
        UserError, match=re.escape("the weights, adapter and optimizer alone need 1.6 GiB")
    ):
        check_fits(plan, tiny, settings)


def test_the_device_reports_its_memory_unless_it_is_set():
    ram = device_memory(torch.device("cpu"))
    assert ram.free_bytes > 0 and ram.where == "cpu RAM"
    assert device_memory(torch.device("cpu"), 12.5) == DeviceMemory(
        int(12.5 * GIB), "cpu RAM (set)"
    )
    assert device_memory(torch.device("cuda", 1), 24).where == "cuda:1 (set)"


# --- refused before loading -------------------------------------------------------------------

NOT_WEIGHTS = b"not a safetensors file: whatever reads it fails"


@pytest.fixture
def unreadable_checkpoint(tmp_path) -> Path:
    """A tiny GPT-2 checkpoint (config and tokenizer) whose weights file is not weights."""
    from adaptune.base_models.loading import load_base_model

    directory = tmp_path / "ckpt"
    tiny = load_base_model("builtin:tiny-gpt2")
    tiny.model.save_pretrained(directory)
    tiny.tokenizer.save_pretrained(directory)
    (directory / "model.safetensors").write_bytes(NOT_WEIGHTS)
    return directory


HUGE = {"batch_size": 256, "max_length": 512, "max_batch_tokens": 0, "device_memory_gib": 0.6}


def test_adaptune_run_refuses_a_run_that_cannot_fit_before_anything_runs(
    unreadable_checkpoint, tmp_path, monkeypatch
):
    from adaptune.runner import run

    def must_not_run(*args, **kwargs):
        raise AssertionError("the pipeline was started")

    monkeypatch.setattr(run, "run_local", must_not_run)
    monkeypatch.chdir(tmp_path)
    lines = (SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines(True)[:32]
    (tmp_path / "train.jsonl").write_text("".join(lines), encoding="utf-8")
    before = tree(tmp_path)
    result = invoke(
        "run",
        "--train-data",
        "train.jsonl",
        "--base-model",
        unreadable_checkpoint,
        "--training",
        json.dumps(HUGE),
    )
    line = one_line_error(result, 2)
    assert line.startswith("adaptune: error: does not fit: needs ~"), line
    assert "(weights 0.0, adapter 0.0, optimizer 0.0, activations " in line, line
    assert "of 0.6 GiB on cpu RAM (set); lower training.batch_size (now 256)" in line, line
    assert tree(tmp_path) == before
    assert not (tmp_path / "runs").exists()


def test_the_tuning_step_refuses_before_it_loads_the_weights(
    unreadable_checkpoint, tmp_path, monkeypatch, capsys
):
    loads: list[str] = []
    monkeypatch.setattr(tuning_adapter, "load_base_model", loads.append)
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"prompt": "a", "target": "b"}) + "\n", encoding="utf-8")
    settings = TrainingSettings.from_dict(HUGE)
    with pytest.raises(UserError, match=r"^does not fit: needs ~\S+ GiB \(weights 0\.0"):
        tuning_adapter.tune_adapter(
            train,
            tmp_path / "adapter",
            str(unreadable_checkpoint),
            settings,
            LoraMethod(),
            show_progress=False,
        )
    assert loads == []
    assert not (tmp_path / "adapter").exists()
    assert "memory estimate" not in capsys.readouterr().err


def test_a_run_that_fits_prints_its_estimate_and_reports_it(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    rows = [{"prompt": f"say {i}", "target": f" {i % 3}"} for i in range(16)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = TrainingSettings(steps=3, batch_size=4, learning_rate=3e-2, eval_every=0)
    result = tuning_adapter.tune_adapter(
        train,
        tmp_path / "adapter",
        "builtin:tiny-gpt2",
        settings,
        LoraMethod(),
        show_progress=False,
    )
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("memory estimate: ~"))
    assert " GiB free on cpu RAM" in line and "(weights 0.0, adapter 0.0" in line
    assert 0 < result.summary["memory_estimate_gib"] < 1
    assert result.summary["memory_estimate_runtime_gib"] == 0.5
    assert "memory_estimate_gib" in result.report_html


@pytest.mark.parametrize(("choice", "on"), [(True, True), ("auto", False), (False, False)])
def test_training_checkpoints_as_the_fit_check_decided(tmp_path, capsys, monkeypatch, choice, on):
    from adaptune.tuning import loop

    decided = []
    real = loop.checkpointed

    def recording(model, enabled):
        decided.append(enabled)
        return real(model, enabled)

    monkeypatch.setattr(loop, "checkpointed", recording)
    train = tmp_path / "train.jsonl"
    rows = [{"prompt": f"say {i}", "target": f" {i % 3}"} for i in range(8)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = TrainingSettings(
        steps=2, batch_size=4, learning_rate=3e-2, eval_every=0, gradient_checkpointing=choice
    )
    tuning_adapter.tune_adapter(
        train,
        tmp_path / "adapter",
        "builtin:tiny-gpt2",
        settings,
        LoraMethod(),
        show_progress=False,
    )
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("memory estimate"))
    assert line.endswith("; gradient checkpointing on") == on
    assert decided == [on]  # the loop did what the estimate printed (auto: off on CPU)
