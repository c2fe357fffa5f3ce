import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from ticket_rows import TICKETS
from transformers import AutoModelForCausalLM

from adaptune.base_models import load_base_model
from adaptune.compute.loss import LossFunction
from adaptune.data.encoding import IGNORE_INDEX, collate, encode_example, token_chunks
from adaptune.errors import UserError
from adaptune.tuning.adapter import tune_adapter
from adaptune.tuning.batching import BatchOrder, length_grouped_batches
from adaptune.tuning.checkpoint import latest_checkpoint
from adaptune.tuning.loading import apply_method, export_merged, load_tuned_model
from adaptune.tuning.loop import (
    TrainingDivergedError,
    backward_batch,
    lr_multiplier,
    train,
)
from adaptune.tuning.methods import LoraMethod, method_from_dict
from adaptune.tuning.sanity import AdapterSanityError, check_not_noop
from adaptune.tuning.settings import TrainingSettings

ROWS = [
    {
        "prompt": f"Ticket {i}: {'refund my order' if i % 2 else 'the app crashes'}\nTeam:",
        "target": "billing" if i % 2 else "technical",
    }
    for i in range(48)
]


def _write(tmp_path: Path, rows: list[dict], name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _tune(tmp_path, settings, method=None, **options):
    """``tune_adapter`` on ``ROWS`` with ``builtin:tiny-gpt2`` into ``tmp_path / "a"``."""
    data, method = _write(tmp_path, ROWS), LoraMethod() if method is None else method
    return tune_adapter(
        data, tmp_path / "a", "builtin:tiny-gpt2", settings, method, show_progress=False, **options
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- encoding and batching -------------------------------------------------------------------


def test_causal_loss_is_on_target_tokens_only():
    tok = load_base_model("builtin:tiny-gpt2").tokenizer
    example = encode_example(tok, "Ticket: refund please\nTeam:", "billing", "causal", 64)
    target = tok("billing", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n_prompt = len(example.input_ids) - len(target)
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert example.labels[n_prompt:] == target == example.input_ids[n_prompt:]


def test_long_prompts_are_cut_from_the_left_and_keep_the_target():
    tok = load_base_model("builtin:tiny-gpt2").tokenizer
    example = encode_example(tok, "word " * 500 + "END", "billing", "causal", 32)
    assert len(example.input_ids) == 32 and example.target_tokens > 0
    seq2seq = encode_example(tok, "word " * 500, "billing", "seq2seq", 32)
    assert len(seq2seq.input_ids) == 32 and seq2seq.input_ids[-1] == tok.eos_token_id


def test_collate_pads_with_ignored_labels():
    tok = load_base_model("builtin:tiny-gpt2").tokenizer
    batch = [encode_example(tok, p, "x", "causal", 64) for p in ("a", "a much longer prompt")]
    tensors = collate(batch, tok.pad_token_id, "causal")
    assert tensors["input_ids"].shape == tensors["labels"].shape
    assert tensors["attention_mask"][0].sum() == len(batch[0].input_ids)
    assert (tensors["labels"][0, len(batch[0].input_ids) :] == IGNORE_INDEX).all()


def test_length_grouped_batches_cover_every_example_and_cut_padding():
    lengths = [(i * 37) % 101 + 1 for i in range(300)]
    batches = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(300))

    def padding(bs):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in bs)

    plain = [list(range(300))[i : i + 16] for i in range(0, 300, 16)]
    assert padding(batches) < padding(plain) / 4


def test_batch_order_resumes_exactly():
    lengths = list(range(1, 50))
    one = BatchOrder(lengths, 8, seed=3)
    for _ in range(9):
        one.next()
    two = BatchOrder(lengths, 8, seed=3)
    two.load_state_dict(one.state_dict())
    assert [one.next() for _ in range(12)] == [two.next() for _ in range(12)]


def test_lr_schedules():
    assert lr_multiplier(0, 100, 10, "linear") == pytest.approx(0.1)
    assert lr_multiplier(10, 100, 10, "linear") == pytest.approx(1.0)
    assert lr_multiplier(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_multiplier(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_multiplier(99, 100, 10, "cosine") < 0.01


# --- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"r": 0},
        {"alpha": -1},
        {"dropout": 1.5},
        {"target_modules": []},
        {"rank": 8},
        {"method": "qlora"},
        {"method": "prompt_tuning", "num_virtual_tokens": 0},
        {"method": "prompt_tuning", "init": "text"},
        {"method": "last_layers", "r": 8},
        {"method": "ia3", "target_modules": ["c_attn"]},
        {"use_dora": "yes"},
    ],
)
def test_adapter_configs_reject_bad_values(bad):
    with pytest.raises(UserError):
        method_from_dict(bad)


def test_adapter_configs_accept_pipeline_floats_and_round_trip():
    method = method_from_dict({"r": 8.0, "target_modules": ["c_attn"], "use_rslora": True})
    assert method.r == 8 and method.to_dict()["target_modules"] == ["c_attn"]
    assert method_from_dict(method.to_dict()) == method
    assert method_from_dict({}) == LoraMethod()


@pytest.mark.parametrize(
    "bad",
    [
        {"learning_rate": 0},
        {"steps": 0, "epochs": 0},
        {"grad_accum": 0},
        {"schedule": "step"},
        {"patience": 2, "eval_every": 0},
        {"stepz": 3},
    ],
)
def test_training_settings_reject_bad_values(bad):
    with pytest.raises(UserError):
        TrainingSettings.from_dict(bad)


def test_epochs_mode_counts_steps_from_the_data():
    settings = TrainingSettings(steps=0, epochs=3, batch_size=8, grad_accum=2)
    assert settings.total_steps(100) == 3 * 7


# --- every method trains on both families -----------------------------------------------------

METHODS = [
    ({"method": "lora"}, 3e-3),
    ({"method": "lora", "use_rslora": True, "use_dora": True}, 3e-3),
    ({"method": "prompt_tuning", "num_virtual_tokens": 8}, 1e-1),
    ({"method": "ia3"}, 3e-2),
    ({"method": "last_layers", "num_layers": 1}, 3e-3),
]


@pytest.mark.parametrize("base_model", ["builtin:tiny-gpt2", "builtin:tiny-t5"])
@pytest.mark.parametrize(
    ("adapter", "lr"), METHODS, ids=["lora", "rslora-dora", "prompt_tuning", "ia3", "last_layers"]
)
def test_every_method_trains_saves_and_reloads(tmp_path, base_model, adapter, lr):
    method = method_from_dict(adapter)
    settings = TrainingSettings(steps=30, batch_size=8, learning_rate=lr, eval_every=10)
    result = tune_adapter(
        _write(tmp_path, ROWS),
        tmp_path / "adapter",
        base_model,
        settings,
        method,
        eval_file=_write(tmp_path, ROWS[:8], "eval.jsonl"),
        show_progress=False,
    )
    assert result.summary["final_loss"] < result.summary["first_loss"] * 0.8
    assert "eval_loss" in result.summary
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "loss_curve.png",
        "training_history.json",
    } <= files
    reloaded = load_tuned_model(load_base_model(base_model).model, tmp_path / "adapter")
    if method.peft:
        assert isinstance(reloaded, PeftModel)
        assert isinstance(
            PeftModel.from_pretrained(load_base_model(base_model).model, str(tmp_path / "adapter")),
            PeftModel,
        )


