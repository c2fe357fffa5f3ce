"""Text metrics: exact match, ROUGE-L (rouge-score), BLEU and chrF (sacrebleu)."""

from __future__ import annotations

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

METRICS = ("exact_match", "rouge_l", "bleu", "chrf")
"""Text metric names; each is in [0, 1] (BLEU and chrF are sacrebleu's scores divided by 100)."""


def normalise(text: str) -> str:
    """Whitespace-normalised text, the form exact match compares."""
    return " ".join(text.split())


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("nothing to score")


def score(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Score predictions against references.

    Args:
        predictions: Model outputs.
        references: Expected outputs, one per prediction.

    Returns:
        ``exact_match`` (share of whitespace-normalised equal pairs), ``rouge_l`` (mean
        ROUGE-L F1), ``bleu`` (corpus BLEU / 100) and ``chrf`` (corpus chrF / 100).
    """
    _check_pairs(predictions, references)
    exact = sum(normalise(p) == normalise(r) for p, r in zip(predictions, references, strict=True))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]
    bleu = BLEU(effective_order=True).corpus_score(predictions, [references]).score
    chrf = CHRF().corpus_score(predictions, [references]).score
    return {
        "exact_match": exact / len(references),
        "rouge_l": sum(rouge) / len(rouge),
        "bleu": bleu / 100.0,
        "chrf": chrf / 100.0,
    }


def sentence_chrf(predictions: list[str], references: list[str]) -> list[float]:
    """The chrF / 100 of each prediction against its reference (to compare single examples)."""
    _check_pairs(predictions, references)
    chrf = CHRF()
    return [
        chrf.sentence_score(p, [r]).score / 100.0
        for p, r in zip(predictions, references, strict=True)
    ]
