"""The training loop.

Length-grouped batches, gradient accumulation, AdamW with warmup then linear or cosine decay,
eval loss every N steps with early stopping and the best weights kept, a watchdog for NaN and
divergence, resumable atomic checkpoints, and a progress bar with loss, tokens/s and ETA.
The forward runs under autocast in the dtype the base model is held in (bf16 or fp16; none for
fp32), the trainable weights and the optimizer state are fp32, and fp16 scales the loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from adaptune.compute.host_memory import trimming_heap
from adaptune.compute.loss import LossFunction, eval_loss
from adaptune.compute.packing import packed_rows, packed_tensors
from adaptune.compute.precision import grad_scaler, held_dtype, mixed_precision
from adaptune.data.encoding import Encoded, collate, token_chunks
from adaptune.errors import UserError
from adaptune.tuning.batching import BatchOrder
from adaptune.tuning.checkpoint import (
    LoopState,
    latest_checkpoint,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from adaptune.tuning.compilation import compiled
from adaptune.tuning.distributed import (
    average_gradients,
    current_workers,
    sum_over_workers,
)
from adaptune.tuning.gradient_checkpointing import checkpointed, wants_checkpointing
from adaptune.tuning.settings import TrainingSettings

DIVERGENCE_GRACE_STEPS = 5


class TrainingDivergedError(UserError):
    """The loss became NaN, infinite, or far above where it started."""


@dataclass
class TrainingResult:
    """What the loop did.

    Attributes:
        state: Loss history, eval history, counters.
        total_steps: Steps the run was set to do.
        trainable_parameters: Number of trained parameters.
    """

    state: LoopState
    total_steps: int
    trainable_parameters: int

    @property
    def tokens_per_second(self) -> float:
        """Real tokens processed per second of training."""
        return self.state.tokens / self.state.wall_seconds if self.state.wall_seconds else 0.0


def backward_batch(
    loss_fn: LossFunction,
    batch: list[Encoded],
    pad_id: int,
    family: str,
    device: torch.device,
    max_tokens: int,
    scale: float,
    scaler: torch.amp.GradScaler | None = None,
    packing: bool = False,
) -> float:
    """Accumulate ``scale`` × the batch's mean-token-loss gradient, chunk by chunk.

    The forward runs under autocast in the model's held dtype; with ``scaler`` (fp16) the
    gradients are of the scaled loss, to be unscaled before clipping. With ``packing`` each
    chunk is one padding-free row of at most ``max_tokens`` tokens
    (:mod:`adaptune.compute.packing`), else rows padded to the chunk's longest.

    Returns:
        ``scale`` × the batch's loss.
    """
    targets = max(1, sum(e.target_tokens for e in batch))
    total = 0.0
    dtype = held_dtype(loss_fn.model)
    chunks = packed_rows(batch, max_tokens) if packing else token_chunks(batch, max_tokens)
    for chunk in chunks:
        laid = packed_tensors(chunk) if packing else collate(chunk, pad_id, family)
        tensors = {k: v.to(device) for k, v in laid.items()}
        weight = scale * sum(e.target_tokens for e in chunk) / targets
        with mixed_precision(loss_fn.model, device, dtype):
            loss = loss_fn(tensors) * weight
        (loss if scaler is None else scaler.scale(loss)).backward()
        total += loss.item()
    return total


def lr_multiplier(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier: linear warmup over ``warmup`` steps, then decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return max(0.0, 1.0 - progress)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors by name (the same tensors, not copies)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def train(
    model: torch.nn.Module,
    train_examples: list[Encoded],
    eval_examples: list[Encoded],
    settings: TrainingSettings,
    pad_id: int,
    family: str,
    checkpoint_dir: Path | None = None,
    show_progress: bool = True,
    on_step: Callable[[LoopState], None] | None = None,
    gradient_checkpointing: bool | None = None,
) -> TrainingResult:
    """Train the model's trainable parameters in place; resume from a checkpoint if there is one.

    At the end the model holds the weights of the best evaluation (lowest eval loss) when eval
    ran, else the last weights. Activations are checkpointed while training when
    ``gradient_checkpointing`` says so (the fit check's verdict), or when it is None, as
    ``settings.gradient_checkpointing`` resolves for this model (see
    :func:`adaptune.tuning.gradient_checkpointing.wants_checkpointing`), and not after; with
    ``settings.compile`` its blocks run compiled while training (see
    :mod:`adaptune.tuning.compilation`). While it checkpoints on CPU, the heap's free pages go
    back to the system every half second (:func:`adaptune.compute.host_memory.trimming_heap`).
    Other arguments, result and errors are :func:`train_steps`'.
    """
    device = next(model.parameters()).device
    recompute = gradient_checkpointing
    if recompute is None:
        recompute = getattr(model, "config", None) is not None and wants_checkpointing(
            settings, model, device
        )
    trim = recompute and device.type == "cpu"  # checkpointing: memory matters more than time
    with checkpointed(model, recompute), compiled(model, settings.compile), trimming_heap(trim):
        return train_steps(
            model,
            train_examples,
            eval_examples,
            settings,
            pad_id,
            family,
            checkpoint_dir,
            show_progress,
            on_step,
        )


def train_steps(
    model: torch.nn.Module,
    train_examples: list[Encoded],
    eval_examples: list[Encoded],
    settings: TrainingSettings,
    pad_id: int,
    family: str,
    checkpoint_dir: Path | None = None,
    show_progress: bool = True,
    on_step: Callable[[LoopState], None] | None = None,
) -> TrainingResult:
    """The training loop itself (see :func:`train`), with the model as it is set up.

    At the end the model holds the weights of the best evaluation (lowest eval loss) when eval
    ran, else the last weights.

    Args:
        model: Model whose trainable parameters (``requires_grad``) are the adapter; it must
            already be on the training device.
        train_examples: Encoded training examples.
        eval_examples: Encoded eval examples (empty: no eval loss, no early stopping).
        settings: Steps or epochs, learning rate, batching, eval, checkpoint and stop rules.
        pad_id: Padding token id.
        family: ``causal`` or ``seq2seq``.
        checkpoint_dir: Where resumable checkpoints go; the newest one there is resumed.
        show_progress: Show a progress bar with loss, tokens/s and ETA.
        on_step: Called after every optimizer step (for observers and tests).

    Returns:
        The loop state and counts.

    Raises:
        TrainingDivergedError: If the loss becomes NaN/inf or exceeds
            ``divergence_factor`` × the first loss.
    """
    device = next(model.parameters()).device
    workers = current_workers()
    total = settings.total_steps(len(train_examples) // workers.world)
    params = trainable_state(model)
    optimizer = torch.optim.AdamW(params.values(), lr=settings.learning_rate, weight_decay=0.0)
    scaler = grad_scaler(device, held_dtype(model))
    warmup = math.ceil(total * settings.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total, warmup, settings.schedule)
    )
    order = BatchOrder(
        [len(e.input_ids) for e in train_examples], settings.batch_size, settings.seed
    )
    loss_fn = LossFunction(model, family)
    state = LoopState()
    best: dict[str, torch.Tensor] | None = None
    resume = latest_checkpoint(checkpoint_dir) if checkpoint_dir else None
    if resume is not None:
        state, saved, best, states = load_checkpoint(resume)
        with torch.no_grad():
            for name, tensor in saved.items():
                params[name].copy_(tensor)
        optimizer.load_state_dict(states["optimizer"])
        scheduler.load_state_dict(states["scheduler"])
        order.load_state_dict(states["order"])
        set_rng_states(states["rng"])
        state.resumed_from = state.step
    else:
        torch.manual_seed(settings.seed + workers.rank)  # the same adapter init, own dropout

    def checkpoint() -> None:
        states = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "order": order.state_dict(),
            "rng": rng_states(),
        }
        save_checkpoint(checkpoint_dir, state, params, best, states)

    model.train()
    bar = tqdm(
        total=total,
        initial=state.step,
        desc="tune",
        unit="step",
        disable=not (show_progress and workers.main),
    )
    attempt_start, attempt_tokens = time.perf_counter(), 0
    wall_before = state.wall_seconds
    while state.step < total and not state.stopped_early:
        step_loss, step_tokens, step_targets = 0.0, 0, 0
        for _ in range(settings.grad_accum):
            shares = [order.next() for _ in range(workers.world)]  # every process, same order
            batch = [train_examples[i] for i in shares[workers.rank]]
            step_loss += backward_batch(
                loss_fn,
                batch,
                pad_id,
                family,
                device,
                settings.max_batch_tokens,
                1 / settings.grad_accum,
                scaler,
                settings.packing,
            )
            step_tokens += sum(
                len(e.input_ids) + (len(e.labels) if family == "seq2seq" else 0) for e in batch
            )
            step_targets += sum(e.target_tokens for e in batch)
        if workers.world > 1:
            average_gradients(list(params.values()), workers)
            step_loss, step_tokens, step_targets = sum_over_workers(
                [step_loss, step_tokens, step_targets], workers
            )
            step_loss /= workers.world
        state.tokens += int(step_tokens)
        attempt_tokens += int(step_tokens)
        state.target_tokens += int(step_targets)
        _watchdog(step_loss, state, settings)
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params.values(), settings.max_grad_norm)
        scaler.step(optimizer)  # skipped when fp16 gradients overflowed
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.losses.append(step_loss)
        state.wall_seconds = wall_before + time.perf_counter() - attempt_start
        last_step = state.step == total
        if eval_examples and (
            last_step or (settings.eval_every and state.step % settings.eval_every == 0)
        ):
            value = eval_loss(
                model,
                eval_examples,
                pad_id,
                family,
                device,
                loss_fn,
                max_tokens=settings.max_batch_tokens,
            )
            state.eval_losses.append([state.step, value])
            if state.best_eval is None or value < state.best_eval:
                state.best_eval, state.best_step, state.bad_evals = value, state.step, 0
                best = {k: v.detach().cpu().clone() for k, v in params.items()}
            else:
                state.bad_evals += 1
                if settings.patience and state.bad_evals >= settings.patience:
                    state.stopped_early = True
        elapsed = time.perf_counter() - attempt_start
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{attempt_tokens / elapsed:,.0f}")
        bar.update(1)
        if (
            workers.main
            and checkpoint_dir
            and settings.checkpoint_every
            and not last_step
            and not state.stopped_early
            and state.step % settings.checkpoint_every == 0
        ):
            checkpoint()
        if on_step:
            on_step(state)
    bar.close()
    model.eval()
    if best is not None:
        with torch.no_grad():
            for name, tensor in best.items():
                params[name].copy_(tensor.to(params[name].device))
    return TrainingResult(
        state=state, total_steps=total, trainable_parameters=sum(p.numel() for p in params.values())
    )


def _watchdog(loss: float, state: LoopState, settings: TrainingSettings) -> None:
    """Stop with a clear error on a NaN/inf loss or a loss far above the first one."""
    step = state.step + 1
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"training diverged at step {step}: loss is {loss}; lower training.learning_rate "
            f"(now {settings.learning_rate})"
        )
    first = state.losses[0] if state.losses else loss
    if step > DIVERGENCE_GRACE_STEPS and loss > settings.divergence_factor * first:
        raise TrainingDivergedError(
            f"training diverged at step {step}: loss {loss:.3f} is over "
            f"{settings.divergence_factor:g}× the first loss {first:.3f}; lower "
            f"training.learning_rate (now {settings.learning_rate})"
        )
