"""Component: register the adapter as the new production version (and serve it on Vertex AI)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Metrics, Model

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy(
    adapter: Input[Model],
    eval_metrics: Input[Metrics],
    model_name: str,
    registry_dir: str,
    base_model: str,
    prompt_template: str,
    data_sha256: str,
    run_id: str,
    pipeline_job_name: str,
    gate_reason: str,
    production_version: int,
    vertex_deploy: dict,
) -> NamedTuple(
    "Outputs",
    version=int,
    model_ref=str,
    promoted=bool,
    note=str,
    vertex_model=str,
    vertex_endpoint=str,
):
    """Register the adapter as the next version of model_name and make it production.

    The registration and the alias move are one atomic write. When another run moved production
    since this one was evaluated, the comparison is stale: the version is registered but not
    promoted (and not sent to Vertex AI). With vertex_deploy set, a promoted version is also
    uploaded to the Vertex AI Model Registry and deployed to the named endpoint.

    Args:
        adapter: The adapter from tune_adapter.
        eval_metrics: Scores stored with the version.
        model_name: Registry model name.
        registry_dir: Registry root directory.
        base_model: The adapter's base model.
        prompt_template: The template the adapter was tuned with (the server applies it).
        data_sha256: Hash of the training data.
        run_id: Run id; the pipeline job name when empty.
        pipeline_job_name: The pipeline job's name.
        gate_reason: Why the gate allowed the deploy.
        production_version: The production version evaluated against (0: none).
        vertex_deploy: Empty for the local registry only; else project, location and the
            Vertex deploy settings (endpoint, traffic_percentage, machine_type, ...).

    Returns:
        version: The new version number.
        model_ref: model_name@vN.
        promoted: Whether production now points at it.
        note: Why it was not promoted ("" when it was).
        vertex_model: The Vertex model version deployed ("" without vertex_deploy).
        vertex_endpoint: The Vertex endpoint it serves on ("" without vertex_deploy).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.registry.release import release
    from adaptune.step_errors import reported

    with reported("deploy"):
        done = release(
            Path(registry_dir),
            model_name,
            Path(adapter.path),
            {
                "base_model": base_model,
                "prompt_template": prompt_template,
                "data_sha256": data_sha256,
                "run_id": run_id or pipeline_job_name,
                "metrics": dict(eval_metrics.metadata),
                "gate_reason": gate_reason,
            },
            evaluated_against=production_version,
            vertex_deploy=vertex_deploy,
        )
    version = done.deployment.version
    outputs = namedtuple(
        "Outputs",
        ["version", "model_ref", "promoted", "note", "vertex_model", "vertex_endpoint"],
    )
    return outputs(
        version.version,
        version.ref,
        done.deployment.promoted,
        done.deployment.note,
        done.vertex.model_version if done.vertex else "",
        done.vertex.endpoint if done.vertex else "",
    )
