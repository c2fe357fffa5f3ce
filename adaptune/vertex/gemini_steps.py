"""The bodies of the gemini pipeline's own steps: tune-gemini, its evaluate and its register.

Each is what its component (``components/tune_gemini.py``, ``evaluate_gemini.py``,
``register_gemini_version.py``) calls, with paths and plain values, so the components stay
thin. The tuned model travels between the steps as ``tuned_model.json`` in the tune step's
``tuned_model`` artifact: the tuned model, its endpoint, the job and its data statistics.

The tuned Gemini model is a Vertex AI model (``projects/P/locations/L/models/ID@VERSION``): the
register step imports the registered version's evaluation into its Model Registry entry before
it promotes the version, so that the console shows the metrics beside the tuned model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptune.atomic import write_json_atomic
from adaptune.data.settings import DataSettings
from adaptune.errors import UserError
from adaptune.registry import promote_gated, register_and_promote
from adaptune.registry.kinds import TUNED_MODEL_FILE, VERTEX_GEMINI
from adaptune.registry.local import RegisteredVersion, Registration
from adaptune.vertex.gemini_backend import GeminiTarget, check_vertex_gemini
from adaptune.vertex.gemini_data import GeminiDataset, upload_gemini_data
from adaptune.vertex.gemini_evaluation import (
    GeminiEvaluation,
    evaluate_gemini,
    gemini_splits,
    write_predictions,
    write_splits,
)
from adaptune.vertex.gemini_limits import check_gemini_examples, limits_for, require_within_limits
from adaptune.vertex.gemini_tuning import GeminiTuningResult, run_tuning_job
from adaptune.vertex.model_evaluation import import_version_evaluation
from adaptune.vertex.resource_uris import resource_location

Log = Callable[[str], None]


@dataclass(frozen=True)
class TuneOutcome:
    """What tune-gemini made: the uploaded data and the tuned model."""

    dataset: GeminiDataset
    result: GeminiTuningResult
    api_endpoint: str = ""
    system_instruction: str = ""

    def record(self) -> dict[str, Any]:
        """``tuned_model.json``: the tuned model and endpoint, the job, the data it tuned on."""
        return {
            "model": self.result.tuned_model,
            "endpoint": self.result.endpoint,
            "job_name": self.result.job_name,
            "base_model": self.result.base_model,
            "state": self.result.state,
            "seconds": self.result.seconds,
            "reused_job": self.result.reused,
            "data_stats": self.result.data_stats,
            "data": self.dataset.to_dict(),
            "api_endpoint": self.api_endpoint,
            "system_instruction": self.system_instruction,
        }

    def metrics(self) -> dict[str, float]:
        """The job's numeric data statistics (examples, billable tokens, ...) and its seconds.

        Counts come as strings (int64 in JSON) and are read as numbers; distributions (mappings)
        are left out.
        """
        values: dict[str, float] = {}
        for key, value in self.result.data_stats.get("supervisedTuningDataStats", {}).items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                continue
        values["job_seconds"] = self.result.seconds
        return values


def tune_step(
    dataset_dir: Path,
    data: dict[str, Any],
    vertex_gemini: dict[str, Any],
    run_id: str,
    data_sha256: str,
    pipeline_root: str,
    gemini_data_dir: Path,
    tuned_model_dir: Path,
    log: Log = print,
) -> TuneOutcome:
    """Split, check Gemini's limits, convert and upload the data, then run the tuning job.

    Args:
        dataset_dir: validate-dataset's output (normalised ``train.jsonl``, ``eval.jsonl``).
        data: The data settings (``eval_fraction``, ``system_instruction``).
        vertex_gemini: Where and how to tune (:func:`check_vertex_gemini`).
        run_id: The run's id (a label of the job).
        data_sha256: validate-dataset's hash of the data (a label of the job).
        pipeline_root: The pipeline's root; the data goes below it unless
            ``vertex_gemini.pipeline_root`` names another.
        gemini_data_dir: Where the split and converted files are written (an artifact).
        tuned_model_dir: Where ``tuned_model.json`` is written (an artifact).
        log: Where progress lines go.

    Raises:
        DataValidationError: If an example or a file is over Gemini tuning's limits.
        TuningJobEnded: If the job ends without a tuned model.
    """
    target, settings = check_vertex_gemini(vertex_gemini)
    data_settings = DataSettings.from_dict(data)
    splits = gemini_splits(dataset_dir, data_settings.eval_fraction)
    files = write_splits(splits, Path(gemini_data_dir) / "normalised")
    limits = limits_for(settings.base_model)
    require_within_limits(check_gemini_examples(files, limits, data_settings.system_instruction))
    dataset = upload_gemini_data(
        files,
        target.data_root(pipeline_root),
        Path(gemini_data_dir) / "gemini",
        limits,
        data_settings.system_instruction,
    )
    log(
        f"{'uploaded' if dataset.uploaded else 'found'} Gemini data {dataset.train_uri} "
        f"({dataset.records.get('train', 0)} training, {dataset.records.get('eval', 0)} "
        f"validation records; limits: {limits.source})"
    )
    result = run_tuning_job(target.client(), settings, dataset, run_id, data_sha256, log=log)
    outcome = TuneOutcome(dataset, result, target.api_endpoint, data_settings.system_instruction)
    write_json_atomic(Path(tuned_model_dir) / TUNED_MODEL_FILE, outcome.record())
    return outcome


def read_tuned_model(tuned_model_dir: Path) -> dict[str, Any]:
    """tune-gemini's ``tuned_model.json``.

    Raises:
        UserError: If it is missing or names no endpoint.
    """
    path = Path(tuned_model_dir) / TUNED_MODEL_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the tuned model's record ({exc})") from None
    if not isinstance(record, dict) or not record.get("endpoint"):
        raise UserError(f"{path} names no endpoint")
    return record


def evaluate_step(
    dataset_dir: Path,
    data: dict[str, Any],
    vertex_gemini: dict[str, Any],
    tuned_model_dir: Path,
    model_name: str,
    registry_dir: Path,
    predictions: Path,
    report: Path,
    report_examples: int = 20,
    log: Log = print,
) -> GeminiEvaluation:
    """Ask the tuned endpoint, the base model and production the eval split's questions.

    Raises:
        GenerationFailed: If a model's calls fail past ``max_failed_fraction``.
    """
    from adaptune.atomic import write_text_atomic

    target, settings = check_vertex_gemini(vertex_gemini)
    data_settings = DataSettings.from_dict(data)
    examples = gemini_splits(dataset_dir, data_settings.eval_fraction)["eval"]
    tuned = read_tuned_model(tuned_model_dir)
    evaluation = evaluate_gemini(
        target.client(),
        tuned["endpoint"],
        settings,
        examples,
        registry_dir,
        model_name,
        data_settings.system_instruction,
        log,
    )
    write_predictions(predictions, evaluation)
    comparison = evaluation.comparison()
    write_text_atomic(Path(report), comparison.to_html(report_examples))
    log(comparison.to_markdown(min(report_examples, 5)))
    return evaluation


def import_tuned_model_evaluation(
    target: GeminiTarget, version: RegisteredVersion, credentials: Any = None
) -> str | None:
    """Import ``version``'s evaluation into its tuned model's Vertex AI Model Registry entry.

    Args:
        target: Where the model lives (the project, and the ``api_endpoint`` when not
            Google's); the region is the model's own.
        version: A ``vertex_gemini`` registry version (its ``tuned_model.model`` names the
            Vertex model version).
        credentials: Credentials (default: Application Default Credentials).

    Returns:
        The evaluation's resource name, or None when the version has no metrics.

    Raises:
        UserError: If reading the model or importing fails (one line, naming the model).
    """
    from google.cloud import aiplatform

    from adaptune.vertex.deployment import call_errors

    name = version.metadata["tuned_model"]["model"]
    location = resource_location(name)
    endpoint = {"api_endpoint": target.api_endpoint} if target.api_endpoint else {}
    try:
        aiplatform.init(
            project=target.project,
            location=location,
            credentials=credentials,
            api_transport="rest",
            **endpoint,
        )
        return import_version_evaluation(aiplatform.Model(name), version)
    except call_errors() as exc:
        reason = " ".join(str(exc).split())
        raise UserError(
            f"importing {version.ref}'s evaluation into the Vertex AI Model Registry entry "
            f"{name} failed: {reason}"
        ) from exc


def register_step(
    registry_dir: Path,
    model_name: str,
    tuned_model_dir: Path,
    metrics: dict[str, Any],
    data_sha256: str,
    run_id: str,
    pipeline_job_name: str,
    gate_reason: str,
    production_version: int,
    vertex_gemini: dict[str, Any],
    log: Log = print,
    credentials: Any = None,
) -> Registration:
    """Register the tuned model as a ``vertex_gemini`` version and make it production.

    The version holds ``tuned_model.json`` (no weights); ``version.json`` records the tuned
    model and endpoint, the job's data statistics, the metrics and the lineage facts. It is
    registered unpromoted, its evaluation is imported into the tuned model's Vertex AI Model
    Registry entry, and only then is it promoted: if the import fails, the step fails with
    production unchanged (the version stays registered, unpromoted). As any gated version, it
    is not promoted when production moved since the evaluation. ``credentials`` are the Model
    Registry's (default: Application Default Credentials).

    Raises:
        UserError: If the tuned model's record is unreadable or the import fails.
    """
    target, _ = check_vertex_gemini(vertex_gemini)
    tuned = read_tuned_model(tuned_model_dir)
    metadata = {
        "kind": VERTEX_GEMINI,
        "base_model": tuned.get("base_model") or "",
        "tuned_model": {
            "model": tuned["model"],
            "endpoint": tuned["endpoint"],
            "job_name": tuned.get("job_name", ""),
            "base_model": tuned.get("base_model", ""),
            "api_endpoint": tuned.get("api_endpoint", ""),
            "system_instruction": tuned.get("system_instruction", ""),
        },
        "tuning_job": {
            "name": tuned.get("job_name", ""),
            "state": tuned.get("state", ""),
            "seconds": tuned.get("seconds", 0),
            "data_stats": tuned.get("data_stats", {}),
            "data": tuned.get("data", {}),
        },
        "data_sha256": data_sha256,
        "run_id": run_id or pipeline_job_name,
        "metrics": metrics,
        "gate_reason": gate_reason,
        "pipeline_job_name": pipeline_job_name,
    }
    registered = register_and_promote(
        Path(registry_dir),
        model_name,
        Path(tuned_model_dir),
        metadata,
        evaluated_against=production_version,
        deploy_first=True,  # registered unpromoted: promoted once its evaluation is imported
    )
    version = registered.version
    try:
        evaluation = import_tuned_model_evaluation(target, version, credentials)
    except UserError as exc:
        raise UserError(f"{version.ref} is registered but not promoted: {exc}") from exc
    if evaluation:
        log(f"imported {version.ref}'s evaluation into the Model Registry as {evaluation}")
    if not registered.deploy_first:  # production moved meanwhile, or it is production already
        return Registration(version, registered.promoted, registered.note)
    promoted, note = promote_gated(
        Path(registry_dir), model_name, version.version, production_version
    )
    return Registration(version, promoted, note)
