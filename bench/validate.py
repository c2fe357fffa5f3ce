"""Speed and peak memory of adaptune's validator against a pandas baseline, same run.

Generates a JSONL of 1,000,000 text-to-text records (about 300 MB) in a temporary directory,
then validates it twice, each in its own child process so each has its own peak RSS:

- adaptune: ``check_dataset`` (streaming orjson, chunked token counting, every check).
- baseline: what an engineer would write: ``pandas.read_json(lines=True)``, then per-row
  checks of the same rules (types, empty fields, duplicates, label counts) and token lengths
  of every input and output with the same tokenizer (its batch call), with percentiles.

adaptune tokenizes only the texts that could exceed a token limit (a byte bound, see
``adaptune/data/token_counting.py``) and a sample for the percentiles; the baseline tokenizes
every text. ``--count-every-text`` adds a third run of adaptune with the bound off, so the part
of the gain that comes from counting fewer texts is visible.

``--huge-record-mb N`` puts one valid record of N MB (its input far over max_input_tokens)
first in the file: adaptune counts it only as far as the limit needs, the baseline tokenizes it
whole, so the peak RSS then shows what one record costs each (the issue's figures: 1.15 GB for
5 MB and over 10 GB for 50 MB before adaptune bounded it).

Prints wall time and peak RSS (the child's own VmHWM) of each and the ratios; deletes the file
at the end.

Usage: python bench/validate.py [--records 1000000] [--base-model builtin:tiny-gpt2]
    [--count-every-text] [--huge-record-mb 5]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABELS = ("billing", "technical", "shipping", "account", "sales")
WORDS = [
    "order",
    "refund",
    "invoice",
    "charge",
    "card",
    "password",
    "login",
    "account",
    "shipping",
    "parcel",
    "delivery",
    "late",
    "broken",
    "screen",
    "laptop",
    "phone",
    "upgrade",
    "plan",
    "team",
    "demo",
    "price",
    "discount",
    "address",
    "email",
    "error",
    "page",
    "slow",
    "crash",
    "update",
    "install",
    "cancel",
    "subscription",
    "receipt",
    "tracking",
    "warehouse",
    "courier",
]


def generate(path: Path, records: int, seed: int = 0, huge_mb: float = 0) -> None:
    """Write ``records`` unique records of about 300 bytes each (after one of ``huge_mb`` MB)."""
    rng = random.Random(seed)
    fragments = [" ".join(rng.choices(WORDS, k=32)) for _ in range(997)]
    with path.open("w", encoding="utf-8") as f:
        if huge_mb:
            words = " ".join(rng.choices(WORDS, k=4096)) + " "
            text = words * max(1, int(huge_mb * 1e6 / len(words)))
            f.write(json.dumps({"input_text": text, "output_text": "billing"}) + "\n")
            del text
        for i in range(records):
            text = f"Ticket {i}: {fragments[i % 997]} {fragments[(i * 7) % 997][:20]}"
            f.write(json.dumps({"input_text": text, "output_text": LABELS[i % 5]}) + "\n")


def run_adaptune(path: str, base_model: str, count_every_text: bool = False) -> dict:
    from adaptune.base_models.tokenizer import load_fast_tokenizer
    from adaptune.data.token_counting import TokenCounter
    from adaptune.data.validation import check_dataset

    counter = TokenCounter(load_fast_tokenizer(base_model))
    if count_every_text:
        counter.slack = None  # no byte bound: every input and output is tokenized
    report, _ = check_dataset(path, None, base_model=base_model, counter=counter)
    return {
        "passed": report.passed,
        "examples": report.examples.get("train", 0),
        "input_p50": report.lengths["input"]["p50"],
        "input_max": report.lengths["input"]["max"],
        "input_max_exact": report.lengths["input"].get("max_exact", True),
    }


def run_baseline(path: str, base_model: str) -> dict:
    import numpy as np
    import pandas as pd

    from adaptune.base_models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(base_model)
    df = pd.read_json(path, lines=True, dtype=False)
    problems = []
    limits = {"input_text": 4096, "output_text": 1024}
    counts: dict[str, list[int]] = {name: [] for name in limits}
    for number, row in enumerate(df.itertuples(index=False), start=1):
        for name, limit in limits.items():
            value = getattr(row, name)
            if not isinstance(value, str):
                problems.append((number, f"{name} is not a string"))
            elif not value.strip():
                problems.append((number, f"{name} is empty"))
            else:
                n = len(tokenizer(value, add_special_tokens=False)["input_ids"])
                counts[name].append(n)
                if n > limit:
                    problems.append((number, f"{name} has {n} tokens, over {limit}"))
    duplicates = int(df.duplicated(subset=list(limits)).sum())
    lengths = {
        side: [*np.percentile(counts[name], [5, 50, 95]).tolist(), max(counts[name])]
        for side, name in (("input", "input_text"), ("output", "output_text"))
    }
    labels = df["output_text"].value_counts()
    return {
        "passed": not problems and not duplicates,
        "examples": len(df),
        "input_p50": lengths["input"][1],
        "input_max": lengths["input"][3],
        "labels": len(labels),
    }


def child(kind: str, path: str, base_model: str) -> None:
    start = time.perf_counter()
    if kind == "baseline":
        facts = run_baseline(path, base_model)
    else:
        facts = run_adaptune(path, base_model, count_every_text=kind == "adaptune-exact")
    facts["seconds"] = time.perf_counter() - start
    facts["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(facts))


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ``ru_maxrss`` would count the parent's at fork)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, path: Path, base_model: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--path",
            str(path),
            "--base-model",
            base_model,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--base-model", default="builtin:tiny-gpt2")
    parser.add_argument(
        "--count-every-text",
        action="store_true",
        help="Also time adaptune with the byte bound off (every text tokenized).",
    )
    parser.add_argument(
        "--huge-record-mb",
        type=float,
        default=0,
        help="Put one valid record of this many MB first (over the input token limit).",
    )
    parser.add_argument("--child", choices=("adaptune", "adaptune-exact", "baseline"))
    parser.add_argument("--path")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.base_model)
        return
    with tempfile.TemporaryDirectory(prefix="adaptune-bench-") as tmp:
        path = Path(tmp) / "data.jsonl"
        generate(path, args.records, huge_mb=args.huge_record_mb)
        size_mb = path.stat().st_size / 1e6
        huge = f", the first one of {args.huge_record_mb:g} MB" if args.huge_record_mb else ""
        print(f"data: {args.records:,} records{huge}, {size_mb:.0f} MB ({path})")
        runs = {"adaptune": measure("adaptune", path, args.base_model)}
        if args.count_every_text:
            runs["adaptune, every text tokenized"] = measure(
                "adaptune-exact", path, args.base_model
            )
        runs["baseline"] = base = measure("baseline", path, args.base_model)
    ours = runs["adaptune"]
    for name, facts in runs.items():
        print(
            f"{name}: {facts['seconds']:.1f} s  peak RSS {facts['peak_rss_mb']:7.0f} MB  "
            f"passed={facts['passed']} examples={facts['examples']:,} "
            f"input tokens p50={facts['input_p50']:g} "
            f"max={'' if facts.get('input_max_exact', True) else 'at least '}{facts['input_max']}"
        )
    speed = base["seconds"] / ours["seconds"]
    memory = base["peak_rss_mb"] / ours["peak_rss_mb"]
    print(f"speed-up: {speed:.1f}x (target >= 4x)")
    print(f"peak RSS: 1/{memory:.1f} of the baseline's (target: at most 1/6)")
    if "adaptune, every text tokenized" in runs:
        exact = runs["adaptune, every text tokenized"]
        print(
            f"with every text tokenized: {base['seconds'] / exact['seconds']:.1f}x faster, "
            f"peak RSS 1/{base['peak_rss_mb'] / exact['peak_rss_mb']:.1f}"
        )


if __name__ == "__main__":
    main()
