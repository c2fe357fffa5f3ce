"""The gemini pipeline's splits and evaluation: the tuned endpoint, the base model, production.

The validated examples (validate-dataset's ``train.jsonl`` and ``eval.jsonl``) are split as
the adapter pipeline splits them: the eval file when one was given, else ``data.eval_fraction``
of the training records held out by content hash (:func:`in_eval_split`). The tuning step sends
the training split (and the eval split as the job's validation data); the evaluation asks every
compared model the eval split's questions with batched ``generateContent`` calls
(:mod:`gemini_generation`) and scores the answers with the metrics of every evaluation
(:func:`adaptune.evaluation.metrics.score`). An example a model could not answer (every
attempt failed) is left out of that model's scores and counted in the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune.atomic import write_text_atomic
from adaptune.data.formatting import in_eval_split
from adaptune.errors import UserError
from adaptune.evaluation.metrics import score
from adaptune.evaluation.report import Comparison
from adaptune.registry import RegisteredVersion, find_production
from adaptune.registry.kinds import VERTEX_GEMINI, version_kind
from adaptune.vertex.gemini_generation import GenerationOutcome, generate_for_models
from adaptune.vertex.gemini_settings import GeminiTuningSettings

if TYPE_CHECKING:
    from google.genai import Client


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a normalised JSONL file (none when it is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def gemini_splits(dataset_dir: Path, eval_fraction: float) -> dict[str, list[dict[str, Any]]]:
    """``train`` and ``eval`` examples of validate-dataset's output.

    Raises:
        UserError: If a split is empty (too little data to hold out an eval split).
    """
    train = read_records(Path(dataset_dir) / "train.jsonl")
    evaluation = read_records(Path(dataset_dir) / "eval.jsonl")
    if not evaluation:
        evaluation = [r for r in train if in_eval_split(r, eval_fraction)]
        train = [r for r in train if not in_eval_split(r, eval_fraction)]
    if not train or not evaluation:
        raise UserError(
            f"{len(train)} training and {len(evaluation)} eval examples after the split: give "
            "eval_data or more training data"
        )
    return {"train": train, "eval": evaluation}


def write_splits(splits: dict[str, list[dict[str, Any]]], work_dir: Path) -> dict[str, Path]:
    """Each split as a normalised JSONL file in ``work_dir`` (what :mod:`gemini_data` reads)."""
    files = {}
    for split, records in splits.items():
        files[split] = Path(work_dir) / f"{split}.jsonl"
        write_text_atomic(files[split], "".join(json.dumps(r) + "\n" for r in records))
    return files


def production_endpoint(version: RegisteredVersion | None) -> str:
    """The endpoint serving a production version of kind ``vertex_gemini`` ("" for none).

    Raises:
        UserError: If production is a version of another kind (an adapter cannot be asked
            through ``generateContent``).
    """
    if version is None:
        return ""
    kind = version_kind(version.metadata)
    if kind != VERTEX_GEMINI:
        raise UserError(
            f"production {version.ref} is a version of kind {kind!r}: the vertex_gemini "
            "pipeline compares only with Gemini versions (use another model_name)"
        )
    return str(version.metadata["tuned_model"]["endpoint"])


@dataclass
class GeminiEvaluation:
    """Every compared model's scores and answers.

    Attributes:
        scores: Model name (tuned, base, production) to metric to value.
        outcomes: Model name to its answers and call counts.
        references: The eval examples' expected answers.
        prompts: The eval examples' questions.
        production: The production version compared with (None: nothing served yet).
    """

    scores: dict[str, dict[str, float]]
    outcomes: dict[str, GenerationOutcome]
    references: list[str]
    prompts: list[str]
    production: RegisteredVersion | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def primary(self, metric: str) -> tuple[float, float, float, int]:
        """Tuned, base and production scores of ``metric``, and the production version."""
        production = self.scores.get("production")
        return (
            self.scores["tuned"][metric],
            self.scores["base"][metric],
            production[metric] if production else 0.0,
            self.production.version if self.production else 0,
        )

    def comparison(self) -> Comparison:
        """The report's comparison (an unanswered example shows an empty answer)."""
        outputs = {m: [o or "" for o in out.outputs] for m, out in self.outcomes.items()}
        return Comparison(self.prompts, self.references, outputs, self.scores, self.facts)

    def metrics(self) -> dict[str, float]:
        """``<model>_<metric>`` values and the call counts, for the eval_metrics artifact."""
        values = {f"{m}_{k}": v for m, scores in self.scores.items() for k, v in scores.items()}
        for model, outcome in self.outcomes.items():
            values[f"{model}_failed_examples"] = outcome.failures
            values[f"{model}_retries"] = outcome.retries
        values["eval_examples"] = len(self.references)
        if self.production is not None:
            values["production_version"] = self.production.version
        return values


def evaluate_gemini(
    client: Client,
    tuned_endpoint: str,
    settings: GeminiTuningSettings,
    examples: list[dict[str, Any]],
    registry_dir: Path,
    model_name: str,
    system_instruction: str = "",
    log: Callable[[str], None] = print,
) -> GeminiEvaluation:
    """Ask the tuned endpoint, the base model and production the eval questions; score them.

    Raises:
        GenerationFailed: If a model's calls fail past ``max_failed_fraction``.
        UserError: If production is not a Gemini version.
    """
    production = find_production(Path(registry_dir), model_name)
    models = {"tuned": tuned_endpoint, "base": settings.base_model}
    endpoint = production_endpoint(production)
    if endpoint:
        models["production"] = endpoint
    outcomes = generate_for_models(client, models, examples, settings, system_instruction, log)
    references = [str(e["output_text"]) for e in examples]
    scores = {}
    for model, outcome in outcomes.items():
        answers, expected = outcome.answered(references)
        if not answers:
            raise UserError(f"{model} ({models[model]}) answered no eval example")
        scores[model] = score(answers, expected)
    facts = {
        "eval examples": len(examples),
        "base model": settings.base_model,
        "tuned endpoint": tuned_endpoint,
        **({"production": f"{production.ref} ({endpoint})"} if production else {}),
        **{f"{m} calls": json.dumps(o.summary()) for m, o in outcomes.items()},
    }
    prompts = [str(e["input_text"]) for e in examples]
    return GeminiEvaluation(scores, outcomes, references, prompts, production, facts)


def write_predictions(path: Path, evaluation: GeminiEvaluation) -> None:
    """The predictions JSONL: prompt, reference and each model's answer (null: unanswered)."""
    rows = []
    for i, (prompt, reference) in enumerate(
        zip(evaluation.prompts, evaluation.references, strict=True)
    ):
        row = {"prompt": prompt, "reference": reference}
        row |= {m: o.outputs[i] for m, o in evaluation.outcomes.items()}
        rows.append(json.dumps(row) + "\n")
    write_text_atomic(Path(path), "".join(rows))
