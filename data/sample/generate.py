"""Generate the bundled sample: routing customer support tickets to a team.

Each record is in Vertex AI's text-to-text JSONL schema::

    {"input_text": "<the ticket>", "output_text": "<team>"}

The tickets are built from templates and slot fillers with a fixed seed, so running this
script again rewrites byte-identical files. Train and eval never share a ticket.

Usage:
    python data/sample/generate.py [--out data/sample] [--train 400] [--eval 80] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PRODUCTS = [
    "Pro plan",
    "Team plan",
    "starter kit",
    "smart thermostat",
    "wireless router",
    "desk lamp",
    "mobile app",
    "web dashboard",
    "annual subscription",
    "gift card",
    "travel mug",
    "backpack",
]
ORDER_PREFIXES = ["A", "B", "C", "K", "M", "Q"]
GREETINGS = ["", "Hi, ", "Hello, ", "Hey team, ", "Good morning, ", "Hi there, "]
CLOSINGS = ["", " Thanks.", " Thank you!", " Please help.", " Any advice?", " Cheers."]

TEMPLATES: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my {product} this month.",
        "my invoice for the {product} shows the wrong amount.",
        "can I get a refund for the {product}? I cancelled within the trial.",
        "the payment for order {order} failed but my card was still charged.",
        "please update the billing address on my {product} invoice.",
        "why did the price of my {product} go up without notice?",
        "I need a receipt for order {order} for my expense report.",
    ],
    "technical": [
        "the {product} keeps crashing when I open settings.",
        "I get error code {code} every time I log in to the {product}.",
        "the {product} stopped syncing after the last update.",
        "my {product} will not connect to wifi anymore.",
        "the {product} is very slow and pages time out.",
        "after updating, the {product} shows a blank screen.",
        "the {product} freezes when I upload a file.",
    ],
    "shipping": [
        "my order {order} has not arrived yet and tracking has not moved.",
        "the {product} arrived damaged, the box was crushed.",
        "can you change the delivery address for order {order}?",
        "tracking says order {order} was delivered but I never got it.",
        "how long does shipping take for the {product} to Canada?",
        "I received the wrong item instead of the {product} in order {order}.",
        "the courier left order {order} at the wrong house.",
    ],
    "account": [
        "I cannot reset my password, the email never comes.",
        "please delete my account and all my data.",
        "how do I change the email address on my account?",
        "my account was locked after too many login attempts.",
        "I want to add a second user to my {product} account.",
        "someone else may have access to my account, please help secure it.",
        "how do I turn on two factor authentication for my account?",
    ],
    "sales": [
        "do you offer a discount for 50 seats of the {product}?",
        "I would like a quote for the {product} for my company.",
        "can I talk to someone about upgrading to the {product}?",
        "is there an education discount on the {product}?",
        "we want to buy the {product} in bulk for our offices.",
        "what is the difference between the starter kit and the {product}?",
        "can we get a demo of the {product} for our team next week?",
    ],
}


def _ticket(rng: random.Random, template: str) -> str:
    body = template.format(
        product=rng.choice(PRODUCTS),
        order=f"{rng.choice(ORDER_PREFIXES)}-{rng.randint(1000, 9999)}",
        code=rng.randint(100, 599),
    )
    text = rng.choice(GREETINGS) + body + rng.choice(CLOSINGS)
    return text[0].upper() + text[1:]


def generate(n_train: int, n_eval: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Return train and eval records, balanced over teams and disjoint by ticket text.

    Args:
        n_train: Number of training records.
        n_eval: Number of evaluation records.
        seed: Seed of the random generator.

    Returns:
        The train records and the eval records.
    """
    rng = random.Random(seed)
    teams = sorted(TEMPLATES)
    seen: set[str] = set()
    records: list[dict] = []
    while len(records) < n_train + n_eval:
        team = teams[len(records) % len(teams)]
        text = _ticket(rng, rng.choice(TEMPLATES[team]))
        if text in seen:
            continue
        seen.add(text)
        records.append({"input_text": text, "output_text": team})
    rng.shuffle(records)
    return records[:n_train], records[n_train:]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def main() -> None:
    """Write train.jsonl and eval.jsonl."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--eval", type=int, default=80)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    train, evaluation = generate(args.train, args.eval, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(args.out / "train.jsonl", train)
    _write_jsonl(args.out / "eval.jsonl", evaluation)
    print(f"wrote {len(train)} train and {len(evaluation)} eval records to {args.out}")


if __name__ == "__main__":
    main()
