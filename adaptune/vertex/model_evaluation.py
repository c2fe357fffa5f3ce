"""A registry version's evaluation, imported into its Vertex AI Model Registry entry.

The console shows a model version's evaluations beside it. The deploy imports one per uploaded
version (``ModelService.ImportModelEvaluation``, the call GCPC's model-evaluation import
component makes; that component is a container component, which kfp.local cannot run): the
metrics the evaluate step stored with the registry version (``version.json``'s ``metrics``),
under GCPC's schema for text generation. The tuned model's scores are the evaluation's metrics
under their plain names (``exact_match``); the base model's and the production version's stay
prefixed (``base_exact_match``) so the comparison the gate made is beside them. Importing is
done once: an evaluation of the same registry version already there is kept.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud import aiplatform

    from adaptune.registry.local import RegisteredVersion

TEXT_GENERATION_SCHEMA = (
    "gs://google-cloud-aiplatform/schema/modelevaluation/general_text_generation_metrics_1.0.0.yaml"
)
"""GCPC's metrics schema for ``text-generation`` (``import_model_evaluation.py``)."""
EVALUATED = "tuned_"
"""The prefix of the version's own scores in the registry's metrics."""
NOT_METRICS = ("production_version",)
"""Numbers among the registry's metrics that are not scores (kept in the metadata)."""
METADATA_KEYS = ("run_id", "data_sha256", "base_model", "gate_reason", "evaluated_against")


def evaluation_display_name(version: RegisteredVersion) -> str:
    """``adaptune MODEL@vN``: how the evaluation is found again."""
    return f"adaptune {version.ref}"


def evaluation_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The evaluation's metrics from a registry version's: numbers only, the tuned ones bare.

    ``tuned_exact_match`` becomes ``exact_match``; ``base_*``, ``production_*``,
    ``eval_examples`` and metrics stored without a model prefix stay as they are.
    """
    found: dict[str, float] = {}
    for key, value in sorted(metrics.items(), key=lambda item: item[0].startswith(EVALUATED)):
        if isinstance(value, bool) or not isinstance(value, int | float) or key in NOT_METRICS:
            continue
        found[key.removeprefix(EVALUATED)] = float(value)  # the tuned score wins a clash
    return dict(sorted(found.items()))


def evaluation_body(version: RegisteredVersion) -> dict[str, Any] | None:
    """The ``ModelEvaluation`` to import for ``version`` (JSON field names); None: no metrics."""
    metrics = evaluation_metrics(dict(version.metadata.get("metrics") or {}))
    if not metrics:
        return None
    metadata = {
        key: version.metadata[key]
        for key in METADATA_KEYS
        if version.metadata.get(key) not in (None, "")
    }
    return {
        "displayName": evaluation_display_name(version),
        "metricsSchemaUri": TEXT_GENERATION_SCHEMA,
        "metrics": metrics,
        "metadata": {"registry_version": version.ref, **metadata},
    }


def import_version_evaluation(model: aiplatform.Model, version: RegisteredVersion) -> str | None:
    """Import ``version``'s evaluation into the Vertex model version ``model``, once.

    Args:
        model: The uploaded Vertex model version (its ``versioned_resource_name`` is the
            evaluation's parent).
        version: The registry version it was uploaded from.

    Returns:
        The evaluation's resource name (the existing one when it was imported before), or None
        when the version has no metrics.
    """
    from google.cloud.aiplatform_v1.types import ModelEvaluation

    body = evaluation_body(version)
    if body is None:
        return None
    parent = model.versioned_resource_name
    client = model.api_client
    for existing in client.list_model_evaluations(parent=parent):
        if existing.display_name == body["displayName"]:
            return existing.name
    evaluation = ModelEvaluation.from_json(json.dumps(body))
    return client.import_model_evaluation(parent=parent, model_evaluation=evaluation).name
