"""Component (gemini pipeline): register the tuned Gemini model as a version and promote it.

Its function is named ``register_version``, so the task is ``register-version`` with the
adapter pipeline's outputs: the summary and the lineage read both pipelines alike.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Metrics, Model

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_version(
    tuned_model: Input[Model],
    eval_metrics: Input[Metrics],
    model_name: str,
    registry_dir: str,
    data_sha256: str,
    run_id: str,
    pipeline_job_name: str,
    gate_reason: str,
    production_version: int,
    vertex_gemini: dict,
) -> NamedTuple("Outputs", version=int, model_ref=str, promoted=bool, note=str, deploy_first=bool):
    """Register a version of kind vertex_gemini (the tuned model and endpoint, no weights).

    The version's evaluation metrics are imported into the tuned model's Vertex AI Model
    Registry entry, then it is promoted, unless another run moved production since this one
    was evaluated (then it is registered, not promoted). A failed import fails the task with
    production as it was.

    Args:
        tuned_model: tune_gemini's tuned_model.json.
        eval_metrics: Scores stored with the version.
        model_name: Registry model name.
        registry_dir: Registry root directory.
        data_sha256: Hash of the training data.
        run_id: Run id; the pipeline job name when empty.
        pipeline_job_name: The pipeline job's name.
        gate_reason: Why the gate passed.
        production_version: The production version the gate compared with (0: none).
        vertex_gemini: project, location and api_endpoint: where the tuned model's Model
            Registry entry is.

    Returns:
        version: The new version number.
        model_ref: model_name@vN.
        promoted: Whether production now points at it.
        note: Why it was not promoted ("" when it was).
        deploy_first: Always False: the tuned model is served already, on its endpoint.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.step_errors import reported
    from adaptune.vertex.gemini_steps import register_step

    with reported("register_version"):
        done = register_step(
            Path(registry_dir),
            model_name,
            Path(tuned_model.path),
            dict(eval_metrics.metadata),
            data_sha256,
            run_id,
            pipeline_job_name,
            gate_reason,
            production_version,
            vertex_gemini,
        )
    print(f"registered {done.version.ref}" + ("" if done.promoted else f"; {done.note}"))
    outputs = namedtuple("Outputs", ["version", "model_ref", "promoted", "note", "deploy_first"])
    return outputs(done.version.version, done.version.ref, done.promoted, done.note, False)
