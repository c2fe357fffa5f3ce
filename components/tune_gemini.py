"""Component: tune a Gemini model with Vertex AI's managed tuning (backend ``vertex_gemini``)."""

from typing import NamedTuple

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_gemini(
    dataset: Input[Dataset],
    data_sha256: str,
    data: dict,
    vertex_gemini: dict,
    run_id: str,
    pipeline_job_name: str,
    pipeline_root: str,
    gemini_data: Output[Dataset],
    tuned_model: Output[Model],
    tuning_metrics: Output[Metrics],
    vertex_model: Output[VertexModel],
    vertex_endpoint: Output[VertexEndpoint],
) -> NamedTuple("Outputs", endpoint=str, job_name=str):
    """Check Gemini's limits, upload the data, run the tuning job and wait for its model.

    Args:
        dataset: The validated examples from validate_dataset.
        data_sha256: Hash of the validated data (a label of the job).
        data: Data settings (eval_fraction splits off the eval examples when no eval data
            was given; system_instruction goes to examples without their own).
        vertex_gemini: project, location, api_endpoint, pipeline_root and the tuning
            settings (base_model, epochs, learning_rate_multiplier, adapter_size, ...).
        run_id: Run id; the pipeline job name when empty.
        pipeline_job_name: The pipeline job's name.
        pipeline_root: The pipeline's root (the data is uploaded below it by default).
        gemini_data: The split examples and the Gemini JSONL that was uploaded.
        tuned_model: tuned_model.json: the tuned model, its endpoint, the job, its data stats.
        tuning_metrics: The job's data statistics (examples, billable tokens, ...).
        vertex_model: The tuned model's Vertex AI model version (google.VertexModel: uri
            https://LOCATION-aiplatform.googleapis.com/v1/projects/P/locations/L/models/ID@V,
            metadata resourceName projects/P/locations/L/models/ID@V).
        vertex_endpoint: The endpoint serving it (google.VertexEndpoint, likewise).

    Returns:
        endpoint: The Vertex AI endpoint serving the tuned model.
        job_name: The tuning job's resource name.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.step_errors import reported
    from adaptune.vertex.gemini_steps import tune_step
    from adaptune.vertex.resource_uris import RESOURCE_NAME_KEY, resource_uri

    with reported("tune_gemini"):
        outcome = tune_step(
            Path(dataset.path),
            data,
            vertex_gemini,
            run_id or pipeline_job_name,
            data_sha256,
            pipeline_root,
            Path(gemini_data.path),
            Path(tuned_model.path),
        )
    result = outcome.result
    gemini_data.metadata.update(outcome.dataset.to_dict())
    tuned_model.metadata.update(
        {"model": result.tuned_model, "endpoint": result.endpoint, "job_name": result.job_name}
    )
    vertex_model.uri = resource_uri(result.tuned_model)
    vertex_model.metadata[RESOURCE_NAME_KEY] = result.tuned_model
    vertex_endpoint.uri = resource_uri(result.endpoint)
    vertex_endpoint.metadata[RESOURCE_NAME_KEY] = result.endpoint
    for key, value in outcome.metrics().items():
        tuning_metrics.log_metric(key, value)
    outputs = namedtuple("Outputs", ["endpoint", "job_name"])
    return outputs(result.endpoint, result.job_name)
