"""``tune_adapter``: train an adapter on formatted data, check it, and save it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adaptune.atomic import staged_directory, write_bytes_atomic, write_json_atomic
from adaptune.base_models import load_base_model
from adaptune.base_models.quantization import check_quantize
from adaptune.compute.device import device_for_training
from adaptune.compute.host_memory import return_large_blocks
from adaptune.compute.precision import resolve_precision, trainable_to
from adaptune.data.encoding import IGNORE_INDEX, Encoded, encode_pairs
from adaptune.data.jsonl import read_jsonl
from adaptune.errors import UserError
from adaptune.tuning.checkpoint import LoopState
from adaptune.tuning.distributed import barrier, current_workers
from adaptune.tuning.fit import check_memory
from adaptune.tuning.loading import apply_method, save_adapter
from adaptune.tuning.loop import TrainingResult, train, trainable_state
from adaptune.tuning.loss_curve import plot_loss_png, training_report_html
from adaptune.tuning.loss_log import append_loss
from adaptune.tuning.methods import AdapterMethod, LastLayersMethod
from adaptune.tuning.sanity import check_not_noop, check_reload, probe_logits, reloaded_adapter
from adaptune.tuning.settings import TrainingSettings

HISTORY_FILE = "training_history.json"
CURVE_FILE = "loss_curve.png"


@dataclass
class TuneResult:
    """What tuning produced.

    Attributes:
        adapter_dir: The saved adapter (PEFT format, or last-layer tensors).
        training: Loss history, eval history and counters.
        summary: Scalars for the Metrics artifact.
        report_html: The training report page (loss curves and facts).
    """

    adapter_dir: Path
    training: TrainingResult
    summary: dict[str, float]
    report_html: str


def _encode(path: Path | None, tokenizer: Any, family: str, max_length: int) -> list[Encoded]:
    if path is None or not path.is_file():
        return []
    return encode_pairs(tokenizer, read_jsonl(path), family, max_length)


def summarise(result: TrainingResult, examples: int) -> dict[str, float]:
    """Scalars of a training run: losses, steps, tokens, throughput, wall time."""
    state = result.state
    tail = state.losses[-10:]
    summary = {
        "first_loss": state.losses[0],
        "final_loss": sum(tail) / len(tail),
        "steps": float(state.step),
        "total_steps": float(result.total_steps),
        "train_examples": float(examples),
        "train_tokens": float(state.tokens),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "wall_seconds": round(state.wall_seconds, 2),
        "trainable_parameters": float(result.trainable_parameters),
        "stopped_early": float(state.stopped_early),
        "resumed_from_step": float(state.resumed_from),
    }
    if state.best_eval is not None:
        summary["eval_loss"] = state.best_eval
        summary["best_step"] = float(state.best_step or 0)
    return summary


def seen_example(example: Encoded, tokenizer: Any, family: str) -> tuple[str, str]:
    """An encoded example decoded as the model sees it: (what it reads, what it learns to write).

    Special tokens are kept, so a missing BOS, a doubled one or an untrained end-of-turn token
    shows.
    """
    if family == "seq2seq":
        written = [t for t in example.labels if t != IGNORE_INDEX]
        return tokenizer.decode(example.input_ids), tokenizer.decode(written)
    split = next(
        (i for i, t in enumerate(example.labels) if t != IGNORE_INDEX), len(example.labels)
    )
    return tokenizer.decode(example.input_ids[:split]), tokenizer.decode(example.input_ids[split:])


def tune_adapter(
    train_file: Path,
    adapter_dir: Path,
    base_model: str,
    settings: TrainingSettings,
    method: AdapterMethod,
    eval_file: Path | None = None,
    checkpoint_dir: Path | None = None,
    show_progress: bool = True,
    loss_log: Path | None = None,
) -> TuneResult:
    """Train an adapter with the loss on target tokens only, check it and save it.

    The adapter directory is written as a whole (staged, then renamed) and only after two
    checks pass: training changed the adapter (it is not a no-op), and the saved adapter,
    reloaded onto the same base model (never a second copy of it), reproduces the trained
    model's logits on a probe batch. Before anything loads, the run's memory is estimated from
    the base model's config and refused when it cannot fit the device (see
    :mod:`adaptune.tuning.fit`); the estimate is printed and goes into the summary. On CPU,
    freed blocks of 8 MiB or more go back to the system at once from then on, and while training
    checkpoints activations the heap's free pages do too (:mod:`adaptune.compute.host_memory`).

    Args:
        train_file: Formatted JSONL with ``prompt`` and ``target`` per line.
        adapter_dir: Where the adapter goes, with ``training_history.json`` and
            ``loss_curve.png`` beside the weights.
        base_model: ``builtin:...`` or a checkpoint directory.
        settings: Steps or epochs, learning rate, batching, eval, checkpoints, stop rules.
        method: The adapter method and its settings.
        eval_file: Formatted eval JSONL for eval loss, early stopping and best weights.
        checkpoint_dir: Resumable checkpoints; a rerun with the same directory resumes.
        show_progress: Show a progress bar.
        loss_log: Append each step's loss here as it is logged (``tuning.loss_log``).

    Returns:
        Paths, history and summary metrics.

    Raises:
        UserError: On empty data, settings that do not fit the model, divergence, or a failed
            sanity check.
    """
    device = device_for_training()
    dtype = resolve_precision(settings.precision, device, "training.precision")
    check_quantize(method.quantize, base_model)
    if device.type == "cpu":  # activations live in host memory: freed ones must not pile up
        return_large_blocks()
    fit = check_memory(base_model, method, settings, device, current_workers().main)
    base = load_base_model(base_model, dtype, method.quantize, device, settings.attention)
    train_examples = _encode(train_file, base.tokenizer, base.family, settings.max_length)
    if not train_examples:
        raise UserError(f"{train_file}: no training examples")
    eval_examples = _encode(eval_file, base.tokenizer, base.family, settings.max_length)
    torch.manual_seed(settings.seed)  # adapter weights are drawn from the global generator
    model = apply_method(base.model, method, base.family).to(device)
    initial = {k: v.detach().cpu().clone() for k, v in trainable_state(model).items()}
    workers = current_workers()
    log_step = None
    if loss_log is not None and workers.main:

        def log_step(state: LoopState) -> None:
            append_loss(loss_log, state.step, state.losses[-1])

    result = train(
        model,
        train_examples,
        eval_examples,
        settings,
        base.tokenizer.pad_token_id,
        base.family,
        checkpoint_dir,
        show_progress,
        log_step,
        None if fit is None else fit.gradient_checkpointing,
    )
    summary = summarise(result, len(train_examples))
    if fit is not None:
        summary |= fit.estimate.metrics()
        summary["gradient_checkpointing"] = float(fit.gradient_checkpointing)
    if not workers.main:  # under torchrun, the first process checks and saves
        barrier(workers)
        return TuneResult(adapter_dir=adapter_dir, training=result, summary=summary, report_html="")
    check_not_noop(trainable_state(model), initial)
    if isinstance(method, LastLayersMethod):  # trained in fp32, they are base weights again
        trainable_to(model, dtype)
    probe = eval_examples or train_examples
    pad = base.tokenizer.pad_token_id
    expected = probe_logits(model, probe, pad, base.family)
    png = plot_loss_png(
        result.state.losses, result.state.eval_losses, f"{base_model} + {method.method}"
    )
    report = training_report_html(
        png,
        {"base model": base_model, **method.to_dict(), **settings.to_dict(), **summary},
        seen_example(train_examples[0], base.tokenizer, base.family),
    )
    with staged_directory(adapter_dir) as staging:
        save_adapter(model, method, base_model, staging)
        write_json_atomic(
            staging / HISTORY_FILE,
            {
                "losses": result.state.losses,
                "eval_losses": result.state.eval_losses,
                "settings": settings.to_dict(),
                "adapter": method.to_dict(),
                "base_model": base_model,
                "summary": summary,
            },
        )
        write_bytes_atomic(staging / CURVE_FILE, png)
        with reloaded_adapter(model, staging, initial) as reloaded:
            got = probe_logits(reloaded, probe, pad, base.family)
        check_reload(expected, got, bf16=dtype != torch.float32 or method.quantize != "none")
    barrier(workers)
    return TuneResult(adapter_dir=adapter_dir, training=result, summary=summary, report_html=report)
