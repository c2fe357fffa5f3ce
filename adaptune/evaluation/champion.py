"""The challenger's evaluation: the tuned model against base and the version in production."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from adaptune.data.chat import PromptStyle
from adaptune.evaluation.compared_models import ProductionModel
from adaptune.evaluation.evaluate import EvaluationPaths, EvaluationResult, evaluate_models
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.registry import RegisteredVersion, find_production

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChallengeResult:
    """An evaluation and the production version it was compared with.

    Attributes:
        result: Every model's scores and the files written.
        champion: The production version compared with; None when nothing serves yet.
    """

    result: EvaluationResult
    champion: RegisteredVersion | None

    def primary(self, metric: str) -> tuple[float, float, float, int]:
        """Tuned, base and production scores of ``metric`` and the production version.

        Without a production version its score and version are 0 (pipelines pass no None).
        """
        production = self.result.production
        return (
            self.result.tuned[metric],
            self.result.base[metric],
            production[metric] if production else 0.0,
            self.champion.version if self.champion else 0,
        )


def evaluate_challenger(
    eval_file: Path,
    adapter_dir: Path,
    base_model: str,
    prompt_style: PromptStyle,
    registry_dir: Path,
    model_name: str,
    paths: EvaluationPaths,
    settings: EvaluationSettings,
) -> ChallengeResult:
    """Evaluate the tuned adapter against base and, when one exists, ``model_name``'s production.

    Args:
        eval_file: Formatted JSONL with ``prompt`` and ``target``.
        adapter_dir: The tuned adapter.
        base_model: The base model it was tuned on.
        prompt_style: How the eval prompts were made; a production version tuned with another
            style (format, template, system instruction, chat template) is scored on these
            prompts all the same, with a warning.
        registry_dir: Registry root.
        model_name: Registry model whose ``production`` version is the champion.
        paths: Where the predictions and the report go.
        settings: Generation and report settings.

    Returns:
        The evaluation and the champion it was compared with.
    """
    champion = find_production(registry_dir, model_name)
    production = None
    if champion is not None:
        production = ProductionModel(champion.path, champion.base_model)
        log.info("comparing with production %s", champion.ref)
        used = PromptStyle.recorded(champion.metadata, prompt_style.template)
        if used != prompt_style:
            log.warning(
                "%s was tuned with another prompt style (%s) than these eval prompts (%s): it is "
                "scored on prompts it was not tuned on",
                champion.ref,
                used.to_dict(),
                prompt_style.to_dict(),
            )
    result = evaluate_models(
        eval_file, adapter_dir, base_model, paths, production=production, settings=settings
    )
    return ChallengeResult(result, champion)
