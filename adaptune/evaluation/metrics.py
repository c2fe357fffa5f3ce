"""Text metrics: exact match, ROUGE-L (rouge-score) and BLEU (sacrebleu)."""

from __future__ import annotations

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

METRICS = ("exact_match", "rouge_l", "bleu")
"""Metric names; each is in [0, 1] (BLEU is sacrebleu's score divided by 100)."""


def normalise(text: str) -> str:
    """Whitespace-normalised text, the form exact match compares."""
    return " ".join(text.split())


def score(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Score predictions against references.

    Args:
        predictions: Model outputs.
        references: Expected outputs, one per prediction.

    Returns:
        ``exact_match`` (share of whitespace-normalised equal pairs), ``rouge_l`` (mean
        ROUGE-L F1) and ``bleu`` (corpus BLEU / 100).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("nothing to score")
    exact = sum(normalise(p) == normalise(r) for p, r in zip(predictions, references, strict=True))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]
    bleu = BLEU(effective_order=True).corpus_score(predictions, [references]).score
    return {
        "exact_match": exact / len(references),
        "rouge_l": sum(rouge) / len(rouge),
        "bleu": bleu / 100.0,
    }