def test_last_layers_trains_only_the_last_block():
    base = load_base_model("builtin:tiny-gpt2")
    model = apply_method(base.model, method_from_dict({"method": "last_layers"}), "causal")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("transformer.h.1.") for n in trainable)
    with pytest.raises(UserError, match=r"adapter\.num_layers must be at most 2 .*got 5"):
        apply_method(
            load_base_model("builtin:tiny-gpt2").model,
            method_from_dict({"method": "last_layers", "num_layers": 5}),
            "causal",
        )


def test_unknown_target_modules_are_a_user_error(tmp_path):
    with pytest.raises(UserError, match="do not fit the model"):
        _tune(tmp_path, TrainingSettings(steps=1), LoraMethod(target_modules=("nope",)))


# --- determinism, checkpoints and resume -------------------------------------------------------


def test_same_seed_gives_the_same_adapter(tmp_path):
    data = _write(tmp_path, ROWS)
    settings = TrainingSettings(steps=10, batch_size=8, seed=3)
    for name in ("one", "two"):
        tune_adapter(
            data, tmp_path / name, "builtin:tiny-gpt2", settings, LoraMethod(), show_progress=False
        )
    assert _sha(tmp_path / "one/adapter_model.safetensors") == _sha(
        tmp_path / "two/adapter_model.safetensors"
    )


TUNE_SCRIPT = """
import sys
from pathlib import Path
from adaptune.tuning.adapter import tune_adapter
from adaptune.tuning.methods import method_from_dict
from adaptune.tuning.settings import TrainingSettings
root = Path(sys.argv[1])
tune_adapter(root / "train.jsonl", Path(sys.argv[2]), "builtin:tiny-gpt2",
             TrainingSettings(steps=40, batch_size=8, eval_every=10, checkpoint_every=2,
                              grad_accum=2),
             method_from_dict({"method": "lora", "dropout": 0.1}), eval_file=root / "eval.jsonl",
             checkpoint_dir=Path(sys.argv[3]) if len(sys.argv) > 3 else None,
             show_progress=False)
"""


