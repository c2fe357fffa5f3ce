"""Tuning throughput and memory: adaptune against Hugging Face ``Trainer`` and TRL ``SFTTrainer``.

Every mode runs each arm in its own child process (its own peak RSS, read as its own VmHWM or
from ``wait4``) on the same data, the same LoRA, the same batch size and steps, counts only
real (non-padding) tokens of the examples each arm trained on, and prints ratios against the
baseline arm of the same invocation, with their targets.

Default CPU mode: on a random 4-layer GPT-2 (width 256, the built-in tokenizer), data of widely
varied lengths:

* ``adaptune``: adaptune's tuning loop;
* ``trainer``: ``Trainer`` with default arguments (random batches, padded per batch);
* ``trainer_grouped``: ``Trainer`` with ``train_sampling_strategy="group_by_length"``.

Targets: adaptune ≥ 2.0× Trainer's defaults and ≥ 1.1× the grouped Trainer; peak RSS no higher
than Trainer's.

``--memory`` (CPU memory, issue 12): a random Qwen2-0.5B-shaped checkpoint saved in bf16
(151,936-token vocabulary, tied embeddings, 0.99 GB of weights) with the built-in tokenizer,
in a temporary directory; LoRA r=16, alpha 32, no dropout, all-linear; 4 steps of batch 4 on
prompt/target pairs of 16-440 prompt and 8-64 target tokens (examples up to 512 tokens):

* ``adaptune``: ``adaptune.tuning.adapter.tune_adapter`` called as the tune component calls it
  (fit check, load, train, save, sanity check) with ``training.precision: bf16`` (the dtype
  the checkpoint holds and the one TRL computes in) and ``training.gradient_checkpointing:
  true`` (TRL's default; without it a 0.5B model's activations at 4 × 512 tokens alone are
  about 2.8 GB, over the target);
* ``trl``: TRL ``SFTTrainer`` + PEFT ``LoraConfig(target_modules="all-linear")`` given the
  checkpoint's path, with ``SFTConfig``'s defaults (TRL 1.16: weights loaded in fp32, bf16
  autocast, gradient checkpointing on, loss on the completion, random batches) on the same
  pairs as a prompt/completion dataset;
* with ``--info-arms``, for information: ``adaptune_bf16_auto`` (bf16, checkpointing
  ``auto``: off on CPU) and ``adaptune_fp32`` (adaptune's CPU defaults: ``precision: auto``
  is fp32, no checkpointing).

Targets: adaptune's peak RSS ≤ 0.8× TRL's and ≤ 1.5 × the bf16 weight bytes + 1 GB;
tokens/s ≥ 1.5× TRL's.

``--realistic`` (CPU speed on a realistic shape, issue 12): a random Llama-shaped model with a
32,000-token vocabulary (width 384, 6 layers, untied head: 35M parameters), prompts of 30-400
tokens and targets of 20-120; 16 steps of batch 8:

* ``adaptune``: ``tune_adapter`` with its defaults (``precision: auto``: fp32 on CPU);
* ``trl_defaults``: ``SFTTrainer`` with ``SFTConfig``'s defaults, as above;
* ``trl_tuned``: the same without gradient checkpointing and with length-grouped batches
  (``train_sampling_strategy="group_by_length"``);
* ``adaptune_bf16`` (information): ``tune_adapter`` with ``precision: bf16``, the dtype TRL's
  bf16 autocast computes in.

Targets: adaptune ≥ 3× TRL's defaults and ≥ 2× TRL tuned. Every arm against TRL uses the
learning rate 2e-4; tokens/s is each arm's own training time (adaptune's loop clock; TRL from
the start of training to the end of its last step, its setup not counted), and the arms must
have trained on the same token count (within 5%) or the run fails. Needs TRL (the ``bench``
extra); ``--tiny`` runs either mode on a 2-layer, width-64 body as a smoke test.

``--gpu`` runs ``bench/tune_gpu.py`` (see its docstring): adaptune against TRL ``SFTTrainer``
(padding-free, bf16) on a random Qwen2.5-1.5B-shaped model, tokens/s ratio (target ≥ 1.3×) and
MFU (target ≥ 30%, 6N and 4N + attention), and the peak GPU memory of a Llama-3-8B-shaped LoRA
with checkpointing at 2,048 tokens in bf16 (target ≤ 22 GiB) and in 4-bit (≤ 10 GiB); under 8
minutes on one H100/H200. ``--gpu --smoke`` runs every arm of it on CPU with tiny dims.

``--compile`` trains the CPU model with adaptune's loop, ``training.compile`` off and on (each
arm in its own process, 3 warm-up steps timed apart: the compilation), and prints the ratio.

Usage: python bench/tune.py [--steps 40] [--batch-size 16]
       | --memory [--info-arms] [--tiny] | --realistic [--tiny] | --compile | --gpu [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = ("adaptune", "trainer", "trainer_grouped")
WORDS = [
    "order",
    "refund",
    "invoice",
    "account",
    "password",
    "shipping",
    "delivery",
    "crash",
    "error",
    "update",
    "screen",
    "payment",
    "team",
    "discount",
    "quote",
    "upgrade",
    "address",
    "tracking",
    "courier",
    "login",
    "device",
]


def make_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Prompt/target pairs whose lengths vary from a few to a few hundred tokens."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        length = int(rng.choice([8, 16, 32, 64, 128, 256]) * rng.uniform(0.5, 1.0))
        prompt = " ".join(rng.choice(WORDS) for _ in range(length))
        rows.append({"prompt": f"Ticket: {prompt}\nTeam:", "target": rng.choice(WORDS[:5])})
    return rows


def cpu_model(examples_count: int):
    """A random 4-layer, width-256 GPT-2 with the built-in tokenizer, and its encoded data."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from adaptune.base_models.builtin import build_tokenizer
    from adaptune.data.encoding import encode_example

    tokenizer = build_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=256,
        n_layer=4,
        n_head=4,
        initializer_range=0.1,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    examples = [
        encode_example(tokenizer, r["prompt"], r["target"], "causal", 512)
        for r in make_rows(examples_count)
    ]
    return model, tokenizer, examples


