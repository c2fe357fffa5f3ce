"""Tuning throughput and memory: adaptune's loop against Hugging Face ``Trainer`` + PEFT.

CPU mode (default) trains, on the same random 4-layer GPT-2 (width 256, the built-in
tokenizer), the same LoRA, the same data of widely varied lengths, batch size and steps:

* ``adaptune``: adaptune's tuning loop;
* ``trainer``: ``Trainer`` with default arguments (random batches, padded per batch);
* ``trainer_grouped``: ``Trainer`` with ``train_sampling_strategy="group_by_length"``.

Each arm runs in its own process, so each has its own peak RSS. Prints real (non-padding)
tokens/s, peak RSS, and the ratios. Targets: adaptune ≥ 2.0× Trainer's defaults and ≥ 1.1×
the grouped Trainer; peak RSS no higher than Trainer's.

``--gpu`` runs ``bench/tune_gpu.py`` (see its docstring): adaptune against TRL ``SFTTrainer``
(padding-free, bf16) on a random Qwen2.5-1.5B-shaped model, tokens/s ratio (target ≥ 1.3×) and
MFU (target ≥ 30%, 6N and 4N + attention), and the peak GPU memory of a Llama-3-8B-shaped LoRA
with checkpointing at 2,048 tokens in bf16 (target ≤ 22 GiB) and in 4-bit (≤ 10 GiB); under 8
minutes on one H100/H200. ``--gpu --smoke`` runs every arm of it on CPU with tiny dims.

``--compile`` trains the CPU model with adaptune's loop, ``training.compile`` off and on (each
arm in its own process, 3 warm-up steps timed apart: the compilation), and prints the ratio.

Usage: python bench/tune.py [--steps 40] [--batch-size 16] | --compile | --gpu [--smoke]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu", action="store_true", help="the GPU benchmark (bench/tune_gpu.py)")
    parser.add_argument("--smoke", action="store_true", help="with --gpu: tiny dims on CPU")
    parser.add_argument("--compile", action="store_true", help="training.compile off vs on, CPU")
    parser.add_argument("--arm", choices=ARMS + COMPILE_ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        run = run_compile_arm if args.arm in COMPILE_ARMS else run_arm
        Path(args.out).write_text(json.dumps(run(args.arm, args.steps, args.batch_size)))
    elif args.compile:
        compile_bench(args.steps, args.batch_size)
    elif args.gpu:
        gpu_bench(args.smoke)
    else:
        cpu_bench(args.steps, args.batch_size)


if __name__ == "__main__":
    main()
