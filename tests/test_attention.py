"""Attention implementation: training.attention / evaluation.attention / serve --attention load the
base with that ``attn_implementation``; what this machine cannot run is refused before it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE
from fastapi.testclient import TestClient
from hostile import invoke, one_line_error, tree
from sample_adapters import save_random_lora
from test_cli import captured_run  # noqa: F401  (fixture)
from test_precision import bf16_checkpoint, formatted  # noqa: F401  (fixture)

from adaptune.base_models import attention, load_base_model
from adaptune.errors import UserError
from adaptune.evaluation import compared_models
from adaptune.evaluation.evaluate import evaluate_models
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.registry import register_version
from adaptune.serving import adapters as serving_adapters
from adaptune.tuning import adapter as tuning_adapter
from adaptune.tuning.__main__ import main as tuning_main

TRAIN = str(SAMPLE / "train.jsonl")
QUICK = {"steps": 2, "batch_size": 4, "eval_every": 0, "checkpoint_every": 0, "max_length": 48}
CPU = torch.device("cpu")
GPU = torch.device("cuda")


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as a CPU-only one, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def flash_installed(monkeypatch):
    """flash-attn as if installed (the check is all that runs; no kernel is called)."""
    monkeypatch.setattr(attention, "flash_installed", lambda: True)


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("training.attention=flash_attention_2", "training.attention=flash_attention_2 needs"),
        ("evaluation.attention=flash_attention_2", "evaluation.attention=flash_attention_2 needs"),
        ("training.attention=flex", "training.attention must be one of"),
    ],
)
def test_run_refuses_an_attention_this_machine_cannot_run_before_anything_runs(
    tmp_path, monkeypatch, no_gpu, setting, named
):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    line = one_line_error(
        invoke("run", "--train-data", TRAIN, "--runs-dir", tmp_path / "runs", "--set", setting)
    )
    assert named in line, line
    assert tree(tmp_path) == before


def test_run_refuses_flash_attention_on_a_cpu_when_the_package_is_there(
    tmp_path, monkeypatch, no_gpu, flash_installed
):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(
        invoke(
            "run",
            "--train-data",
            TRAIN,
            "--runs-dir",
            tmp_path / "runs",
            "--set",
            "training.attention=flash_attention_2",
        )
    )
    assert "training.attention=flash_attention_2 needs a CUDA GPU" in line, line
    assert not (tmp_path / "runs").exists()


def test_run_passes_the_attention_settings_to_the_pipeline(
    captured_run,  # noqa: F811
    tmp_path,
    no_gpu,
):
    result = invoke(
        "run",
        "--train-data",
        TRAIN,
        "--runs-dir",
        tmp_path,
        "--set",
        "training.attention=eager",
        "--set",
        "evaluation.attention=sdpa",
    )
    assert result.exit_code == 0, result.output
    params = captured_run[0]["params"]
    assert params["training"]["attention"] == "eager"
    assert params["evaluation"]["attention"] == "sdpa"


def test_auto_is_flash_attention_only_with_the_package_on_a_gpu_in_half_precision(monkeypatch):
    resolve = attention.resolve_attention
    assert resolve("auto", GPU, torch.bfloat16, "s") == "sdpa"  # no flash-attn here
    monkeypatch.setattr(attention, "flash_installed", lambda: True)
    assert resolve("auto", GPU, torch.bfloat16, "s") == "flash_attention_2"
    assert resolve("auto", GPU, torch.float16, "s") == "flash_attention_2"
    assert resolve("auto", GPU, torch.float32, "s") == "sdpa"
    assert resolve("auto", CPU, torch.bfloat16, "s") == "sdpa"
    assert resolve("auto", GPU, torch.bfloat16, "s", flash_supported=False) == "sdpa"
    assert resolve("flash_attention_2", GPU, torch.bfloat16, "s") == "flash_attention_2"
    assert resolve("eager", GPU, torch.bfloat16, "s") == "eager"
    with pytest.raises(UserError, match=r"^s=flash_attention_2 runs in bf16 or fp16 only"):
        resolve("flash_attention_2", GPU, torch.float32, "s")
    with pytest.raises(UserError, match=r"^s=flash_attention_2: this model's architecture"):
        resolve("flash_attention_2", GPU, torch.bfloat16, "s", flash_supported=False)


@pytest.mark.parametrize("asked", ["auto", "sdpa", "eager"])
def test_tuning_loads_the_base_with_the_asked_attention(
    bf16_checkpoint,  # noqa: F811
    tmp_path,
    monkeypatch,
    no_gpu,
    asked,
):
    seen: list[str] = []
    real_train = tuning_adapter.train

    def recording_train(model, *args, **kwargs):
        seen.append(model.get_base_model().config._attn_implementation)
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(tuning_adapter, "train", recording_train)
    train_file, eval_file = formatted(tmp_path)
    args = ["--train", str(train_file), "--eval", str(eval_file), "--quiet"]
    args += ["--out", str(tmp_path / "adapter"), "--base-model", str(bf16_checkpoint)]
    args += ["--adapter", json.dumps({"method": "lora", "r": 4})]
    args += ["--training", json.dumps({**QUICK, "attention": asked})]
    assert tuning_main(args) == 0
    assert seen == ["sdpa" if asked == "auto" else asked]


def test_a_builtin_model_runs_the_asked_attention():
    assert load_base_model("builtin:tiny-gpt2").model.config._attn_implementation == "sdpa"
    eager = load_base_model("builtin:tiny-t5", attention="eager").model
    assert eager.config._attn_implementation == "eager"


def test_evaluation_loads_the_compared_base_with_its_attention(
    bf16_checkpoint,  # noqa: F811
    tmp_path,
    monkeypatch,
    no_gpu,
):
    seen: list[str] = []
    real_load = compared_models.load_base_model

    def recording_load(name, dtype=None, **kwargs):
        base = real_load(name, dtype, **kwargs)
        seen.append(base.model.config._attn_implementation)
        return base

    monkeypatch.setattr(compared_models, "load_base_model", recording_load)
    adapter = save_random_lora(str(bf16_checkpoint), tmp_path / "adapter", seed=1, r=4)
    settings = EvaluationSettings(max_new_tokens=2, max_length=48, attention="eager")
    result = evaluate_models(
        formatted(tmp_path)[1],
        adapter,
        str(bf16_checkpoint),
        tmp_path / "eval",
        settings=settings,
        show_progress=False,
    )
    assert seen == ["eager"]
    assert set(result.scores) == {"base", "tuned"}
    with pytest.raises(UserError, match=r"^evaluation\.attention=flash_attention_2 needs"):
        evaluate_models(
            formatted(tmp_path)[1],
            adapter,
            str(bf16_checkpoint),
            tmp_path / "flash",
            settings=EvaluationSettings(attention="flash_attention_2"),
        )


@pytest.fixture
def registry(bf16_checkpoint, tmp_path) -> Path:  # noqa: F811
    """A registry whose production version is a LoRA adapter on the bf16 checkpoint."""
    root = tmp_path / "registry"
    adapter = save_random_lora(str(bf16_checkpoint), tmp_path / "lora", seed=1, r=4)
    register_version(root, "alpha", adapter, {"base_model": str(bf16_checkpoint)}, promote=True)
    return root


def test_serve_attention_loads_the_base_with_it(registry, monkeypatch, no_gpu):
    import uvicorn

    seen: list[str] = []
    real_load = serving_adapters.load_tuned_model
    answers: list[int] = []

    def recording_load(base, adapter_dir, adapter_name="default"):
        seen.append(base.config._attn_implementation)
        return real_load(base, adapter_dir, adapter_name=adapter_name)

    def run_app(app, **_):
        with TestClient(app) as client:
            body = {"instances": [{"prompt": "hello"}], "parameters": {"maxOutputTokens": 2}}
            answers.append(client.post("/v1/endpoints/alpha:predict", json=body).status_code)

    monkeypatch.setattr(serving_adapters, "load_tuned_model", recording_load)
    monkeypatch.setattr(uvicorn, "run", run_app)
    result = invoke("serve", "--registry-dir", registry, "--attention", "eager")
    assert result.exit_code == 0, result.output
    assert answers == [200]
    assert seen == ["eager"]


def test_serve_refuses_flash_attention_without_a_gpu_in_one_line(
    registry, monkeypatch, no_gpu, flash_installed
):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **_: pytest.fail("served"))
    line = one_line_error(
        invoke("serve", "--registry-dir", registry, "--attention", "flash_attention_2")
    )
    assert "--attention=flash_attention_2 needs a CUDA GPU" in line, line