def run_arm(arm: str, steps: int, batch_size: int) -> dict[str, float]:
    """Train one arm in this process; return real tokens and seconds."""
    import torch

    from adaptune.data.encoding import collate
    from adaptune.tuning.loading import apply_method
    from adaptune.tuning.loop import train
    from adaptune.tuning.methods import LoraMethod
    from adaptune.tuning.settings import TrainingSettings

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    # exactly one epoch: every arm trains on the same examples, so the same token mix
    model, tokenizer, examples = cpu_model(steps * batch_size)
    model = apply_method(model, LoraMethod(), "causal")
    pad = tokenizer.pad_token_id
    if arm == "adaptune":
        settings = TrainingSettings(
            steps=steps, batch_size=batch_size, eval_every=0, checkpoint_every=0, max_length=512
        )
        result = train(model, examples, [], settings, pad, "causal", show_progress=False)
        return {"tokens": result.state.tokens, "seconds": result.state.wall_seconds}

    from transformers import Trainer, TrainingArguments

    from adaptune.data.encoding import Encoded

    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    counted = {"tokens": 0}

    def collator(batch):
        counted["tokens"] += sum(len(b["input_ids"]) for b in batch)
        return collate([Encoded(b["input_ids"], b["labels"]) for b in batch], pad, "causal")

    extra = {"train_sampling_strategy": "group_by_length"} if arm == "trainer_grouped" else {}
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            learning_rate=3e-3,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
            seed=0,
            **extra,
        )
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {"tokens": counted["tokens"], "seconds": seconds}


