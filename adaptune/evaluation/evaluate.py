"""``evaluate_adapter``: generate with the base and the tuned model, then score both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel

from adaptune.data.jsonl import read_jsonl, write_jsonl
from adaptune.evaluation.generation import generate
from adaptune.evaluation.metrics import score
from adaptune.models import load_base_model
from adaptune.tuning.loading import load_tuned_model
from adaptune.tuning.loop import device_for_training

MAX_NEW_TOKENS_CAP = 128
NEW_TOKENS_MARGIN = 4


@dataclass
class EvaluationResult:
    """Scores of both models on the eval split.

    Attributes:
        base: Metric name to score, for the base model.
        tuned: Metric name to score, for the tuned model.
        examples: Number of eval examples.
        predictions_file: JSONL with prompt, reference and both models' outputs.
    """

    base: dict[str, float]
    tuned: dict[str, float]
    examples: int
    predictions_file: Path


def evaluate_adapter(
    eval_file: Path,
    adapter_dir: Path,
    base_model: str,
    predictions_file: Path,
    max_new_tokens: int = 0,
    show_progress: bool = True,
) -> EvaluationResult:
    """Score the base model and base + adapter on the formatted eval split.

    The adapter is loaded from disk (PEFT adapters with ``PeftModel.from_pretrained``), so this
    also checks that the saved adapter is usable. The base model's answers come from the same
    weights with the adapter disabled (or from a fresh base model for ``last_layers``).

    Args:
        eval_file: Formatted JSONL with ``prompt`` and ``target``.
        adapter_dir: A PEFT adapter directory.
        base_model: ``builtin:...`` or a checkpoint directory.
        predictions_file: Where the predictions JSONL is written.
        max_new_tokens: Most tokens per answer; 0 picks the longest reference plus a margin.
        show_progress: Show progress bars.

    Returns:
        Metrics for both models and the predictions file.
    """
    pairs = read_jsonl(eval_file)
    prompts = [p["prompt"] for p in pairs]
    references = [p["target"] for p in pairs]
    base = load_base_model(base_model)
    if max_new_tokens <= 0:
        longest = max(
            len(base.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references
        )
        max_new_tokens = min(MAX_NEW_TOKENS_CAP, longest + NEW_TOKENS_MARGIN)
    device = device_for_training()
    model = load_tuned_model(base.model, adapter_dir).to(device)

    def answers(m: torch.nn.Module, desc: str) -> list[str]:
        return generate(
            m,
            base.tokenizer,
            prompts,
            base.family,
            max_new_tokens,
            desc=desc,
            show_progress=show_progress,
        )

    tuned_out = answers(model, "eval tuned")
    if isinstance(model, PeftModel):
        with model.disable_adapter():
            base_out = answers(model, "eval base")
    else:  # the adapter replaced base weights: score a fresh copy of the base model
        del model
        base_out = answers(load_base_model(base_model).model.to(device), "eval base")
    write_jsonl(
        predictions_file,
        (
            {"prompt": p, "reference": r, "base": b, "tuned": t}
            for p, r, b, t in zip(prompts, references, base_out, tuned_out, strict=True)
        ),
    )
    return EvaluationResult(
        base=score(base_out, references),
        tuned=score(tuned_out, references),
        examples=len(pairs),
        predictions_file=predictions_file,
    )
