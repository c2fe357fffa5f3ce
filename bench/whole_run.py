"""Whole run, per task: the peak RSS of every task of ``adaptune run`` on a 0.5B-shaped model.

Builds, offline in a temporary directory, a random checkpoint of Qwen2-0.5B's shape (vocabulary
151,936, hidden 896, intermediate 4,864, 24 layers, 14 heads, 2 KV heads, tied embeddings)
saved in bf16, with the built-in byte-level tokenizer (808 tokens; the random model's ids
beyond it decode to nothing, which is harmless here: only memory is measured). Then runs the
whole pipeline the way a user does, in a child process::

    adaptune run --config configs/sample.yaml --base-model CHECKPOINT ...
        --train-steps 4 --batch-size 4 --set training.precision=P --set evaluation.precision=P

with the sample data (400 training records, all 80 eval records), a fresh runs directory and
registry in the temporary directory, and this worktree's compiled pipeline.

kfp.local's SubprocessRunner runs each task as ``sh -ec ... python3 -m kfp.dsl.executor_main
--function_to_execute F --executor_input JSON`` in a child process of ``adaptune run``. A
``sitecustomize.py`` put first on the run's ``PYTHONPATH`` registers an ``atexit`` hook in every
Python process of the run: at exit it appends the process's own peak RSS (VmHWM from
``/proc/self/status``, which a fork does not inherit) to a JSON-lines file, with the task's
name read from the executor input (the directory of its ``outputFile``, kfp.local's task
root). Every task that ran (each has a task root in the run's pipeline directory) must have a
record, or the script exits 1. On random weights the gate fails, so the DAG stops after
``passes-gate`` (``register-version`` and the Vertex steps do not run), as in a user's run.
The ``adaptune run`` process itself is printed too, as not a task.

Prints per task its peak RSS and the ratio against the target, 1.5 × the checkpoint's bf16
weight bytes + 1 GB (printed; about 2.5 GB), and the whole run's wall time (noisy on a shared
machine). Target: every task's peak ≤ 1.0× of it.

Precision: on a CPU, ``precision: auto`` trains and evaluates in fp32 (2 GB of weights alone for
this model), while the target is stated in bf16 weight bytes; so the measured arm runs with
``training.precision=bf16`` and ``evaluation.precision=bf16``. ``--precision auto`` runs the
default instead and ``--precision both`` runs both, one after the other (the auto arm is
informational: its figures are printed against the same target, not checked).

Usage: python bench/whole_run.py [--precision bf16|auto|both] [--eval-records 80]
    [--steps 4] [--batch-size 4] [--shape qwen2-0.5b|tiny] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "sample.yaml"
COMPILED = REPO / "compiled" / "adapter_tuning.yaml"
SAMPLE_EVAL = REPO / "data" / "sample" / "eval.jsonl"
SHAPES = {
    "qwen2-0.5b": {
        "vocab_size": 151936,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
    },
    # For a quick check of the script itself; its figures mean nothing against the target.
    "tiny": {
        "vocab_size": 4096,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}
GB = 1e9
LOG_ENV = "ADAPTUNE_BENCH_RSS_LOG"
HOOK = f'''"""Benchmark hook (bench/whole_run.py): record this process's peak RSS at exit."""
import atexit
import json
import os
import sys


def _adaptune_bench_record():
    try:
        argv = list(sys.argv)
        record = {{"pid": os.getpid(), "ppid": os.getppid(), "argv0": argv[0] if argv else ""}}
        if "--function_to_execute" in argv:
            record["function"] = argv[argv.index("--function_to_execute") + 1]
        if "--executor_input" in argv:
            executor_input = json.loads(argv[argv.index("--executor_input") + 1])
            output_file = executor_input["outputs"]["outputFile"]
            record["task"] = os.path.basename(os.path.dirname(output_file))
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    record["vm_hwm_kb"] = int(line.split()[1])
        with open(os.environ["{LOG_ENV}"], "a") as log:
            log.write(json.dumps(record) + "\\n")
    except Exception as exc:  # never break the process being measured
        sys.stderr.write(f"whole_run hook: {{exc!r}}\\n")