def measure(arm: str, steps: int, batch_size: int) -> dict[str, float]:
    """Run one arm in a child process; add its peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--arm",
                arm,
                "--steps",
                str(steps),
                "--batch-size",
                str(batch_size),
                "--out",
                out.name,
            ]
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"arm {arm} failed with exit code {process.returncode}")
        figures = json.loads(Path(out.name).read_text())
    figures["peak_rss_mb"] = usage.ru_maxrss / 1024
    figures["tokens_per_second"] = figures["tokens"] / figures["seconds"]
    return figures


def cpu_bench(steps: int, batch_size: int) -> None:
    """All three arms, then the ratios."""
    results = {arm: measure(arm, steps, batch_size) for arm in ARMS}
    for arm, r in results.items():
        print(
            f"{arm:16} {r['tokens_per_second']:9,.0f} real tokens/s  "
            f"{r['tokens']:9,.0f} tokens in {r['seconds']:6.2f} s  "
            f"peak RSS {r['peak_rss_mb']:7,.0f} MB"
        )
    ours = results["adaptune"]
    vs_default = ours["tokens_per_second"] / results["trainer"]["tokens_per_second"]
    vs_grouped = ours["tokens_per_second"] / results["trainer_grouped"]["tokens_per_second"]
    rss = ours["peak_rss_mb"] / results["trainer"]["peak_rss_mb"]
    print(f"tokens/s ratio adaptune / Trainer defaults: {vs_default:.2f}x (target >= 2.0x)")
    print(f"tokens/s ratio adaptune / Trainer grouped:  {vs_grouped:.2f}x (target >= 1.1x)")
    print(f"peak RSS ratio adaptune / Trainer defaults: {rss:.2f} (target <= 1.0)")


COMPILE_ARMS = ("adaptune_plain", "adaptune_compiled")


def run_compile_arm(arm: str, steps: int, batch_size: int) -> dict[str, float]:
    """The CPU model trained by adaptune, ``training.compile`` off or on, after 3 warm-up steps.

    The warm-up (which compiles, for the compiled arm) is timed apart, so the figures are the
    steady state and the one-off cost.
    """
    import torch

    from adaptune.tuning.loading import apply_method
    from adaptune.tuning.loop import train
    from adaptune.tuning.methods import LoraMethod
    from adaptune.tuning.settings import TrainingSettings

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, tokenizer, examples = cpu_model((steps + 3) * batch_size)
    model = apply_method(model, LoraMethod(), "causal")
    common = {
        "batch_size": batch_size,
        "eval_every": 0,
        "checkpoint_every": 0,
        "max_length": 512,
        "compile": arm == "adaptune_compiled",
    }
    pad = tokenizer.pad_token_id
    start = time.perf_counter()
    warm_settings = TrainingSettings(steps=3, **common)
    train(model, examples, [], warm_settings, pad, "causal", show_progress=False)
    warm = time.perf_counter() - start
    settings = TrainingSettings(steps=steps, seed=1, **common)
    result = train(model, examples, [], settings, pad, "causal", show_progress=False)
    return {"tokens": result.state.tokens, "seconds": result.state.wall_seconds, "warm": warm}


def compile_bench(steps: int, batch_size: int) -> None:
    """``training.compile`` off and on, each arm in its own process, then the ratio."""
    results = {arm: measure(arm, steps, batch_size) for arm in COMPILE_ARMS}
    for arm, r in results.items():
        print(
            f"{arm:18} {r['tokens_per_second']:9,.0f} real tokens/s after 3 warm-up steps "
            f"({r['warm']:.1f} s)  peak RSS {r['peak_rss_mb']:7,.0f} MB"
        )
    ratio = (
        results["adaptune_compiled"]["tokens_per_second"]
        / (results["adaptune_plain"]["tokens_per_second"])
    )
    print(f"tokens/s ratio compiled / plain: {ratio:.2f}x (training.compile defaults to false)")


def gpu_bench(smoke: bool = False, only: list[str] | None = None) -> None:
    """The GPU benchmark: adaptune vs TRL on a 1.5B shape, 8B memory (``bench/tune_gpu.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tune_gpu import gpu_bench as run_gpu_bench

    run_gpu_bench(smoke, only)


# --- Against TRL: the memory of the tuning component's own function, and speed on a real shape ---

LEARNING_RATE = 2e-4
"""The learning rate of every arm against TRL (it sets no speed, only what is learned)."""
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
"""The LoRA of every arm against TRL: r=16, alpha 32, no dropout, every linear layer."""
QWEN2_05B = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
}
LLAMA_32K = {
    "vocab_size": 32000,
    "hidden_size": 384,
    "intermediate_size": 1024,
    "num_hidden_layers": 6,
    "num_attention_heads": 6,
    "num_key_value_heads": 6,
}
"""A small Llama-shaped model with Llama 2's 32,000-token vocabulary (untied head)."""
BENCHES = {
    # name: (model dims, architecture, tied head, prompt tokens, target tokens, max length)
    "memory": (QWEN2_05B, "qwen2", True, (16, 440), (8, 64), 512),
    "realistic": (LLAMA_32K, "llama", False, (30, 400), (20, 120), 512),
}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}
"""``--tiny``: the same vocabulary and data on a 2-layer, width-64 body (a smoke test)."""
ADAPTUNE_ARMS = {
    # arm: (bench, training.precision, training.gradient_checkpointing)
    ("memory", "adaptune"): ("bf16", True),
    ("memory", "adaptune_bf16_auto"): ("bf16", "auto"),
    ("memory", "adaptune_fp32"): ("auto", "auto"),
    ("realistic", "adaptune"): ("auto", "auto"),
    ("realistic", "adaptune_bf16"): ("bf16", "auto"),
}
"""The settings of adaptune's arms that are not its defaults (``auto`` is fp32 and no
checkpointing on CPU)."""
TRL_ARMS = {
    "memory": ("adaptune", "trl", "adaptune_bf16_auto", "adaptune_fp32"),
    "realistic": ("adaptune", "trl_defaults", "trl_tuned", "adaptune_bf16"),
}
ONE_TOKEN_WORDS = [
    w for w in WORDS if w not in {"crash", "upgrade", "tracking", "courier", "login"}
]
"""Words the built-in tokenizer encodes as one token each (with their leading space)."""


