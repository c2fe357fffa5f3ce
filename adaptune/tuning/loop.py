"""The training loop: length-grouped batches, AdamW, warmup then linear decay, a progress bar."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from adaptune.errors import UserError
from adaptune.tuning.batching import batch_stream
from adaptune.tuning.encoding import Encoded, collate
from adaptune.tuning.settings import TrainingSettings


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite; the learning rate is usually too high."""


@dataclass
class TrainingHistory:
    """What happened during training.

    Attributes:
        losses: Training loss per step.
        tokens: Real (non-padding) tokens seen.
        target_tokens: Tokens the loss was computed on.
        epochs: Passes over the data (fractional).
        wall_seconds: Time spent in the loop.
    """

    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    target_tokens: int = 0
    epochs: float = 0.0
    wall_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        """Real tokens processed per second."""
        return self.tokens / self.wall_seconds if self.wall_seconds else 0.0


def warmup_then_linear_decay(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear from 0 to 1 over ``warmup`` steps, then down to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train(
    model: PreTrainedModel,
    examples: list[Encoded],
    settings: TrainingSettings,
    pad_id: int,
    family: str,
    show_progress: bool = True,
) -> TrainingHistory:
    """Train the model's trainable parameters (the adapter) in place.

    Args:
        model: A PEFT model; only parameters with ``requires_grad`` are updated.
        examples: Encoded training examples.
        settings: Steps, learning rate, batch size and seed.
        pad_id: Padding token id.
        family: ``causal`` or ``seq2seq``.
        show_progress: Show a progress bar with loss, tokens/s and ETA.

    Returns:
        The loss per step and throughput figures.

    Raises:
        TrainingDivergedError: If the loss becomes NaN or infinite.
    """
    torch.manual_seed(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    warmup = math.ceil(settings.steps * settings.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_then_linear_decay(s, settings.steps, warmup)
    )
    lengths = [len(e.input_ids) for e in examples]
    stream = batch_stream(lengths, settings.batch_size, settings.seed)
    history = TrainingHistory()
    seen = 0
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=settings.steps, desc="tune", unit="step", disable=not show_progress)
    for step in range(settings.steps):
        _, indices = next(stream)
        batch = [examples[i] for i in indices]
        loss = model(**collate(batch, pad_id, family)).loss
        value = loss.item()
        if not math.isfinite(value):
            bar.close()
            raise TrainingDivergedError(
                f"training diverged at step {step + 1}: loss is {value}; "
                f"lower learning_rate (now {settings.learning_rate})"
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        history.losses.append(value)
        history.tokens += sum(
            len(e.input_ids) + (len(e.labels) if family == "seq2seq" else 0) for e in batch
        )
        history.target_tokens += sum(e.target_tokens for e in batch)
        seen += len(batch)
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{value:.3f}", tok_s=f"{history.tokens / elapsed:,.0f}")
        bar.update(1)
    bar.close()
    model.eval()
    history.wall_seconds = time.perf_counter() - start
    history.epochs = seen / len(examples)
    return history
