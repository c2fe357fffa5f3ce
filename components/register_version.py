"""Component: register the adapter as a new immutable version and promote it to production."""

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
    pipeline_job_name: str,
    gate_reason: str,
    production_version: int,
) -> NamedTuple("Outputs", version=int, model_ref=str, promoted=bool, note=str):
    """Register the adapter as the next version of model_name and make it production.

    The registration and the alias move are one atomic write. When another run moved production
    since this one was evaluated, the comparison is stale: the version is registered but not
    promoted.

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
        pipeline_job_name: The pipeline job's name.
        gate_reason: Why the gate passed.
        production_version: The production version the gate compared with (0: none).

    Returns:
        version: The new version number.
        model_ref: model_name@vN.
        promoted: Whether production now points at it.
        note: Why it was not promoted ("" when it was).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.registry import register_and_promote
    from adaptune.step_errors import reported

    with reported("register_version"):
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
                "metrics": dict(eval_metrics.metadata),
                "gate_reason": gate_reason,
            },
            evaluated_against=production_version,
        )
    print(f"registered {done.version.ref}" + ("" if done.promoted else f"; {done.note}"))
    outputs = namedtuple("Outputs", ["version", "model_ref", "promoted", "note"])
    return outputs(done.version.version, done.version.ref, done.promoted, done.note)