def word_text(rng: random.Random, tokens: int) -> str:
    """About ``tokens`` tokens of text: one-token words of the built-in tokenizer."""
    return " ".join(rng.choice(ONE_TOKEN_WORDS) for _ in range(tokens))


def pair_rows(
    n: int, prompt_tokens: tuple[int, int], target_tokens: tuple[int, int], seed: int = 0
) -> list[dict[str, str]]:
    """Prompt/target pairs whose lengths are drawn uniformly from the two ranges (in tokens)."""
    rng = random.Random(seed)
    return [
        {
            "prompt": "Ticket:" + " " + word_text(rng, rng.randint(*prompt_tokens) - 3) + "\nTeam:",
            "target": " " + word_text(rng, rng.randint(*target_tokens)),
        }
        for _ in range(n)
    ]


def prepare(bench: str, directory: Path, examples: int, tiny: bool = False) -> dict[str, float]:
    """Write a random checkpoint in bf16 (with the built-in tokenizer) and the data files.

    ``directory/model`` holds the checkpoint, ``directory/formatted`` the ``train.jsonl`` and
    ``eval.jsonl`` (empty) that the format step would hand the tuning component. Runs in its
    own process, so no arm's process ever held the model it did not load itself.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from adaptune.base_models.builtin import build_tokenizer
    from adaptune.data.encoding import encode_pairs

    dims, architecture, tied, prompt_tokens, target_tokens, max_length = BENCHES[bench]
    dims = {**dims, **TINY} if tiny else dims
    tokenizer = build_tokenizer()
    config_class, model_class = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "llama": (LlamaConfig, LlamaForCausalLM),
    }[architecture]
    config = config_class(
        **dims,
        max_position_embeddings=4096,
        tie_word_embeddings=tied,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # made in bf16: no fp32 copy of 0.5B parameters
    model = model_class(config)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(directory / "model")
    tokenizer.save_pretrained(directory / "model")
    rows = pair_rows(examples, prompt_tokens, target_tokens)
    formatted = directory / "formatted"
    formatted.mkdir()
    (formatted / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (formatted / "eval.jsonl").write_text("")
    encoded = encode_pairs(tokenizer, rows, "causal", max_length)
    lengths = [len(e.input_ids) for e in encoded]
    targets = [e.target_tokens for e in encoded]
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "min_length": min(lengths),
        "max_length": max(lengths),
        "mean_length": sum(lengths) / len(lengths),
        "min_target": min(targets),
        "max_target": max(targets),
    }


def adaptune_arm(
    bench: str,
    directory: Path,
    steps: int,
    batch_size: int,
    precision: str,
    checkpointing: bool | str = "auto",
) -> dict[str, float]:
    """Train through ``adaptune.tuning.adapter.tune_adapter``, called as the component calls it.

    The component's steps in order: settings and method from its dicts, the applies check, the
    checkpoint directory keyed by data and settings, then ``tune_adapter`` (fit check, load,
    train, save, sanity check: no-op and reload).
    """
    from adaptune.compute.device import device_for_training
    from adaptune.compute.precision import resolve_precision
    from adaptune.tuning.adapter import tune_adapter
    from adaptune.tuning.applies import check_method_applies
    from adaptune.tuning.checkpoint_dirs import checkpoint_dir, training_key
    from adaptune.tuning.loss_log import loss_log_path
    from adaptune.tuning.methods import method_from_dict
    from adaptune.tuning.settings import TrainingSettings

    max_length = BENCHES[bench][5]
    base_model = str(directory / "model")
    adapter = {"method": "lora", **LORA}
    training = {
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": LEARNING_RATE,
        "max_length": max_length,
        "precision": precision,
        "gradient_checkpointing": checkpointing,
    }
    settings = TrainingSettings.from_dict({**training, "seed": 0})
    method = method_from_dict(adapter)
    check_method_applies(
        method, base_model, {"training.max_length": settings.max_length}, packing=settings.packing
    )
    train_file = directory / "formatted" / "train.jsonl"
    eval_file = directory / "formatted" / "eval.jsonl"
    out = directory / f"adapter-{precision}-{checkpointing}"
    key = training_key(
        [train_file, eval_file],
        {"base_model": base_model, "adapter": adapter, "training": training, "seed": 0},
    )
    result = tune_adapter(
        train_file=train_file,
        adapter_dir=out,
        base_model=base_model,
        settings=settings,
        method=method,
        eval_file=eval_file,
        checkpoint_dir=checkpoint_dir("tune-adapter", out, key),
        loss_log=loss_log_path(),
        show_progress=False,
    )
    if not (out / "adapter_config.json").is_file():
        raise SystemExit("tune_adapter returned without saving the adapter")
    state = result.training.state
    device = device_for_training()
    dtype = resolve_precision(settings.precision, device, "training.precision")
    recompute = result.summary["gradient_checkpointing"]  # the fit check's verdict
    return {
        "tokens": state.tokens,
        "seconds": state.wall_seconds,
        "steps": state.step,
        "examples": state.step * batch_size,
        "weights": f"{str(dtype).removeprefix('torch.')} (precision {precision})",
        "checkpointing": float(recompute),
        "final_loss": result.summary["final_loss"],
    }


def trl_arm(bench: str, directory: Path, steps: int, batch_size: int, tuned: bool) -> dict:
    """TRL ``SFTTrainer`` + PEFT LoRA with ``SFTConfig``'s defaults, given the checkpoint's path.

    TRL's defaults (1.16): the model loaded in fp32 from a path, bf16 autocast, gradient
    checkpointing on, random batches padded to their longest, loss on the completion only, its
    fused LM head. ``tuned`` turns checkpointing off and groups batches by length
    (``train_sampling_strategy="group_by_length"``). Only the steps, batch size, learning rate,
    seed, LoRA and the output (no saving, no reporting) are set; a CPU-only run adds
    ``use_cpu``. Tokens are the non-padding tokens of the batches its collator makes, timed
    from the start of training to the end of the last step (its setup is not counted).
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    rows = [
        json.loads(line)
        for line in (directory / "formatted" / "train.jsonl").read_text().splitlines()
    ]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["target"]} for r in rows])
    lora = LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["target_modules"],
        task_type="CAUSAL_LM",
    )
    extra = (
        {"gradient_checkpointing": False, "train_sampling_strategy": "group_by_length"}
        if tuned
        else {}
    )
    clock: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            clock["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            learning_rate=LEARNING_RATE,
            seed=0,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            **extra,
        )
        trainer = SFTTrainer(
            model=str(directory / "model"),
            args=config,
            train_dataset=dataset,
            peft_config=lora,
            callbacks=[Clock()],
        )
        collate_batch = trainer.data_collator
        counted = {"tokens": 0, "examples": 0}

        def counting(examples):
            counted["tokens"] += sum(len(e["input_ids"]) for e in examples)
            counted["examples"] += len(examples)
            return collate_batch(examples)

        trainer.data_collator = counting
        weights = next(trainer.model.get_base_model().parameters()).dtype
        output = trainer.train()
    if trainer._total_train_tokens != counted["tokens"]:  # TRL's own count of attended tokens
        raise SystemExit(f"token counts differ: {trainer._total_train_tokens} vs {counted}")
    return {
        "tokens": counted["tokens"],
        "seconds": clock["end"] - clock["start"],
        "steps": trainer.state.global_step,
        "examples": counted["examples"],
        "weights": str(weights).removeprefix("torch."),
        "checkpointing": float(config.gradient_checkpointing),
        "final_loss": output.training_loss,
    }


