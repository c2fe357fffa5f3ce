"""Component: register the adapter as a new version in the model registry."""

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
    data_sha256: str,
    run_id: str,
    pipeline_job_name: str,
    gate_reason: str,
) -> NamedTuple("Outputs", version=int, model_ref=str):
    """Register the adapter as the next immutable version of model_name.

    Args:
        adapter: The PEFT adapter from tune_adapter.
        eval_metrics: Scores stored with the version.
        model_name: Registry model name.
        registry_dir: Registry root directory.
        base_model: The adapter's base model.
        data_sha256: Hash of the training data.
        run_id: Run id; the pipeline job name when empty.
        pipeline_job_name: The pipeline job's name.
        gate_reason: Why the gate allowed the deploy.

    Returns:
        version: The new version number.
        model_ref: model_name@vN.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.registry import register_version
    from adaptune.step_errors import reported

    with reported("deploy"):
        version = register_version(
            Path(registry_dir),
            model_name,
            Path(adapter.path),
            {
                "base_model": base_model,
                "data_sha256": data_sha256,
                "run_id": run_id or pipeline_job_name,
                "metrics": dict(eval_metrics.metadata),
                "gate_reason": gate_reason,
            },
            promote=True,
        )
    print(f"registered {version.ref} at {version.path}")
    outputs = namedtuple("Outputs", ["version", "model_ref"])
    return outputs(version.version, version.ref)