atexit.register(_adaptune_bench_record)
'''


def build_checkpoint(directory: Path, shape: str) -> int:
    """Save a random ``shape`` causal LM in bf16 with the built-in tokenizer; its weight bytes."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from adaptune.base_models.builtin import build_tokenizer

    tokenizer = build_tokenizer()
    config = Qwen2Config(
        **SHAPES[shape],
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # never an fp32 copy of the weights
    model = Qwen2ForCausalLM(config)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def weight_bytes(directory: Path) -> int:
    """Bytes of the checkpoint's tensors, as stored (bf16), from the safetensors headers."""
    total = 0
    for path in sorted(directory.glob("*.safetensors")):
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                assert entry["dtype"] == "BF16", f"{name} is {entry['dtype']}, not bf16"
                start, end = entry["data_offsets"]
                total += end - start
    return total


def dag_tasks(compiled: Path) -> list[str]:
    """The names of the tasks in the compiled pipeline, nested DAGs included."""
    import yaml

    spec = yaml.safe_load(compiled.read_text(encoding="utf-8"))
    dags = [spec["root"]["dag"]] + [
        c["dag"] for c in spec.get("components", {}).values() if "dag" in c
    ]
    names = []
    for dag in dags:
        for name, task in dag["tasks"].items():
            if (
                task["componentRef"]["name"] in spec.get("components", {})
                and "dag" not in (spec["components"][task["componentRef"]["name"]])
            ):
                names.append(name)
    return names


def run_pipeline(
    work: Path, checkpoint: Path, precision: str, steps: int, batch_size: int, eval_file: Path
) -> tuple[list[dict], float, Path, int]:
    """``adaptune run`` in a child process with the hook; the records, wall time, run dir, rc."""
    arm = work / f"arm-{precision}"
    hook = arm / "hook"
    hook.mkdir(parents=True)
    (hook / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    log = arm / "rss.jsonl"
    runs = arm / "runs"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(hook), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env[LOG_ENV] = str(log)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    command = [
        sys.executable,
        "-m",
        "adaptune",
        "run",
        "--config",
        str(CONFIG),
        "--compiled",
        str(COMPILED),
        "--base-model",
        str(checkpoint),
        "--eval-data",
        str(eval_file),
        "--train-steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--runs-dir",
        str(runs),
        "--registry-dir",
        str(arm / "registry"),
        "--set",
        f"training.precision={precision}",
        "--set",
        f"evaluation.precision={precision}",
    ]
    print(f"[{precision}] {' '.join(command[2:])}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=arm, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return records, wall, runs, done.returncode


def ran_tasks(runs: Path) -> list[str]:
    """The tasks kfp.local gave a task root (a directory under the run's pipeline root)."""
    roots = [p for p in runs.glob("*/pipeline/*/*") if p.is_dir()]
    return sorted({p.name for p in roots})


def report(precision: str, records: list[dict], tasks: list[str], target: float) -> bool:
    """Print the per-task table; whether every task is within the target."""
    by_task = {r["task"]: r for r in records if "task" in r}
    missing = [t for t in tasks if t not in by_task]
    if missing:
        raise SystemExit(f"[{precision}] no peak RSS recorded for task(s): {', '.join(missing)}")
    print(f"\n[{precision}] peak RSS per task (VmHWM of its own process; target <= 1.00x)")
    within = True
    for name in tasks:
        record = by_task[name]
        peak = record["vm_hwm_kb"] * 1024
        ratio = peak / target
        within &= ratio <= 1.0
        print(
            f"  {name:22} {record.get('function', '?'):22} {peak / 1e6:8,.0f} MB  "
            f"{ratio:5.2f}x  {'ok' if ratio <= 1.0 else 'OVER'}"
        )
    others = [r for r in records if "task" not in r]
    for record in others:
        name = Path(record["argv0"]).name
        print(f"  (not a task: {name}) {record['vm_hwm_kb'] * 1024 / 1e6:8,.0f} MB")
    return within


def main() -> None:
    """Build the checkpoint, run each arm, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["bf16", "auto", "both"], default="bf16")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--eval-records", type=int, default=80, help="First N of the sample's 80.")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2-0.5b")
    parser.add_argument("--keep", type=Path, help="Work here (kept) instead of a temp dir.")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # child: build only
    args = parser.parse_args()
    if args.build:
        print(build_checkpoint(args.build, args.shape))
        return
    work = Path(tempfile.mkdtemp(prefix="whole-run-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        checkpoint = work / "checkpoint"
        built = subprocess.run(
            [sys.executable, __file__, "--build", str(checkpoint), "--shape", args.shape],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        weights = weight_bytes(checkpoint)
        assert weights == int(built.stdout.split()[-1]), "saved bytes differ from the model's"
        target = 1.5 * weights + 1 * GB
        eval_rows = SAMPLE_EVAL.read_text(encoding="utf-8").splitlines()[: args.eval_records]
        eval_file = work / "eval.jsonl"
        eval_file.write_text("\n".join(eval_rows) + "\n", encoding="utf-8")
        print(
            f"checkpoint: random {args.shape}, bf16 weights {weights / GB:.3f} GB "
            f"({weights:,} bytes); target per task 1.5 x weights + 1 GB = {target / GB:.3f} GB"
        )
        print(
            f"run: {args.steps} steps of batch {args.batch_size}, sample train data, "
            f"{len(eval_rows)} eval records"
        )
        arms = ["bf16", "auto"] if args.precision == "both" else [args.precision]
        passed = True
        for precision in arms:
            records, wall, runs, rc = run_pipeline(
                work, checkpoint, precision, args.steps, args.batch_size, eval_file
            )
            tasks = ran_tasks(runs)
            known = set(dag_tasks(COMPILED))
            assert tasks and set(tasks) <= known, f"unexpected task roots {tasks} (DAG: {known})"
            within = report(precision, records, tasks, target)
            print(f"[{precision}] whole run: {wall:,.0f} s wall, exit code {rc}")
            if rc:
                raise SystemExit(f"[{precision}] adaptune run failed (exit code {rc})")
            if precision == "bf16":
                passed &= within
        print("PASS" if passed else "FAIL", "(every task <= 1.5 x bf16 weights + 1 GB, bf16 arm)")
        if not passed:
            sys.exit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