def _tune_process(tmp_path: Path, out: str, checkpoints: str | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", TUNE_SCRIPT, str(tmp_path), str(tmp_path / out)]
    return subprocess.Popen(
        args + ([str(tmp_path / checkpoints)] if checkpoints else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_killed_runs_resume_to_a_byte_identical_adapter(tmp_path):
    _write(tmp_path, ROWS)
    _write(tmp_path, ROWS[:8], "eval.jsonl")
    reference = _tune_process(tmp_path, "reference")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    expected = _sha(tmp_path / "reference/adapter_model.safetensors")
    for kill_after in (4, 16, 30):
        checkpoints = tmp_path / f"ckpt-{kill_after}"
        process = _tune_process(tmp_path, f"resumed-{kill_after}", checkpoints.name)
        deadline = time.monotonic() + 300
        while (latest := latest_checkpoint(checkpoints)) is None or int(
            latest.name.split("-")[1]
        ) < kill_after:
            assert process.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
        assert not (tmp_path / f"resumed-{kill_after}").exists()
        rerun = _tune_process(tmp_path, f"resumed-{kill_after}", checkpoints.name)
        assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
        history = json.loads((tmp_path / f"resumed-{kill_after}/training_history.json").read_text())
        assert history["summary"]["resumed_from_step"] >= kill_after
        assert _sha(tmp_path / f"resumed-{kill_after}/adapter_model.safetensors") == expected


def test_checkpoints_are_pruned_and_complete(tmp_path):
    _tune(
        tmp_path,
        TrainingSettings(steps=9, batch_size=8, checkpoint_every=2),
        checkpoint_dir=tmp_path / "ckpt",
    )
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["checkpoint-00000006", "checkpoint-00000008"]
    assert {p.name for p in (tmp_path / "ckpt" / names[-1]).iterdir()} == {
        "trainable.safetensors",
        "states.pt",
        "loop.json",
    }


# --- watchdog, early stopping, best weights, sanity gate ---------------------------------------


def _model_and_examples(steps_rows=ROWS):
    base = load_base_model("builtin:tiny-gpt2")
    examples = [
        encode_example(base.tokenizer, r["prompt"], r["target"], "causal", 64) for r in steps_rows
    ]
    torch.manual_seed(0)
    return base, apply_method(base.model, LoraMethod(), "causal"), examples


def test_nan_loss_triggers_the_watchdog():
    base, model, examples = _model_and_examples()
    calls = {"n": 0}

    def poison(module, args, output):
        calls["n"] += 1
        if calls["n"] > 6:
            return output * float("nan")
        return output

    model.get_base_model().transformer.ln_f.register_forward_hook(poison)
    with pytest.raises(TrainingDivergedError, match="loss is nan"):
        train(
            model,
            examples,
            [],
            TrainingSettings(steps=20, batch_size=8),
            base.tokenizer.pad_token_id,
            "causal",
            show_progress=False,
        )


def test_exploding_loss_triggers_the_watchdog():
    base, model, examples = _model_and_examples()
    calls = {"n": 0}

    def blow_up(module, args, output):  # logits grow ever larger: the loss explodes, finitely
        calls["n"] += 1
        return output * (1.0 + calls["n"]) * (-1) ** calls["n"]

    model.get_base_model().transformer.ln_f.register_forward_hook(blow_up)
    with pytest.raises(TrainingDivergedError, match="over 3× the first loss"):
        train(
            model,
            examples,
            [],
            TrainingSettings(steps=40, batch_size=8, divergence_factor=3),
            base.tokenizer.pad_token_id,
            "causal",
            show_progress=False,
        )


def test_early_stopping_stops_and_keeps_the_best_weights():
    base, model, examples = _model_and_examples()
    # eval on examples whose targets contradict training: eval loss rises as training fits
    contradicting = [
        encode_example(
            base.tokenizer,
            r["prompt"],
            "technical" if r["target"] == "billing" else "billing",
            "causal",
            64,
        )
        for r in ROWS[:8]
    ]
    snapshots = {}

    def remember(state):
        snapshots[state.step] = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }

    result = train(
        model,
        examples,
        contradicting,
        TrainingSettings(steps=200, batch_size=8, eval_every=5, patience=2),
        base.tokenizer.pad_token_id,
        "causal",
        show_progress=False,
        on_step=remember,
    )
    state = result.state
    assert state.stopped_early and state.step < 200
    assert state.step == state.best_step + 2 * 5
    best = snapshots[state.best_step]
    assert all(torch.equal(p, best[n]) for n, p in model.named_parameters() if p.requires_grad)


def test_a_noop_adapter_fails_the_sanity_gate():
    zeros = {"lora_B.weight": torch.zeros(2, 2), "lora_A.weight": torch.ones(2, 2)}
    with pytest.raises(AdapterSanityError, match="every LoRA B matrix is zero"):
        check_not_noop(
            zeros, {"lora_B.weight": torch.zeros(2, 2), "lora_A.weight": torch.zeros(2, 2)}
        )
    same = {"x": torch.ones(3)}
    with pytest.raises(AdapterSanityError, match="no trainable parameter changed"):
        check_not_noop(same, {"x": torch.ones(3)})


def test_zero_learning_rate_training_is_caught_as_a_noop(tmp_path):
    with pytest.raises(AdapterSanityError):
        _tune(
            tmp_path,
            TrainingSettings(steps=3, batch_size=8, learning_rate=1e-30),
            method_from_dict({"method": "ia3"}),
        )
    assert not (tmp_path / "a").exists()


def test_merged_export_matches_the_adapter(tmp_path):
    _tune(tmp_path, TrainingSettings(steps=10, batch_size=8))
    export_merged(load_base_model("builtin:tiny-gpt2").model, tmp_path / "a", tmp_path / "m")
    base = load_base_model("builtin:tiny-gpt2")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    tuned = load_tuned_model(load_base_model("builtin:tiny-gpt2").model, tmp_path / "a").eval()
    ids = base.tokenizer("Ticket 3: refund my order\nTeam:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, tuned(ids).logits, atol=1e-4)
    assert not any("lora" in k for k in load_file(tmp_path / "m/model.safetensors"))


# --- data-parallel -----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_process_data_parallel_equals_one_process_with_accumulation(tmp_path):
    data = _write(tmp_path, TICKETS)
    common = {"steps": 10, "batch_size": 4, "eval_every": 0, "checkpoint_every": 0}
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "adaptune.tuning",
            "--train",
            str(data),
            "--out",
            str(tmp_path / "ddp"),
            "--training",
            json.dumps(common),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaptune.tuning",
            "--train",
            str(data),
            "--out",
            str(tmp_path / "single"),
            "--training",
            json.dumps({**common, "grad_accum": 2}),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    summary = json.loads(ddp.stdout)
    assert summary["train_tokens"] == json.loads(single.stdout)["train_tokens"]
    a = load_file(tmp_path / "ddp" / "adapter_model.safetensors")
    b = load_file(tmp_path / "single" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not torch.equal(a[next(iter(a))], torch.zeros_like(a[next(iter(a))]))


@pytest.mark.slow  # a tuning subprocess (6 s): not in make test-fast
def test_tuning_module_reports_user_errors_without_a_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaptune.tuning",
            "--train",
            str(_write(tmp_path, ROWS)),
            "--out",
            str(tmp_path / "a"),
            "--adapter",
            '{"method": "nope"}',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "adapter.method must be one of" in result.stderr and "'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_adapter_config_is_written_canonically(tmp_path):
    _tune(tmp_path, TrainingSettings(steps=2, batch_size=8))
    text = (tmp_path / "a" / "adapter_config.json").read_text()
    config = json.loads(text)
    assert config["target_modules"] == sorted(config["target_modules"])
    assert text == json.dumps(config, indent=2, sort_keys=True) + "\n"


def test_token_chunks_bound_memory_and_keep_the_gradient():
    base, model, _ = _model_and_examples()
    long_rows = [
        encode_example(base.tokenizer, "word " * (20 + i), "billing", "causal", 256)
        for i in range(8)
    ]
    assert len(token_chunks(long_rows, 0)) == 1
    chunks = token_chunks(long_rows, 64)
    assert sum(len(c) for c in chunks) == 8 and len(chunks) > 1
    assert all(len(c) * max(len(e.input_ids) for e in c) <= 64 or len(c) == 1 for c in chunks)
    losses, grads = [], []
    for cap in (0, 64):
        model.zero_grad(set_to_none=True)
        loss_fn = LossFunction(model, "causal")
        losses.append(
            backward_batch(
                loss_fn,
                long_rows,
                base.tokenizer.pad_token_id,
                "causal",
                torch.device("cpu"),
                cap,
                1.0,
            )
        )
        grads.append(
            {
                n: p.grad.clone()
                for n, p in model.named_parameters()
                if p.requires_grad and p.grad is not None
            }
        )
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    assert any(g.abs().sum() > 0 for g in grads[0].values())
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])
