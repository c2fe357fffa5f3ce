"""Tokens/s of adaptune's tuning loop against Hugging Face ``Trainer`` + PEFT, same run.

The baseline is what a user writes: ``Trainer`` with default arguments and a collator that pads
each batch to its longest member. Both train the same LoRA on the same built-in tiny GPT-2 and
the same data of varied lengths (the bundled sample, templated), for the same steps and batch
size, on CPU. Prints real
(non-padding) tokens/s of each and their ratio.

Usage: python bench/tune.py [--steps 60] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from peft import get_peft_model
from transformers import Trainer, TrainingArguments

from adaptune.models import load_base_model
from adaptune.tuning.encoding import collate, encode_example
from adaptune.tuning.loop import train
from adaptune.tuning.lora import LoraSettings
from adaptune.tuning.settings import TrainingSettings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "train.jsonl"


def load_examples(tokenizer, family):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    return [
        encode_example(
            tokenizer, f"Ticket: {r['input_text']}\nTeam:", r["output_text"], family, 256
        )
        for r in rows
    ]


def bench_adaptune(steps: int, batch_size: int) -> float:
    base = load_base_model("builtin:tiny-gpt2")
    examples = load_examples(base.tokenizer, base.family)
    torch.manual_seed(0)
    model = get_peft_model(base.model, LoraSettings().to_peft(base.family))
    history = train(
        model,
        examples,
        TrainingSettings(steps=steps, batch_size=batch_size),
        base.tokenizer.pad_token_id,
        base.family,
        show_progress=False,
    )
    return history.tokens / history.wall_seconds


class _Rows(torch.utils.data.Dataset):
    def __init__(self, examples):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


def bench_trainer(steps: int, batch_size: int, tmp: Path) -> float:
    base = load_base_model("builtin:tiny-gpt2")
    examples = load_examples(base.tokenizer, base.family)
    torch.manual_seed(0)
    model = get_peft_model(base.model, LoraSettings().to_peft(base.family))
    real_tokens = 0

    def collator(batch):
        nonlocal real_tokens
        real_tokens += sum(len(e.input_ids) for e in batch)
        return collate(batch, base.tokenizer.pad_token_id, base.family)

    args = TrainingArguments(
        output_dir=str(tmp),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=3e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Rows(examples), data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    return real_tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trainer = bench_trainer(args.steps, args.batch_size, Path(tmp))
    ours = bench_adaptune(args.steps, args.batch_size)
    print(f"HF Trainer + PEFT, default arguments (dynamic padding): {trainer:,.0f} real tokens/s")
    print(f"adaptune (length-grouped batches):                     {ours:,.0f} real tokens/s")
    print(f"ratio adaptune / Trainer: {ours / trainer:.2f}x")


if __name__ == "__main__":
    main()