def own_peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status")


def trl_child(
    bench: str, arm: str, directory: Path, steps: int, batch_size: int, tiny: bool = False
) -> dict:
    """One arm against TRL (or ``prepare``), in this process; its own peak RSS added."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if arm == "prepare":
        figures = prepare(bench, directory, steps * batch_size, tiny)
    elif arm.startswith("adaptune"):
        figures = adaptune_arm(bench, directory, steps, batch_size, *ADAPTUNE_ARMS[bench, arm])
    else:
        figures = trl_arm(bench, directory, steps, batch_size, tuned=arm == "trl_tuned")
    figures["peak_rss_mb"] = own_peak_rss_mb()
    return figures


def run_child(
    bench: str, arm: str, directory: Path, steps: int, batch_size: int, tiny: bool = False
) -> dict:
    """Run one arm against TRL in a fresh child process; return its figures."""
    out = directory / f"{arm}.json"
    command = [
        sys.executable,
        __file__,
        "--bench",
        bench,
        "--arm",
        arm,
        "--dir",
        str(directory),
        "--steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
        *(["--tiny"] if tiny else []),
    ]
    log = directory / f"{arm}.log"
    with log.open("w") as sink:  # progress bars and warnings: shown only when the arm fails
        failed = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT).returncode
    if failed:
        print(log.read_text()[-6000:], file=sys.stderr)
        raise SystemExit(f"{bench} arm {arm} failed with exit code {failed}")
    figures = json.loads(out.read_text())
    if arm != "prepare":
        figures["tokens_per_second"] = figures["tokens"] / figures["seconds"]
    return figures


def trl_bench(
    bench: str, steps: int, batch_size: int, arms: tuple[str, ...], tiny: bool = False
) -> dict:
    """Prepare the checkpoint and data, run each arm in its own process, print the figures."""
    with tempfile.TemporaryDirectory(prefix=f"tune-{bench}-") as tmp:
        directory = Path(tmp)
        data = run_child(bench, "prepare", directory, steps, batch_size, tiny)
        print(
            f"{bench}: random {BENCHES[bench][1]}-shaped model{' (tiny)' if tiny else ''}, "
            f"{data['parameters'] / 1e6:,.0f}M parameters, "
            f"vocabulary {BENCHES[bench][0]['vocab_size']:,}, saved in bf16 "
            f"({data['weight_bytes'] / 1e9:.2f} GB); {steps} steps x batch {batch_size}; "
            f"examples of {data['min_length']:.0f}-{data['max_length']:.0f} tokens "
            f"(mean {data['mean_length']:.0f}), targets {data['min_target']:.0f}-"
            f"{data['max_target']:.0f}; LoRA r={LORA['r']} alpha={LORA['alpha']:g} all-linear, "
            f"lr {LEARNING_RATE:g}",
            flush=True,
        )
        results = {arm: run_child(bench, arm, directory, steps, batch_size) for arm in arms}
    for arm, r in results.items():
        print(
            f"{arm:14} {r['tokens_per_second']:8,.0f} real tokens/s  "
            f"{r['tokens']:8,.0f} tokens / {r['examples']:.0f} examples in {r['seconds']:7.1f} s  "
            f"peak RSS {r['peak_rss_mb']:7,.0f} MiB  weights {r['weights']}, "
            f"checkpointing {'on' if r['checkpointing'] else 'off'}, loss {r['final_loss']:.3f}"
        )
    counts = {r["tokens"] for r in results.values()}
    if max(counts) > 1.05 * min(counts):  # the same examples, tokenised alike, once each
        raise SystemExit(f"the arms trained on different token counts: {counts}")
    return {"data": data, **results}


def memory_bench(steps: int, batch_size: int, info: bool = False, tiny: bool = False) -> None:
    """The CPU memory benchmark: tune_adapter (bf16) vs TRL defaults on a Qwen2-0.5B shape."""
    arms = TRL_ARMS["memory"] if info else TRL_ARMS["memory"][:2]
    results = trl_bench("memory", steps, batch_size, arms, tiny)
    ours, trl = results["adaptune"], results["trl"]
    bound_mb = (1.5 * results["data"]["weight_bytes"] + 1e9) / 2**20
    print(
        f"peak RSS adaptune / TRL defaults: {ours['peak_rss_mb'] / trl['peak_rss_mb']:.2f}x "
        "(target <= 0.8x)"
    )
    print(
        f"peak RSS adaptune / (1.5 x bf16 weights + 1 GB): {ours['peak_rss_mb']:,.0f} / "
        f"{bound_mb:,.0f} MiB = {ours['peak_rss_mb'] / bound_mb:.2f}x (target <= 1x)"
    )
    print(
        "tokens/s adaptune / TRL defaults: "
        f"{ours['tokens_per_second'] / trl['tokens_per_second']:.2f}x (target >= 1.5x)"
    )


def realistic_bench(steps: int, batch_size: int, tiny: bool = False) -> None:
    """The CPU speed benchmark on a 32k-vocabulary shape: adaptune vs TRL, defaults and tuned."""
    results = trl_bench("realistic", steps, batch_size, TRL_ARMS["realistic"], tiny)
    ours = results["adaptune"]["tokens_per_second"]
    print(
        "tokens/s adaptune / TRL defaults: "
        f"{ours / results['trl_defaults']['tokens_per_second']:.2f}x (target >= 3x)"
    )
    print(
        "tokens/s adaptune / TRL no checkpointing, length-grouped: "
        f"{ours / results['trl_tuned']['tokens_per_second']:.2f}x (target >= 2x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--gpu", action="store_true", help="the GPU benchmark (bench/tune_gpu.py)")
    parser.add_argument("--smoke", action="store_true", help="with --gpu: tiny dims on CPU")
    parser.add_argument("--compile", action="store_true", help="training.compile off vs on, CPU")
    parser.add_argument(
        "--memory", action="store_true", help="CPU memory: tune_adapter vs TRL, 0.5B shape"
    )
    parser.add_argument(
        "--info-arms", action="store_true", help="--memory: adaptune's defaults too (bf16, fp32)"
    )
    parser.add_argument(
        "--realistic", action="store_true", help="CPU speed vs TRL on a 32k-vocabulary shape"
    )
    parser.add_argument("--tiny", action="store_true", help="--memory/--realistic smoke test")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--bench", choices=BENCHES, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bench:
        figures = trl_child(
            args.bench, args.arm, Path(args.dir), args.steps, args.batch_size, args.tiny
        )
        Path(args.out).write_text(json.dumps(figures))
    elif args.arm:
        run = run_compile_arm if args.arm in COMPILE_ARMS else run_arm
        figures = run(args.arm, args.steps or 40, args.batch_size or 16)
        Path(args.out).write_text(json.dumps(figures))
    elif args.memory:
        memory_bench(args.steps or 4, args.batch_size or 4, args.info_arms, args.tiny)
    elif args.realistic:
        realistic_bench(args.steps or 16, args.batch_size or 8, args.tiny)
    elif args.compile:
        compile_bench(args.steps or 40, args.batch_size or 16)
    elif args.gpu:
        gpu_bench(args.smoke)
    else:
        cpu_bench(args.steps or 40, args.batch_size or 16)


if __name__ == "__main__":
    main()
