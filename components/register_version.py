"""Component: register the adapter as a new immutable version; promote it unless Vertex is next."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Metrics, Model

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_version(
    trained_adapter: Input[Model],
    eval_metrics: Input[Metrics],
    model_name: str,
    registry_dir: str,
    base_model: str,
    prompt_template: str,
    prompt_style: dict,
    data_sha256: str,
    run_id: str,
    description: str,
    pipeline_job_name: str,
    gate_reason: str,
    production_version: int,
    vertex_deploy: dict,
) -> NamedTuple("Outputs", version=int, model_ref=str, promoted=bool, note=str, deploy_first=bool):
    """Register the adapter as the next version of model_name and make it production.

    The version's lineage (lineage.json) is written before the commit that makes it visible.
    Without a Vertex AI deploy, the registration and the alias move are one atomic write. With
    one, the version is registered unpromoted: deploy-to-vertex promotes it once the deploy
    succeeded, so a failed deploy leaves production where it was. When another run moved
    production since this one was evaluated, the comparison is stale: the version is
    registered but not promoted (and not deployed).

    Args:
        trained_adapter: The adapter from tune_adapter.
        eval_metrics: Scores stored with the version.
        model_name: Registry model name.
        registry_dir: Registry root directory.
        base_model: The adapter's base model.
        prompt_template: The template the adapter was tuned with.
        prompt_style: How its prompts were made (format_text_to_text's): the server repeats it.
        data_sha256: Hash of the training data.
        run_id: Run id; the pipeline job name when empty.
        description: What the version is for; stored in its version.json.
        pipeline_job_name: The pipeline job's name.
        gate_reason: Why the gate passed.
        production_version: The production version the gate compared with (0: none).
        vertex_deploy: Empty for the local registry only; else the Vertex deploy settings
            (the version is then promoted after its deploy).

    Returns:
        version: The new version number.
        model_ref: model_name@vN.
        promoted: Whether production now points at it.
        note: Why it was not promoted ("" when it was).
        deploy_first: Whether it waits for its Vertex AI deploy to be promoted.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.registry import register_and_promote
    from adaptune.step_errors import reported
    from adaptune.vertex.deploy_settings import check_vertex_deploy

    with reported("register_version"):
        deploy_first = check_vertex_deploy(vertex_deploy) is not None
        done = register_and_promote(
            Path(registry_dir),
            model_name,
            Path(trained_adapter.path),
            {
                "base_model": base_model,
                "prompt_template": prompt_template,
                "prompt_style": prompt_style,
                "data_sha256": data_sha256,
                "run_id": run_id or pipeline_job_name,
                "description": description,
                "metrics": dict(eval_metrics.metadata),
                "gate_reason": gate_reason,
                "pipeline_job_name": pipeline_job_name,
                "evaluated_against": production_version,
            },
            evaluated_against=production_version,
            deploy_first=deploy_first,
        )
    print(f"registered {done.version.ref}" + ("" if done.promoted else f"; {done.note}"))
    outputs = namedtuple("Outputs", ["version", "model_ref", "promoted", "note", "deploy_first"])
    return outputs(
        done.version.version, done.version.ref, done.promoted, done.note, done.deploy_first
    )
