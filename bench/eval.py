"""Evaluation speed: adaptune's batched generation against one ``model.generate`` per example.

Builds an eval set of a few hundred support tickets with ``data/sample/generate.py`` (another
seed than the bundled sample), tunes a LoRA adapter on ``builtin:tiny-gpt2`` briefly (150
steps, as the test fixture does), then answers every eval prompt with the tuned model and with
the base model (the adapter disabled), the way ``evaluate_models`` does, in two ways:

* ``batched``: :func:`adaptune.evaluation.generation.generate` with the default evaluation
  settings (greedy, batches of 32 prompts of similar length, padded on the left);
* ``one_by_one``: what an engineer would write first: one ``model.generate`` call per prompt
  (same tokenisation, no padding), greedy.

Both run in this process on the same model, each after a warm-up; each is timed ``--repeats``
times, the two taking turns, and its fastest pass counts (other work on a shared machine
only ever slows a pass).
The answers of the two must be identical, example by example; the script exits 1 when any
differs or the speed-up misses the target. Prints wall times, the speed-up and PASS/FAIL
against the 8x target.

Usage: python bench/eval.py [--examples 400] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from adaptune.base_models import load_base_model
from adaptune.data.encoding import encode_prompt
from adaptune.data.formatting import DEFAULT_TEMPLATE, apply_template
from adaptune.data.jsonl import write_jsonl
from adaptune.evaluation.evaluate import evaluate_models
from adaptune.evaluation.generation import generate, new_token_budget
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.tuning.adapter import tune_adapter
from adaptune.tuning.loading import load_tuned_model
from adaptune.tuning.methods import LoraMethod
from adaptune.tuning.settings import TrainingSettings

BASE_MODEL = "builtin:tiny-gpt2"
TARGET = 8.0
SAMPLE_GENERATOR = Path(__file__).resolve().parent.parent / "data" / "sample" / "generate.py"


def make_pairs(n_train: int, n_eval: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Formatted train and eval pairs from the sample's ticket generator."""
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE_GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    train, evaluation = module.generate(n_train, n_eval, seed)

    def pairs(records: list[dict]) -> list[dict]:
        return [
            {
                "prompt": apply_template(DEFAULT_TEMPLATE, r["input_text"]),
                "target": r["output_text"],
            }
            for r in records
        ]

    return pairs(train), pairs(evaluation)


@torch.inference_mode()
def one_by_one(model, tokenizer, prompts: list[str], max_new_tokens: int, max_length: int):
    """One greedy ``model.generate`` call per prompt."""
    answers = []
    for prompt in prompts:
        ids = torch.tensor([encode_prompt(tokenizer, prompt, max_length)])
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        answers.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    return answers


def fastest(
    arms: dict[str, Callable[[], list[str]]], repeats: int
) -> dict[str, tuple[float, list[str]]]:
    """Each arm's fastest of ``repeats`` timed runs, and its answers (the same every run).

    The arms take turns, so a burst of other work on a shared machine slows both alike.
    """
    best: dict[str, tuple[float, list[str]]] = {}
    for _ in range(repeats):
        for name, run in arms.items():
            start = time.perf_counter()
            answers = run()
            seconds = time.perf_counter() - start
            if name in best and answers != best[name][1]:
                raise SystemExit(f"{name}: the answers changed from one run to the next")
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, answers)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=400, help="eval examples")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per arm")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.threads))
    settings = EvaluationSettings()
    train, evaluation = make_pairs(400, args.examples, seed=11)
    prompts = [p["prompt"] for p in evaluation]
    references = [p["target"] for p in evaluation]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jsonl(root / "train.jsonl", train)
        write_jsonl(root / "eval.jsonl", evaluation)
        started = time.perf_counter()
        tune_adapter(
            root / "train.jsonl",
            root / "adapter",
            BASE_MODEL,
            TrainingSettings(steps=150),
            LoraMethod(),
            show_progress=False,
        )
        print(f"adapter: LoRA on {BASE_MODEL}, 150 steps in {time.perf_counter() - started:.1f} s")
        base = load_base_model(BASE_MODEL)
        model = load_tuned_model(base.model, root / "adapter")
        tokenizer = base.tokenizer
        budget = new_token_budget(tokenizer, references, settings.max_new_tokens)
        print(
            f"eval set: {len(prompts)} examples, max_new_tokens {budget}, "
            f"batch size {settings.batch_size}, {torch.get_num_threads()} threads"
        )

        def batched() -> list[str]:
            return generate(
                model,
                tokenizer,
                prompts,
                base.family,
                budget,
                max_length=settings.max_length,
                batch_size=settings.batch_size,
                show_progress=False,
            )

        def single() -> list[str]:
            return one_by_one(model, tokenizer, prompts, budget, settings.max_length)

        totals = {"batched": 0.0, "one_by_one": 0.0}
        mismatches = 0
        for name in ("tuned", "base"):
            with model.disable_adapter() if name == "base" else contextlib.nullcontext():
                generate(model, tokenizer, prompts[:8], base.family, budget, show_progress=False)
                one_by_one(model, tokenizer, prompts[:2], budget, settings.max_length)
                timed = fastest({"batched": batched, "one_by_one": single}, args.repeats)
            batched_s, batched_answers = timed["batched"]
            single_s, single_answers = timed["one_by_one"]
            totals["batched"] += batched_s
            totals["one_by_one"] += single_s
            differ = [
                i
                for i, (a, b) in enumerate(zip(batched_answers, single_answers, strict=True))
                if a != b
            ]
            mismatches += len(differ)
            exact = sum(a == r for a, r in zip(batched_answers, references, strict=True)) / len(
                references
            )
            print(
                f"{name:6} batched {batched_s:6.2f} s   one_by_one {single_s:6.2f} s   "
                f"speed-up {single_s / batched_s:5.2f}x   identical answers "
                f"{len(prompts) - len(differ)}/{len(prompts)}   exact match {exact:.3f}"
            )
            for i in differ[:3]:
                print(f"  differs at {i}: batched {batched_answers[i]!r} vs {single_answers[i]!r}")
        ratio = totals["one_by_one"] / totals["batched"]
        print(
            f"total  batched {totals['batched']:6.2f} s   one_by_one {totals['one_by_one']:6.2f} s"
        )
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(f"speed-up batched / one_by_one: {ratio:.2f}x (target >= {TARGET:g}x) {verdict}")
        started = time.perf_counter()
        evaluate_models(
            root / "eval.jsonl",
            root / "adapter",
            BASE_MODEL,
            root / "out",
            settings=settings,
            show_progress=False,
        )
        print(
            f"evaluate_models (base + tuned: answers, eval loss, metrics, report): "
            f"{time.perf_counter() - started:.2f} s"
        )
    if mismatches:
        print(f"FAIL: {mismatches} answers differ between batched and one-by-one generation")
        sys.exit(1)
    print("identical answers: PASS")
    if ratio < TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
