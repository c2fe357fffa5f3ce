"""``evaluate_models``: answer the eval split with the base, tuned and production models; score.

Every model answers every eval prompt (batched; greedy or seeded sampling) and is scored on
exact match, ROUGE-L, BLEU and chrF of its answers, and on the eval loss (teacher-forced, as
in training) and perplexity of the references. Writes a predictions JSONL and a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from adaptune.atomic import write_text_atomic
from adaptune.base_models.loading import BaseModel
from adaptune.compute.device import device_for_training
from adaptune.compute.precision import resolve_precision
from adaptune.data.jsonl import read_jsonl, write_jsonl
from adaptune.errors import UserError
from adaptune.evaluation.compared_models import (
    BASE,
    MODEL_NAMES,
    PRODUCTION,
    TUNED,
    ProductionModel,
    for_each_model,
)
from adaptune.evaluation.generation import generate, new_token_budget
from adaptune.evaluation.loss import reference_loss
from adaptune.evaluation.metrics import score
from adaptune.evaluation.report import Comparison
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.tuning.loading import read_adapter_config


@dataclass(frozen=True)
class EvaluationPaths:
    """Where an evaluation writes.

    Attributes:
        predictions: JSONL, one line per example: prompt, reference, each model's answer.
        report_html: The HTML report (None: not written).
        report_markdown: The same report as Markdown (None: not written).
    """

    predictions: Path
    report_html: Path | None = None
    report_markdown: Path | None = None

    @classmethod
    def in_directory(cls, directory: Path) -> EvaluationPaths:
        """``predictions.jsonl``, ``report.html`` and ``report.md`` in ``directory``."""
        directory = Path(directory)
        return cls(
            directory / "predictions.jsonl", directory / "report.html", directory / "report.md"
        )


@dataclass
class EvaluationResult:
    """Scores of the compared models on the eval split.

    Attributes:
        scores: Model name (``base``, ``tuned``, and ``production`` when compared) to metric
            name to value: ``exact_match``, ``rouge_l``, ``bleu``, ``chrf`` (in [0, 1], higher
            is better), ``eval_loss`` and ``perplexity`` (lower is better).
        examples: Number of eval examples.
        paths: The files written.
        highlighted: The eval examples (0-based) the report shows, most different first.
    """

    scores: dict[str, dict[str, float]]
    examples: int
    paths: EvaluationPaths
    highlighted: list[int]

    @property
    def base(self) -> dict[str, float]:
        """The base model's scores."""
        return self.scores[BASE]

    @property
    def tuned(self) -> dict[str, float]:
        """The tuned model's scores."""
        return self.scores[TUNED]

    @property
    def production(self) -> dict[str, float] | None:
        """The production model's scores, when it was compared."""
        return self.scores.get(PRODUCTION)

    @property
    def predictions_file(self) -> Path:
        """The predictions JSONL."""
        return self.paths.predictions


def evaluate_models(
    eval_file: Path,
    adapter_dir: Path,
    base_model: str,
    paths: EvaluationPaths | Path,
    production: ProductionModel | None = None,
    settings: EvaluationSettings | None = None,
    show_progress: bool = True,
) -> EvaluationResult:
    """Score the base model, base + the tuned adapter, and the production version.

    Adapters are loaded from disk, so this also checks that the saved adapter is usable. See
    :mod:`adaptune.evaluation.compared_models` for how the models share weights. A production
    version on another base model answers with its own tokenizer; its eval loss and perplexity
    are then per token of that tokenizer, so compare them with care.

    Args:
        eval_file: Formatted JSONL with ``prompt`` and ``target``.
        adapter_dir: The tuned adapter (PEFT or ``last_layers``).
        base_model: ``builtin:...`` or a checkpoint directory the adapter was tuned on.
        paths: Where to write, or a directory for :meth:`EvaluationPaths.in_directory`.
        production: The version in production (adapter directory and its base model), or None.
        settings: Generation, batching and report settings (None: the defaults).
        show_progress: Show progress bars.

    Returns:
        The scores of every model and the paths written.

    Raises:
        UserError: If the eval file holds no examples or an adapter cannot be loaded.
    """
    settings = settings or EvaluationSettings()
    device = device_for_training()
    dtype = resolve_precision(settings.precision, device, "evaluation.precision")
    if not isinstance(paths, EvaluationPaths):
        paths = EvaluationPaths.in_directory(paths)
    for directory in (adapter_dir, *([production.adapter_dir] if production else [])):
        read_adapter_config(directory)  # fail before any model is loaded
    pairs = read_jsonl(eval_file)
    if not pairs:
        raise UserError(f"{eval_file}: no eval examples")
    prompts = [p["prompt"] for p in pairs]
    references = [p.get("reference", p["target"]) for p in pairs]
    outputs: dict[str, list[str]] = {}
    scores: dict[str, dict[str, float]] = {}

    def visit(name: str, model: torch.nn.Module, base: BaseModel) -> None:
        outputs[name] = generate(
            model,
            base.tokenizer,
            prompts,
            base.family,
            new_token_budget(base.tokenizer, references, settings.max_new_tokens),
            max_length=settings.max_length,
            batch_size=settings.batch_size,
            temperature=settings.temperature,
            seed=settings.seed,
            desc=f"generate {name}",
            show_progress=show_progress,
        )
        losses = reference_loss(
            model,
            base.tokenizer,
            pairs,
            base.family,
            settings.max_length,
            settings.batch_size,
            show_progress=show_progress,
        )
        scores[name] = score(outputs[name], references) | losses

    for_each_model(
        base_model, Path(adapter_dir), production, device, visit, dtype, settings.attention
    )
    models = [m for m in MODEL_NAMES if m in outputs]
    facts = {"eval examples": len(pairs), "base model": base_model, "adapter": str(adapter_dir)}
    if production is not None:
        facts |= {
            "production adapter": str(production.adapter_dir),
            "production base model": production.base_model,
        }
    comparison = Comparison(
        prompts=prompts,
        references=references,
        outputs={m: outputs[m] for m in models},
        scores={m: scores[m] for m in models},
        facts=facts | settings.to_dict(),
    )
    write_jsonl(paths.predictions, comparison.prediction_rows())
    if paths.report_html is not None:
        write_text_atomic(paths.report_html, comparison.to_html(settings.report_examples))
    if paths.report_markdown is not None:
        write_text_atomic(paths.report_markdown, comparison.to_markdown(settings.report_examples))
    return EvaluationResult(
        scores=comparison.scores,
        examples=len(pairs),
        paths=paths,
        highlighted=comparison.most_different(settings.report_examples),
    )
