"""Training settings: one typed, validated config, passed to the pipeline as one dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from adaptune.data.encoding import DEFAULT_MAX_LENGTH
from adaptune.errors import UserError
from adaptune.settings_dict import SEED_LIMIT, check_fields, from_pipeline_dict, setting


@dataclass(frozen=True)
class TrainingSettings:
    """How long and how fast to train, when to evaluate, checkpoint and stop.

    Attributes:
        steps: Optimizer steps; 0 means train for ``epochs`` instead.
        epochs: Passes over the training data, used when ``steps`` is 0.
        learning_rate: Peak learning rate.
        batch_size: Examples per forward pass.
        grad_accum: Forward passes per optimizer step (effective batch = batch_size × grad_accum).
        schedule: ``linear`` or ``cosine`` decay after warmup.
        warmup_fraction: Share of steps spent warming up the learning rate from zero.
        max_grad_norm: Gradient clipping norm.
        seed: Seeds adapter init, batch order and dropout.
        max_length: Most tokens per example; prompts are cut from the left beyond it.
        max_batch_tokens: Most padded tokens per forward pass: a batch of long examples is run
            in chunks whose gradients add up to the whole batch's (0: no limit). Bounds peak
            memory by tokens rather than by the longest batch.
        packing: Lay each batch's examples end to end in padding-free rows of at most
            ``max_batch_tokens`` tokens, position ids restarting per example and attention
            kept within each example (causal models; see :mod:`adaptune.compute.packing`).
        precision: The compute dtype the base model is held and run in: ``auto`` (bf16 on a GPU
            that supports it, else fp16 on GPU; fp32 on CPU), ``bf16``, ``fp16`` (GPU only) or
            ``fp32``. Adapter weights and optimizer state are fp32 whatever it is.
        attention: The attention implementation the base model runs (transformers'
            ``attn_implementation``): ``auto`` (``flash_attention_2`` when the flash-attn
            package is installed and the model runs on a CUDA GPU in bf16 or fp16, else
            ``sdpa``), ``sdpa``, ``eager`` or ``flash_attention_2``
            (see :mod:`adaptune.base_models.attention`).
        eval_every: Compute eval loss every N steps (0: only at the end).
        patience: Stop after this many evaluations without improvement (0: never stop early).
        checkpoint_every: Write a resumable checkpoint every N steps (0: never).
        divergence_factor: Stop when the loss exceeds this multiple of the first loss.
        gradient_checkpointing: Recompute each block's activations in the backward pass
            instead of keeping them (less memory, about a third more compute): ``True``,
            ``False``, or ``"auto"``: on a GPU when the fit check's estimate says the run
            would not fit without it (see :func:`adaptune.tuning.fit.resolve_checkpointing`).
        compile: Compile each transformer block with ``torch.compile`` (``dynamic=True``)
            while training (see :mod:`adaptune.tuning.compilation`); the first steps pay the
            compilation.
        processes: Training processes per machine, data-parallel (0: one per visible GPU, one
            on a machine without). N processes take N batches per forward pass, so they train
            as one process with ``grad_accum`` × N. More than one on CPU runs gloo (tests).
        device_memory_gib: GiB of memory the tuning device offers, used by the fit check
            instead of what the device reports (0: ask the device).
    """

    setting_name: ClassVar[str] = "training"

    steps: int = setting(300, "Optimizer steps (0: use epochs).", ge=0)
    epochs: int = setting(1, "Passes over the data if steps is 0.", ge=0)
    learning_rate: float = setting(3e-3, "Peak learning rate.", gt=0)
    batch_size: int = setting(16, "Examples per forward pass.", ge=1)
    grad_accum: int = setting(1, "Forward passes per optimizer step.", ge=1)
    schedule: Literal["linear", "cosine"] = setting(
        "linear", "Decay after warmup: 'linear' or 'cosine'."
    )
    warmup_fraction: float = setting(0.05, "Share of steps warming up.", ge=0, lt=1)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.", gt=0)
    seed: int = setting(0, "Random seed.", ge=0, le=SEED_LIMIT)
    max_length: int = setting(DEFAULT_MAX_LENGTH, "Most tokens per example.", ge=8)
    max_batch_tokens: int = setting(
        4096, "Most padded tokens per forward pass (0: no limit).", ge=0
    )
    packing: bool = setting(False, "Padding-free rows of max_batch_tokens: true or false.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = setting(
        "auto", "Base model dtype: 'auto', 'bf16', 'fp16' (GPU only) or 'fp32'."
    )
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = setting(
        "auto", "Attention: 'auto', 'sdpa', 'eager' or 'flash_attention_2' (GPU only)."
    )
    eval_every: int = setting(50, "Eval loss every N steps (0: end).", ge=0)
    patience: int = setting(0, "Evals without improvement (0: off).", ge=0)
    checkpoint_every: int = setting(50, "Checkpoint every N steps.", ge=0)
    divergence_factor: float = setting(10.0, "Stop when loss > this × the first loss.", gt=1)
    gradient_checkpointing: bool | Literal["auto"] = setting(
        "auto",
        "Recompute activations in backward: auto, true or false.",
        phrase="'auto', true or false",
    )
    compile: bool = setting(False, "torch.compile each block while training: true or false.")
    processes: int = setting(0, "Processes per machine, one per GPU (0: every GPU).", ge=0)
    device_memory_gib: float = setting(0.0, "Device memory for the fit check (0: ask).", ge=0)

    def __post_init__(self) -> None:
        check_fields(self, self.setting_name)
        if not (self.steps > 0 or self.epochs > 0):
            raise UserError("training.steps or training.epochs must be > 0")
        if self.patience and not self.eval_every:
            raise UserError("training.patience needs training.eval_every > 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainingSettings:
        """Build from the pipeline's ``training`` dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, cls.setting_name)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)

    def total_steps(self, examples: int) -> int:
        """Optimizer steps to run for ``examples`` training examples."""
        if self.steps:
            return self.steps
        per_epoch = -(-examples // (self.batch_size * self.grad_accum))
        return max(1, per_epoch * self.epochs)
