"""Precision: the base model is held in the compute dtype, adapter weights and optimizer state in
fp32, in tuning, evaluation and serving; what a machine cannot run is refused before it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE
from fastapi.testclient import TestClient
from hostile import invoke, one_line_error, tree
from safetensors.torch import load_file
from sample_adapters import save_random_lora
from test_cli import captured_run  # noqa: F401  (fixture)
from tiny_checkpoints import save_tiny_llama

from adaptune.base_models import load_base_model
from adaptune.errors import UserError
from adaptune.evaluation import compared_models
from adaptune.evaluation.evaluate import evaluate_models
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.registry import register_version
from adaptune.serving import adapters as serving_adapters
from adaptune.tuning import adapter as tuning_adapter
from adaptune.tuning.__main__ import main as tuning_main
from adaptune.tuning.loading import WEIGHTS_FILE, apply_method
from adaptune.tuning.loop import train
from adaptune.tuning.methods import LoraMethod
from adaptune.tuning.settings import TrainingSettings

TRAIN = str(SAMPLE / "train.jsonl")
QUICK = {"steps": 2, "batch_size": 4, "eval_every": 0, "checkpoint_every": 0, "max_length": 48}


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory) -> Path:
    """A tiny random Llama-shaped checkpoint saved in bf16, with the built-in tokenizer."""
    return save_tiny_llama(tmp_path_factory.mktemp("bf16-checkpoint"), 32, 64, 2)


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as a CPU-only one, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def dtypes(model: torch.nn.Module, trainable: bool | None = None) -> set[torch.dtype]:
    """The dtypes of the model's trainable (True), frozen (False) or all (None) weights."""
    return {p.dtype for p in model.parameters() if trainable in (None, p.requires_grad)}


def formatted(tmp_path: Path) -> tuple[Path, Path]:
    rows = [
        {"prompt": f"Order {i} is late.\n### Response:\n", "target": f"Sorry about order {i}."}
        for i in range(8)
    ]
    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    return train_file, eval_file


def test_a_checkpoint_loads_in_the_asked_dtype_and_else_in_its_files(bf16_checkpoint):
    assert load_base_model(str(bf16_checkpoint)).model.dtype == torch.bfloat16
    assert dtypes(load_base_model(str(bf16_checkpoint), torch.float32).model) == {torch.float32}
    assert load_base_model("builtin:tiny-gpt2", torch.bfloat16).model.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("precision", "method", "held"),
    [
        ("auto", {"method": "lora", "r": 4}, torch.float32),
        ("bf16", {"method": "lora", "r": 4}, torch.bfloat16),
        ("fp32", {"method": "lora", "r": 4}, torch.float32),
        ("bf16", {"method": "last_layers", "num_layers": 1}, torch.bfloat16),
    ],
)
def test_tuning_holds_the_base_in_the_compute_dtype_and_the_adapter_in_fp32(
    bf16_checkpoint, tmp_path, monkeypatch, no_gpu, precision, method, held
):
    seen: dict[str, set[torch.dtype]] = {}
    real_train = tuning_adapter.train

    class RecordingAdamW(torch.optim.AdamW):
        def step(self, closure=None):
            loss = super().step(closure)
            seen["optimizer"] = {
                t.dtype
                for state in self.state.values()
                for t in state.values()
                if t.is_floating_point() and t.dim() > 0
            }
            return loss

    def recording_train(model, *args, **kwargs):
        seen["frozen"], seen["trainable"] = dtypes(model, False), dtypes(model, True)
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(tuning_adapter, "train", recording_train)
    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    train_file, eval_file = formatted(tmp_path)
    out = tmp_path / "adapter"
    args = ["--train", str(train_file), "--eval", str(eval_file), "--out", str(out), "--quiet"]
    args += ["--base-model", str(bf16_checkpoint), "--adapter", json.dumps(method)]
    args += ["--training", json.dumps({**QUICK, "precision": precision})]
    assert tuning_main(args) == 0
    assert seen == {"frozen": {held}, "trainable": {torch.float32}, "optimizer": {torch.float32}}
    saved = load_file(out / WEIGHTS_FILE)
    # LoRA weights are saved as trained (fp32); last_layers blocks go back into the base's dtype
    expected = torch.float32 if method["method"] == "lora" else held
    assert {t.dtype for t in saved.values()} == {expected}


