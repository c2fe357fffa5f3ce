"""Component: train an adapter and save it."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_adapter(
    formatted: Input[Dataset],
    data_sha256: str,
    base_model: str,
    adapter: dict,
    training: dict,
    seed: int,
    trained_adapter: Output[Model],
    training_metrics: Output[Metrics],
    training_report: Output[HTML],
) -> NamedTuple("Outputs", first_loss=float, final_loss=float):
    """Train the adapter on the formatted pairs, with the loss on output tokens only.

    Checkpoints go beside the adapter output, so a retry of this task resumes; in a local run
    (ADAPTUNE_RUN_DIR set) under the run's directory, so `adaptune run --resume` does. They are
    keyed by the formatted data's bytes and every setting: other settings never resume them. A
    user error is recorded beside the output, so a retry after one fails at once with the same
    message. In a local run each step's loss is also appended to the run's
    training_loss.jsonl as it is logged (the studio draws it while tuning runs).

    Given more than one GPU (``training.processes``, 0: every visible GPU), or run on several
    machines (a Vertex AI CustomJob with replicas), the task starts one training process per
    GPU itself (``torch.distributed.run``, data-parallel); only the first machine publishes.

    Args:
        formatted: Prompt/target pairs from format_text_to_text.
        data_sha256: Hash of the validated data (keys the cache on content).
        base_model: builtin:tiny-gpt2, builtin:tiny-t5 or a checkpoint directory.
        adapter: The method and its settings, e.g. {"method": "lora", "r": 8}.
        training: Steps or epochs, learning rate, batch size, precision, attention, compile,
            eval, checkpoint and stop rules.
        seed: Random seed (overrides training.seed).
        trained_adapter: The adapter directory (PEFT format, except for last_layers).
        training_metrics: Loss, eval loss, steps, tokens and wall time; its file holds the
            loss per step.
        training_report: Loss curves and settings as an HTML page.

    Returns:
        first_loss: Loss at the first step.
        final_loss: Mean loss over the last 10 steps.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.step_errors import reported

    out = Path(trained_adapter.path)
    # A retry after a user error fails at once with the same message (no retraining): retries
    # are for a killed or preempted task, which resumes from its checkpoints.
    inputs = {
        "formatted": formatted.path,
        "data_sha256": data_sha256,
        "base_model": base_model,
        "adapter": adapter,
        "training": training,
        "seed": seed,
    }
    with reported("tune_adapter", out.with_name(out.name + "-user-error.json"), inputs):
        import torch

        from adaptune.atomic import write_json_atomic, write_text_atomic
        from adaptune.tuning.adapter import tune_adapter as tune
        from adaptune.tuning.applies import check_method_applies
        from adaptune.tuning.checkpoint_dirs import checkpoint_dir, training_key
        from adaptune.tuning.loss_log import loss_log_path
        from adaptune.tuning.methods import method_from_dict
        from adaptune.tuning.processes import (
            TuningOutputs,
            cluster_from_env,
            process_count,
            tune_in_processes,
        )
        from adaptune.tuning.settings import TrainingSettings

        settings = TrainingSettings.from_dict({**training, "seed": seed})
        method = method_from_dict(adapter)
        check_method_applies(
            method,
            base_model,
            {"training.max_length": settings.max_length},
            packing=settings.packing,
        )
        train_file, eval_file = (
            Path(formatted.path) / "train.jsonl",
            Path(formatted.path) / "eval.jsonl",
        )
        key = training_key(
            [train_file, eval_file],
            {"base_model": base_model, "adapter": adapter, "training": training, "seed": seed},
        )
        processes = process_count(settings.processes, torch.cuda.device_count())
        cluster = cluster_from_env()
        run = {
            "train_file": train_file,
            "adapter_dir": out,
            "base_model": base_model,
            "settings": settings,
            "method": method,
            "eval_file": eval_file,
            "checkpoint_dir": checkpoint_dir("tune-adapter", out, key),
            "loss_log": loss_log_path(),
        }
        if processes > 1 or cluster.nodes > 1:  # one process per GPU, started here
            result = tune_in_processes(processes=processes, cluster=cluster, **run)
        else:
            result = TuningOutputs.from_result(tune(**run))
    if result is None:  # another machine of a multi-machine job: the first one publishes
        raise SystemExit(0)
    for name, value in result.summary.items():
        training_metrics.log_metric(name, value)
    write_json_atomic(
        Path(training_metrics.path),
        {"losses": result.losses, "eval_losses": result.eval_losses},
    )
    trained_adapter.metadata.update(
        {
            "base_model": base_model,
            "data_sha256": data_sha256,
            "method": adapter.get("method", "lora"),
        }
    )
    write_text_atomic(Path(training_report.path), result.report_html)
    outputs = namedtuple("Outputs", ["first_loss", "final_loss"])
    return outputs(result.summary["first_loss"], result.summary["final_loss"])
