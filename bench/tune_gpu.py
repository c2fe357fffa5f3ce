"""GPU tuning benchmark (``python bench/tune.py --gpu``): speed against TRL, and 8B memory.

One prepared script, budgeted to finish in under 8 minutes on one H100/H200; every arm runs in a
child process of its own (CUDA peaks are per process) and the elapsed time is printed after each.
The arms of the targets run first (``trl``, ``adaptune``, the two 8B arms), then the packed and
compiled ones; each arm is stopped past its own limit (90 s; 120 s for writing and for loading
the 8B checkpoint, 150 s for the compiled arm, imports and compilation included) and arms that
would start with under 20 s of the 470 s budget left are skipped, so the run ends in time and
says what it did not measure.

(a) **Speed**, on the same random Qwen2.5-1.5B-shaped model (hidden 1536, intermediate 8960, 28
    layers, 12 heads, 2 KV heads, vocabulary 151,936) built in bf16 on the GPU, the same LoRA
    (r=16, alpha 32, all linear layers), the same random examples (64–1,024 tokens, the last
    16–128 of them the target), batch 16, the same steps after the same warm-up, no activation
    checkpointing in any arm, flash-attention when ``flash-attn`` is installed, else SDPA:

    * ``trl``: TRL ``SFTTrainer`` in its padding-free mode (bf16, completion-only loss);
    * ``adaptune``: adaptune's loop (``adaptune.tuning.loop.train``), padded length-grouped
      batches (``training.packing`` false, no token cap);
    * ``adaptune_packed``: ``training.packing`` true (each batch one padding-free row);
    * ``adaptune_compiled``: packed, and ``training.compile`` true.

    Prints real (non-padding) tokens/s per arm, each adaptune arm's ratio to TRL (target ≥ 1.3×)
    and MFU (target ≥ 30%) in two conventions: 6N (6 × matmul parameters per token, as if every
    weight got a gradient) and 4N + attention (a LoRA step's forward and input-gradient passes
    through the frozen weights, plus the attention scores). Peak: the GPU's dense bf16 TFLOP/s.

(b) **8B memory, bf16**: a random Llama-3-8B-shaped model (hidden 4096, intermediate 14,336, 32
    layers, 32 heads, 8 KV heads, vocabulary 128,256) built straight on the GPU in bf16, LoRA
    r=16 all-linear, gradient checkpointing on, batch 1 of 2,048 tokens, through adaptune's
    loop: peak ``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` (target ≤ 22 GiB).

(c) **8B memory, 4-bit**: the same model saved once as a bf16 checkpoint (``prepare_8b``, in its
    own process: built on the GPU, written in 4 GB shards to a temporary directory), then
    loaded by adaptune's own path (``load_base_model(..., quantize="4bit")``: bitsandbytes nf4
    with double quantisation, bf16 compute; ``apply_method``: PEFT's k-bit preparation) and
    trained as in (b): peak memory (target ≤ 10 GiB).

``--smoke`` runs every arm on the CPU with tiny dimensions and a few steps, to prove the script
runs where no GPU is; its figures mean nothing.

``--steps N`` overrides the timed steps of the speed arms (20; smoke 2), e.g. to measure
``training.compile`` on CPU: ``--smoke --only adaptune_packed adaptune_compiled --steps 30``.

Usage: python bench/tune.py --gpu [--smoke]
       python bench/tune_gpu.py [--smoke] [--only ARM ...] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QWEN25_15B = {
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
}
LLAMA3_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
}
TINY = {
    "vocab_size": 1000,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
SPEED_ARMS = ("trl", "adaptune", "adaptune_packed", "adaptune_compiled")
MEMORY_ARMS = ("lora8b_bf16", "prepare_8b", "lora8b_4bit")
ARMS = ("trl", "adaptune", "lora8b_bf16", "prepare_8b", "lora8b_4bit")
ARMS += ("adaptune_packed", "adaptune_compiled")  # run order: the targets' arms first
BUDGET_S = 470
"""The whole run's wall-clock budget (8 minutes less a margin): an arm that would run past it
is stopped and reported as timed out, and later arms are skipped."""
ARM_LIMIT_S = {"adaptune_compiled": 150, "prepare_8b": 120, "lora8b_4bit": 120}
"""Most seconds one arm may take (90 for the others), process start and imports included."""
PLAN = {  # (full run, smoke run) per knob
    "batch_size": (16, 4),
    "max_length": (1024, 96),
    "warm_steps": (3, 1),
    "steps": (20, 2),
    "memory_length": (2048, 128),
    "memory_steps": (3, 1),
}
TARGETS = {"ratio": 1.3, "mfu": 0.30, "bf16_gib": 22.0, "4bit_gib": 10.0}
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12}
LORA = {"r": 16, "alpha": 32}


STEPS_ENV = "ADAPTUNE_BENCH_STEPS"


def knob(name: str, smoke: bool) -> int:
    """The value of a plan knob for a full or a smoke run (``--steps`` overrides ``steps``)."""
    if name == "steps" and os.environ.get(STEPS_ENV):
        return int(os.environ[STEPS_ENV])
    return PLAN[name][1 if smoke else 0]


def device_of(smoke: bool):
    """The torch device an arm runs on: CPU for a smoke run, else the CUDA GPU."""
    import torch

    if smoke:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("bench/tune.py --gpu needs a CUDA GPU (use --smoke to try it on CPU)")
    return torch.device("cuda")


def attention_here(device) -> str:
    """flash_attention_2 on a GPU with flash-attn installed, else sdpa (adaptune's auto)."""
    import torch

    from adaptune.base_models.attention import resolve_attention

    return resolve_attention("auto", device, torch.bfloat16, "bench")


def random_model(kind: str, dims: dict, device, attention: str):
    """A random-initialised causal LM of ``dims`` built straight on ``device`` in bf16."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_class, model_class = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "llama": (LlamaConfig, LlamaForCausalLM),
    }[kind]
    config = config_class(
        **dims,
        max_position_embeddings=4096,
        tie_word_embeddings=kind == "qwen2",
        attn_implementation=attention,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = model_class(config)
    finally:
        torch.set_default_dtype(default)
    return model


def matmul_parameters(model) -> int:
    """Parameters that take part in matrix products (the input embedding is a lookup)."""
    embedding = model.get_input_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    tied = model.get_output_embeddings().weight is embedding
    return total - (0 if tied else embedding.numel())


def random_examples(vocab: int, count: int, max_length: int, seed: int = 0):
    """``count`` examples of random ids, 64–``max_length`` tokens, the last 16–128 the target."""
    from adaptune.data.encoding import IGNORE_INDEX, Encoded

    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        length = rng.randint(min(64, max_length // 2), max_length)
        target = min(length - 1, rng.randint(16, 128))
        ids = [rng.randrange(10, vocab) for _ in range(length)]
        examples.append(Encoded(ids, [IGNORE_INDEX] * (length - target) + ids[-target:]))
    return examples


def full_length_examples(vocab: int, count: int, length: int, target: int = 128):
    """``count`` examples of exactly ``length`` random ids, the last ``target`` the target."""
    from adaptune.data.encoding import IGNORE_INDEX, Encoded

    rng = random.Random(2)
    examples = []
    for _ in range(count):
        ids = [rng.randrange(10, vocab) for _ in range(length)]
        examples.append(Encoded(ids, [IGNORE_INDEX] * (length - target) + ids[-target:]))
    return examples


def target_fraction(examples) -> float:
    """Target tokens per token of the examples."""
    return sum(e.target_tokens for e in examples) / sum(len(e.input_ids) for e in examples)


def synchronize(device) -> None:
    """Wait for the GPU's queued work (nothing on CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peaks(device) -> dict[str, float]:
    """This process's peak memory: the GPU's allocated and reserved bytes, and its RSS, in GiB."""
    import torch

    figures = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.type == "cuda":
        figures["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        figures["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    return figures


def adaptune_speed(arm: str, smoke: bool) -> dict:
    """One adaptune arm of (a): warm-up steps, then timed steps; real tokens and seconds."""
    from adaptune.tuning.loading import apply_method
    from adaptune.tuning.loop import train
    from adaptune.tuning.methods import LoraMethod
    from adaptune.tuning.settings import TrainingSettings

    device = device_of(smoke)
    dims = TINY if smoke else QWEN25_15B
    attention = attention_here(device)
    model = random_model("qwen2", dims, device, attention)
    n_matmul = matmul_parameters(model)
    model = apply_method(model, LoraMethod(**LORA), "causal")
    batch, length = knob("batch_size", smoke), knob("max_length", smoke)
    examples = random_examples(dims["vocab_size"], 4000 if not smoke else 64, length)
    packed = arm in ("adaptune_packed", "adaptune_compiled")
    common = {
        "batch_size": batch,
        "eval_every": 0,
        "checkpoint_every": 0,
        "max_length": length,
        "learning_rate": 1e-4,
        "gradient_checkpointing": False,
        "packing": packed,
        "max_batch_tokens": batch * length if packed else 0,  # one row; no cap when padded
        "compile": arm == "adaptune_compiled",
    }
    warm = TrainingSettings(steps=knob("warm_steps", smoke), **common)
    train(model, examples, [], warm, 0, "causal", show_progress=False)  # compiles, if at all
    synchronize(device)
    timed = TrainingSettings(steps=knob("steps", smoke), seed=1, **common)
    start = time.perf_counter()
    result = train(model, examples, [], timed, 0, "causal", show_progress=False)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "tokens": result.state.tokens,
        "seconds": seconds,
        "n_matmul": n_matmul,
        "attention": attention,
        "steps": result.state.step,
        "target_fraction": target_fraction(examples),
        **peaks(device),
    }


def trl_speed(smoke: bool) -> dict:
    """TRL ``SFTTrainer``, padding-free, on the same model, LoRA and data as adaptune's arms."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from adaptune.base_models.builtin import build_tokenizer

    device = device_of(smoke)
    dims = TINY if smoke else QWEN25_15B
    attention = attention_here(device)
    model = random_model("qwen2", dims, device, attention)
    n_matmul = matmul_parameters(model)
    batch, length = knob("batch_size", smoke), knob("max_length", smoke)
    warm_steps, steps = knob("warm_steps", smoke), knob("steps", smoke)
    examples = random_examples(dims["vocab_size"], 4000 if not smoke else 64, length)
    rows = {
        "input_ids": [e.input_ids for e in examples],
        "completion_mask": [[int(t != -100) for t in e.labels] for e in examples],
    }
    counted = {"tokens": 0, "start": 0.0, "seconds": 0.0}

    class Counting(SFTTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if self.state.global_step >= warm_steps:  # padding-free: one row, no padding
                counted["tokens"] += int(inputs["input_ids"].numel())
            return super().compute_loss(model, inputs, *args, **kwargs)

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warm_steps:
                synchronize(device)
                counted["start"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            synchronize(device)
            counted["seconds"] = time.perf_counter() - counted["start"]

    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            output_dir=tmp,
            max_steps=warm_steps + steps,
            per_device_train_batch_size=batch,
            learning_rate=1e-4,
            bf16=True,
            padding_free=True,
            completion_only_loss=True,
            max_length=None,  # padding-free without packing refuses one; inputs fit already
            gradient_checkpointing=False,  # as adaptune's arms: the same compute per token
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=device.type == "cpu",
            seed=0,
        )
        peft = LoraConfig(
            r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0, target_modules="all-linear"
        )
        trainer = Counting(
            model=model,
            args=config,
            train_dataset=Dataset.from_dict(rows),
            peft_config=peft,
            processing_class=build_tokenizer(),  # data is pre-encoded: only its pad id is used
            callbacks=[Clock()],
        )
        trainer.train()
    assert counted["tokens"] > 0, "TRL trained on no counted tokens"
    return {
        "tokens": counted["tokens"],
        "seconds": counted["seconds"],
        "n_matmul": n_matmul,
        "attention": attention,
        "steps": steps,
        "target_fraction": target_fraction(examples),
        **peaks(device),
    }


def memory_8b(arm: str, smoke: bool, checkpoint: str | None) -> dict:
    """(b) or (c): LoRA with checkpointing at the memory length; this process's peak memory."""
    import torch

    from adaptune.base_models import load_base_model
    from adaptune.tuning.loading import apply_method
    from adaptune.tuning.loop import train
    from adaptune.tuning.methods import LoraMethod
    from adaptune.tuning.settings import TrainingSettings

    device = device_of(smoke)
    dims = TINY if smoke else LLAMA3_8B
    attention = attention_here(device)
    quantize = "4bit" if arm == "lora8b_4bit" else "none"
    if quantize == "none":
        model = random_model("llama", dims, device, attention)
    else:  # adaptune's own loading path: bitsandbytes quantises while loading the checkpoint
        base = load_base_model(checkpoint, torch.bfloat16, "4bit", device, attention)
        model = base.model
        assert any(type(m).__name__ == "Linear4bit" for m in model.modules()), "not 4-bit"
    loaded = peaks(device)
    model = apply_method(model, LoraMethod(**LORA, quantize=quantize), "causal").to(device)
    length = knob("memory_length", smoke)
    examples = full_length_examples(dims["vocab_size"], 16, length)
    settings = TrainingSettings(
        steps=knob("memory_steps", smoke),
        batch_size=1,
        eval_every=0,
        checkpoint_every=0,
        max_length=length,
        max_batch_tokens=length,
        learning_rate=1e-4,
        gradient_checkpointing=True,
    )
    start = time.perf_counter()
    result = train(model, examples, [], settings, 0, "causal", show_progress=False)
    synchronize(device)
    return {
        "quantize": quantize,
        "attention": attention,
        "seconds": time.perf_counter() - start,
        "tokens": result.state.tokens,
        "loaded_allocated_gib": loaded.get("peak_allocated_gib", 0.0),
        **peaks(device),
    }


def prepare_8b(smoke: bool, checkpoint: str) -> dict:
    """Save the random 8B-shaped model as a bf16 checkpoint for the 4-bit arm to load."""
    from adaptune.base_models.builtin import build_tokenizer

    device = device_of(smoke)
    dims = TINY if smoke else LLAMA3_8B
    start = time.perf_counter()
    model = random_model("llama", dims, device, "sdpa")
    model.save_pretrained(checkpoint, max_shard_size="4GB")
    build_tokenizer().save_pretrained(checkpoint)  # the data is pre-encoded ids: any tokenizer
    return {"seconds": time.perf_counter() - start, **peaks(device)}


def run_arm(arm: str, smoke: bool, checkpoint: str | None) -> dict:
    """Run one arm in this process."""
    if arm == "trl":
        return trl_speed(smoke)
    if arm in SPEED_ARMS:
        return adaptune_speed(arm, smoke)
    if arm == "prepare_8b":
        return prepare_8b(smoke, checkpoint or "")
    return memory_8b(arm, smoke, checkpoint)


def measure(arm: str, smoke: bool, checkpoint: str | None, limit: float) -> dict | None:
    """Run one arm in a child process of its own (stopped after ``limit`` seconds).

    Returns:
        Its figures, or None when it failed or ran out of time.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        command = [sys.executable, __file__, "--arm", arm, "--out", out.name]
        command += ["--smoke"] * smoke + (["--checkpoint", checkpoint] if checkpoint else [])
        try:
            code = subprocess.run(command, check=False, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            print(f"arm {arm} stopped: it ran past its {limit:.0f} s")
            return None
        if code:
            print(f"arm {arm} failed with exit code {code}")
            return None
        return json.loads(Path(out.name).read_text())


def peak_flops(smoke: bool) -> tuple[str, float]:
    """The GPU's name and dense bf16 FLOP/s (H100's for an unknown GPU or a smoke run)."""
    import torch

    if smoke or not torch.cuda.is_available():
        return "cpu (smoke: MFU against an H100's peak, meaningless)", PEAK_BF16["H100"]
    name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16.items():
        if key in name:
            return name, value
    return f"{name} (unknown: H100's peak assumed)", PEAK_BF16["H100"]


def mfu(figures: dict, dims: dict, peak: float) -> tuple[float, float]:
    """MFU in the 6N and the 4N + attention conventions.

    6N: 6 FLOPs per matmul parameter per token (every weight as if it got a gradient; the
    output head at every token). 4N + attention: a LoRA step's forward (2N) and input-gradient
    (2N) passes through the frozen weights, the output head only at target positions (the work
    the loss needs), plus the attention scores: QK^T and AV, 4 × seq × hidden FLOPs per token
    per layer in the forward, halved by the causal mask, tripled for forward and backward.
    """
    per_second = figures["tokens"] / figures["seconds"]
    head = dims["vocab_size"] * dims["hidden_size"]
    body = figures["n_matmul"] - head
    layers, hidden = dims["num_hidden_layers"], dims["hidden_size"]
    attention = 4 * layers * figures["mean_length"] * hidden / 2 * 3
    four_n = 4 * body + 4 * head * figures["target_fraction"] + attention
    return per_second * 6 * figures["n_matmul"] / peak, per_second * four_n / peak


def gpu_bench(smoke: bool = False, only: list[str] | None = None) -> None:
    """Every arm in its own process, the elapsed time after each, then the figures."""
    began = time.perf_counter()
    arms = [a for a in ARMS if not only or a in only]
    if "lora8b_4bit" in arms and "prepare_8b" not in arms:
        arms.insert(arms.index("lora8b_4bit"), "prepare_8b")
    name, peak = peak_flops(smoke)
    print(f"device: {name}; {'smoke run (tiny dims, CPU)' if smoke else 'full run'}")
    results: dict[str, dict | None] = {}
    with tempfile.TemporaryDirectory(prefix="adaptune-8b-") as tmp:
        checkpoint = str(Path(tmp) / "llama8b")
        for arm in arms:
            left = BUDGET_S - (time.perf_counter() - began)
            if left < 20 and not smoke:
                print(f"arm {arm} skipped: {left:.0f} s of the budget left")
                results[arm] = None
                continue
            limit = ARM_LIMIT_S.get(arm, 90)
            limit = 3 * limit if smoke else min(limit, left)  # a smoke run is only checked
            results[arm] = measure(arm, smoke, checkpoint if "8b" in arm else None, limit)
            print(f"[{time.perf_counter() - began:6.1f} s] {arm} done", flush=True)
    dims = TINY if smoke else QWEN25_15B
    batch, steps = knob("batch_size", smoke), knob("steps", smoke)
    speed = {a: r for a, r in results.items() if a in SPEED_ARMS and r}
    shape = "tiny (smoke)" if smoke else "Qwen2.5-1.5B-shaped"
    print(f"\n(a) {shape}, bf16, LoRA r=16 all-linear, batch {batch}, {steps} steps")
    for arm, r in speed.items():
        r["mean_length"] = r["tokens"] / (r["steps"] * batch)
        six, four = mfu(r, dims, peak)
        print(
            f"  {arm:18} {r['tokens'] / r['seconds']:10,.0f} real tokens/s "
            f"({r['tokens']:,} in {r['seconds']:.1f} s, {r['attention']})  "
            f"MFU 6N {six:.1%}, 4N+attention {four:.1%} (target >= {TARGETS['mfu']:.0%})  "
            f"peak {r.get('peak_allocated_gib', 0):.1f} GiB"
        )
    if "trl" in speed:
        trl = speed["trl"]["tokens"] / speed["trl"]["seconds"]
        for arm, r in speed.items():
            if arm != "trl":
                ratio = r["tokens"] / r["seconds"] / trl
                print(f"  {arm} / trl: {ratio:.2f}x (target >= {TARGETS['ratio']}x)")
    shape = "tiny (smoke)" if smoke else "Llama-3-8B-shaped"
    print(
        f"\n(b), (c) {shape} LoRA r=16, checkpointing, batch 1 x "
        f"{knob('memory_length', smoke)} tokens"
    )
    for arm, target in (("lora8b_bf16", "bf16_gib"), ("lora8b_4bit", "4bit_gib")):
        r = results.get(arm)
        if r:
            print(
                f"  {arm:12} peak allocated {r.get('peak_allocated_gib', 0):5.1f} GiB, "
                f"reserved {r.get('peak_reserved_gib', 0):5.1f} GiB "
                f"(target <= {TARGETS[target]:.0f} GiB); after loading "
                f"{r['loaded_allocated_gib']:.1f} GiB; peak RSS {r['peak_rss_gib']:.1f} GiB; "
                f"{r['tokens']:,} tokens in {r['seconds']:.1f} s"
            )
    failed = [a for a, r in results.items() if r is None]
    print(f"\nelapsed {time.perf_counter() - began:.1f} s (target < 480 s on an H100/H200)")
    if failed:
        raise SystemExit(f"arms failed: {', '.join(failed)}")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line: the whole benchmark, or one arm (in a child process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny dims on CPU: proves it runs")
    parser.add_argument("--only", nargs="+", choices=ARMS, help="run only these arms")
    parser.add_argument("--steps", type=int, help="timed steps of the speed arms")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps:  # children read it from the environment
        os.environ[STEPS_ENV] = str(args.steps)
    if args.arm:
        if args.smoke:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        figures = run_arm(args.arm, args.smoke, args.checkpoint)
        Path(args.out).write_text(json.dumps(figures))
    else:
        gpu_bench(args.smoke, args.only)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