def test_in_bf16_adapter_layers_take_their_input_as_it_is_with_the_same_loss_and_grads(
    bf16_checkpoint,
):
    """PEFT's cast of each LoRA layer's input to fp32 is off under autocast, and changes nothing."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from adaptune.compute.loss import LossFunction
    from adaptune.compute.precision import mixed_precision
    from adaptune.data.encoding import collate, encode_example

    base = load_base_model(str(bf16_checkpoint), torch.bfloat16)
    torch.manual_seed(0)
    model = apply_method(base.model, LoraMethod(r=4, dropout=0.0), "causal")
    with torch.no_grad():  # a LoRA that is not a no-op, so the adapter counts in the loss
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    pairs = [(f"Order {i} is late.\n", f"Sorry about order {i}.") for i in range(4)]
    examples = [encode_example(base.tokenizer, p, t, "causal", 48) for p, t in pairs]
    batch = collate(examples, base.tokenizer.pad_token_id, "causal")
    loss_fn = LossFunction(model, "causal")
    seen: list[torch.dtype] = []
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    hooks = [
        m.lora_A["default"].register_forward_pre_hook(
            lambda module, args: seen.append(args[0].dtype)
        )
        for m in layers
    ]
    results = []
    for ours in (True, False):
        seen.clear()
        model.zero_grad()
        if ours:
            with mixed_precision(model, torch.device("cpu")):
                loss = loss_fn(batch)
        else:  # autocast alone: PEFT casts each input to fp32, autocast casts it back to bf16
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(batch)
        loss.backward()
        assert seen and set(seen) == ({torch.bfloat16} if ours else {torch.float32})
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((loss.detach(), grads))
    for hook in hooks:
        hook.remove()
    assert all(m.cast_input_dtype_enabled for m in layers)  # as it was outside the block
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], rtol=0, atol=0)


def test_fp16_loss_scaling_trains_fp32_adapter_weights_on_an_fp16_base(tmp_path):
    # fp16 is refused on CPU for users (slow); the loop's scaler path itself runs here
    base = load_base_model("builtin:tiny-gpt2", torch.float16)
    model = apply_method(base.model, LoraMethod(r=4), base.family)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    from adaptune.data.encoding import encode_pairs

    examples = encode_pairs(
        base.tokenizer,
        [json.loads(line) for line in formatted(tmp_path)[0].read_text().splitlines()],
        base.family,
        48,
    )
    result = train(
        model,
        examples,
        [],
        TrainingSettings(**QUICK, learning_rate=1e-2),
        base.tokenizer.pad_token_id,
        base.family,
        show_progress=False,
    )
    assert all(torch.isfinite(torch.tensor(loss)) for loss in result.state.losses)
    assert dtypes(model, False) == {torch.float16} and dtypes(model, True) == {torch.float32}
    after = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert any(not torch.equal(before[n], after[n]) for n in before)


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("training.precision=fp16", "training.precision=fp16 needs a GPU"),
        ("evaluation.precision=fp16", "evaluation.precision=fp16 needs a GPU"),
        ("training.precision=fp8", "training.precision must be one of"),
    ],
)
def test_a_precision_this_machine_cannot_run_is_refused_before_anything_runs(
    tmp_path, monkeypatch, no_gpu, setting, named
):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    line = one_line_error(
        invoke("run", "--train-data", TRAIN, "--runs-dir", tmp_path / "runs", "--set", setting)
    )
    assert named in line, line
    assert tree(tmp_path) == before


def test_bf16_on_cpu_is_accepted_by_run(captured_run, tmp_path, no_gpu):  # noqa: F811
    result = invoke(
        "run", "--train-data", TRAIN, "--runs-dir", tmp_path, "--set", "training.precision=bf16"
    )
    assert result.exit_code == 0, result.output
    assert captured_run[0]["params"]["training"]["precision"] == "bf16"


def test_evaluation_loads_every_compared_base_in_its_precision(
    bf16_checkpoint, tmp_path, monkeypatch, no_gpu
):
    loaded: list[set[torch.dtype]] = []
    real_load = compared_models.load_base_model

    def recording_load(name, dtype=None, **kwargs):
        base = real_load(name, dtype, **kwargs)
        loaded.append(dtypes(base.model))
        return base

    monkeypatch.setattr(compared_models, "load_base_model", recording_load)
    adapter = save_random_lora(str(bf16_checkpoint), tmp_path / "adapter", seed=1, r=4)
    eval_file = formatted(tmp_path)[1]
    for precision, held in (("auto", torch.float32), ("bf16", torch.bfloat16)):
        loaded.clear()
        settings = EvaluationSettings(max_new_tokens=2, max_length=48, precision=precision)
        result = evaluate_models(
            eval_file,
            adapter,
            str(bf16_checkpoint),
            tmp_path / precision,
            settings=settings,
            show_progress=False,
        )
        assert loaded == [{held}]
        assert set(result.scores) == {"base", "tuned"}
    with pytest.raises(UserError, match=r"evaluation\.precision=fp16 needs a GPU"):
        evaluate_models(
            eval_file,
            adapter,
            str(bf16_checkpoint),
            tmp_path / "fp16",
            settings=EvaluationSettings(precision="fp16"),
        )


@pytest.fixture
def registry(bf16_checkpoint, tmp_path) -> Path:
    """A registry whose production version is a LoRA adapter on the bf16 checkpoint."""
    root = tmp_path / "registry"
    adapter = save_random_lora(str(bf16_checkpoint), tmp_path / "lora", seed=1, r=4)
    register_version(root, "alpha", adapter, {"base_model": str(bf16_checkpoint)}, promote=True)
    return root


@pytest.mark.parametrize(
    ("flags", "held"),
    [([], torch.float32), (["--precision", "bf16"], torch.bfloat16)],
)
def test_serve_precision_loads_the_base_in_that_dtype(registry, monkeypatch, no_gpu, flags, held):
    import uvicorn

    loaded: list[tuple[set[torch.dtype], set[torch.dtype]]] = []
    real_load = serving_adapters.load_tuned_model
    answers: list[int] = []

    def recording_load(base, adapter_dir, adapter_name="default"):
        model = real_load(base, adapter_dir, adapter_name=adapter_name)
        held = {p.dtype for n, p in model.named_parameters() if "lora_" not in n}
        lora = {p.dtype for n, p in model.named_parameters() if "lora_" in n}
        loaded.append((held, lora))
        return model

    def run_app(app, **_):  # what uvicorn would serve: the preloaded models answer a request
        with TestClient(app) as client:
            body = {"instances": [{"prompt": "hello"}], "parameters": {"maxOutputTokens": 2}}
            answers.append(client.post("/v1/endpoints/alpha:predict", json=body).status_code)

    monkeypatch.setattr(serving_adapters, "load_tuned_model", recording_load)
    monkeypatch.setattr(uvicorn, "run", run_app)
    result = invoke("serve", "--registry-dir", registry, *flags)
    assert result.exit_code == 0, result.output
    assert answers == [200]
    assert loaded == [({held}, {torch.float32})]


def test_serve_refuses_fp16_without_a_gpu_in_one_line(registry, monkeypatch, no_gpu):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **_: pytest.fail("served"))
    line = one_line_error(invoke("serve", "--registry-dir", registry, "--precision", "fp16"))
    assert "--precision=fp16 needs a GPU" in line, line
