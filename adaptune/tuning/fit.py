"""Whether a tuning run fits in the device's memory, estimated before any weight is loaded.

The estimate adds up, from the base model's structure (built on the ``meta`` device from its
``config.json``, see :func:`adaptune.tuning.applies.empty_model`) and the training settings:

* **weights**: every parameter at the bytes of the dtype it is held in (fp32 4, bf16/fp16 2;
  a quantised base holds its linear layers, the output head aside, at 1 byte (8-bit) or about
  0.52 (4-bit nf4 with double quantisation), the rest in the compute dtype);
* **adapter**: new trainable parameters (LoRA, IA³, prompt embeddings) in fp32, 4 bytes each;
* **optimizer**: per trainable parameter an fp32 gradient and AdamW's two fp32 moments, 12 bytes;
* **activations**: kept for the backward pass, per token of the largest forward pass
  (``batch_size`` × ``max_length`` rows, fewer when ``max_batch_tokens`` splits the batch):
  ``8 × hidden + 3 × intermediate`` values per layer without gradient checkpointing (the
  normed inputs, q/k/v, attention output and residuals; the MLP's gate, up and activated
  values; attention itself runs as a fused kernel that keeps no score matrix), or one
  ``hidden`` per layer plus one layer's worth with it; values are 2 bytes under bf16 autocast
  on a GPU and the weights' dtype on CPU;
* **logits**: the output head over the positions whose loss is taken at once (one chunk of the
  chunked loss of a causal model, else every position of the pass), ``LOGIT_BYTES`` per logit
  (the head's result, its fp32 copy, the log-probabilities or their gradient);
* **runtime**: 0.5 GiB for the framework itself (CUDA context, allocator, libraries).

It is an estimate, not a measurement: it errs high on activations (every row at
``max_length``), so a refusal names the settings that lower it, and ``training.device_memory_gib``
overrides the device's reported memory when that is not the memory the run will get.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields

import torch
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from adaptune.compute.device_memory import DeviceMemory, device_memory
from adaptune.compute.loss import LOGIT_BYTES, chunk_positions
from adaptune.compute.precision import resolve_precision
from adaptune.errors import UserError
from adaptune.tuning.applies import empty_model, quiet
from adaptune.tuning.methods import AdapterMethod, LastLayersMethod, PromptTuningMethod
from adaptune.tuning.settings import TrainingSettings

GIB = 2**30
DTYPE_BYTES: dict[str, float] = {
    "float32": 4,
    "fp32": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "fp16": 2,
}
"""Bytes per parameter of each dtype a base model can be held in."""
QUANTIZED_BYTES: dict[str, float] = {"8bit": 1.0, "4bit": 0.5 + 1 / 64 + 4 / (64 * 256)}
"""Bytes per quantised linear weight (4-bit: nf4 plus double-quantised block scales)."""
ATTENTION_VALUES = 8
"""Activation values kept per token, per layer, per unit of ``hidden``."""
MLP_VALUES = 3
"""Activation values kept per token, per layer, per unit of the MLP's ``intermediate`` size."""
ADAPTER_BYTES = 4
OPTIMIZER_BYTES = 12
RUNTIME_BYTES = GIB // 2
CHECKPOINTING_SETTING = "gradient_checkpointing"


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a model that its memory depends on.

    Attributes:
        parameters: All parameters (tied ones once).
        linear_parameters: Weights of linear layers other than the output head (what a 4-bit
            or 8-bit base quantises).
        hidden: Width of the residual stream.
        layers: Transformer blocks (encoder and decoder together for seq2seq).
        intermediate: Width of the MLP's inner layer.
        vocab: Vocabulary size (width of the output head).
    """

    parameters: int
    linear_parameters: int
    hidden: int
    layers: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, model: PreTrainedModel) -> ModelShape:
        """The shape of ``model`` (on the meta device or loaded) from its parameters and config."""
        config = model.config
        hidden = int(config.hidden_size)
        layers = int(config.num_hidden_layers) + int(getattr(config, "num_decoder_layers", 0) or 0)
        intermediate = next(
            (
                int(v)
                for key in ("intermediate_size", "n_inner", "d_ff", "ffn_dim")
                if isinstance(v := getattr(config, key, None), int) and v > 0
            ),
            4 * hidden,
        )
        linear = sum(
            module.weight.numel()
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear | Conv1D) and name.rsplit(".", 1)[-1] != "lm_head"
        )
        return cls(
            parameters=sum(p.numel() for p in model.parameters()),
            linear_parameters=linear,
            hidden=hidden,
            layers=layers,
            intermediate=intermediate,
            vocab=int(config.vocab_size),
        )


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a tuning run needs, by what holds them."""

    weights: int
    adapter: int
    optimizer: int
    activations: int
    logits: int
    runtime: int = RUNTIME_BYTES

    @property
    def total(self) -> int:
        """All of it."""
        return sum(getattr(self, f.name) for f in fields(self))

    def parts_gib(self) -> dict[str, float]:
        """Each part in GiB, rounded to 0.1."""
        return {f.name: round(getattr(self, f.name) / GIB, 1) for f in fields(self)}

    def describe(self) -> str:
        """``~31.4 GiB (weights 28.0, adapter 0.1, ...)``."""
        parts = ", ".join(f"{name} {value:.1f}" for name, value in self.parts_gib().items())
        return f"~{self.total / GIB:.1f} GiB ({parts})"

    def metrics(self) -> dict[str, float]:
        """Scalars for the training metrics (GiB, 0.01)."""
        values = {f"memory_estimate_{f.name}_gib": getattr(self, f.name) for f in fields(self)}
        values["memory_estimate_gib"] = self.total
        return {k: round(v / GIB, 2) for k, v in values.items()}


def tokens_per_pass(settings: TrainingSettings, extra_per_row: int = 0) -> int:
    """Tokens of the largest forward pass: whole rows at ``max_length`` (plus extra).

    ``max_batch_tokens`` runs a batch in chunks of whole rows, at least one row at a time.
    With ``packing`` a pass is one padding-free row of at most ``max_batch_tokens`` tokens (an
    example longer than that gets a row of its own), never more than the whole batch.
    """
    width = settings.max_length + extra_per_row
    whole = settings.batch_size * width
    if not settings.max_batch_tokens:
        return whole
    if settings.packing:
        return min(whole, max(settings.max_batch_tokens, width))
    rows = min(settings.batch_size, max(1, settings.max_batch_tokens // width))
    return rows * width


def activation_bytes(
    shape: ModelShape, tokens: int, value_bytes: float, gradient_checkpointing: bool
) -> int:
    """Bytes of activations kept for the backward pass of ``tokens`` tokens."""
    per_layer = ATTENTION_VALUES * shape.hidden + MLP_VALUES * shape.intermediate
    if gradient_checkpointing:
        values = shape.layers * shape.hidden + per_layer
    else:
        values = shape.layers * per_layer
    return int(tokens * values * value_bytes)


@dataclass(frozen=True)
class FitPlan:
    """What the estimate of one tuning run is made from.

    Attributes:
        shape: The base model's sizes.
        trainable: Parameters the optimizer updates.
        new_parameters: Trainable parameters the adapter adds (0 for ``last_layers``, which
            trains base weights in place).
        weight_bytes: Bytes per base parameter held in the compute dtype.
        value_bytes: Bytes per activation value.
        tokens: Tokens of the largest forward pass.
        quantized_bytes: Bytes per quantised linear weight, or None for an unquantised base.
        logits_chunk: Target positions per chunk of the chunked loss (causal models whose
            adapter lives in the layers, see :func:`adaptune.compute.loss.chunk_positions`),
            or None when the loss takes the whole pass's logits at once.
    """

    shape: ModelShape
    trainable: int
    new_parameters: int
    weight_bytes: float
    value_bytes: float
    tokens: int
    quantized_bytes: float | None = None
    logits_chunk: int | None = None

    def estimate(
        self, gradient_checkpointing: bool, logits_tokens: int | None = None
    ) -> MemoryEstimate:
        """The estimate with or without checkpointing; ``logits_tokens`` per chunk of the loss.

        Args:
            gradient_checkpointing: Whether blocks recompute their activations in backward.
            logits_tokens: Positions whose logits are held at once (None: the plan's
                ``logits_chunk``, or the whole pass).
        """
        shape = self.shape
        if self.quantized_bytes is None:
            weights = shape.parameters * self.weight_bytes
        else:
            weights = (
                shape.linear_parameters * self.quantized_bytes
                + (shape.parameters - shape.linear_parameters) * self.weight_bytes
            )
        held = self.logits_chunk if logits_tokens is None else logits_tokens
        logit_positions = self.tokens if held is None else min(held, self.tokens)
        return MemoryEstimate(
            weights=int(weights),
            adapter=self.new_parameters * ADAPTER_BYTES,
            optimizer=self.trainable * OPTIMIZER_BYTES,
            activations=activation_bytes(
                shape, self.tokens, self.value_bytes, gradient_checkpointing
            ),
            logits=int(logit_positions * shape.vocab * LOGIT_BYTES),
        )


def _trainable(model: PreTrainedModel, method: AdapterMethod, family: str) -> tuple[int, int]:
    """(trainable, new) parameter counts of ``method`` applied to the meta-device ``model``."""
    if isinstance(method, LastLayersMethod):
        prefixes = tuple(method.trainable_prefixes(model))
        count = sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefixes))
        return count, 0
    from peft import get_peft_model

    with quiet():
        peft_model = get_peft_model(model, method.peft_config(family))  # may raise, see plan_for
    count = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return count, count


def stored_dtype_bytes(model: PreTrainedModel) -> float:
    """Bytes per parameter of the dtype the checkpoint's config names (fp32 when none)."""
    dtype = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    name = str(dtype).removeprefix("torch.") if dtype is not None else "float32"
    return DTYPE_BYTES.get(name, 4)


def plan_for(
    base_model: str,
    method: AdapterMethod,
    settings: TrainingSettings,
    device: torch.device,
    weight_bytes: float | None = None,
    quantized_bytes: float | None = None,
) -> FitPlan | None:
    """The plan of tuning ``base_model`` with ``method`` and ``settings`` on ``device``.

    Args:
        base_model: ``builtin:...`` or a local checkpoint directory (``gs://``: None, it is
            not fetched for an estimate; None too when the method does not apply to it).
        method: The adapter method.
        settings: The training settings (batch size, lengths).
        device: Where it will train (activations are bf16 under CUDA autocast).
        weight_bytes: Bytes per base parameter (see ``DTYPE_BYTES``); None: the dtype the
            checkpoint's config names, as ``from_pretrained`` loads it with no dtype.
        quantized_bytes: Bytes per quantised linear weight (see ``QUANTIZED_BYTES``), or None.
    """
    built = empty_model(base_model)
    if built is None:
        return None
    model, family = built
    if weight_bytes is None:
        weight_bytes = stored_dtype_bytes(model)
    shape = ModelShape.of(model)
    try:
        with torch.device("meta"):
            trainable, new = _trainable(model, method, family)
    except (ValueError, TypeError, KeyError, UserError):
        return None  # the method does not fit the model: applying it says why, naming the setting
    virtual = method.num_virtual_tokens if isinstance(method, PromptTuningMethod) else 0
    return FitPlan(
        shape=shape,
        trainable=trainable,
        new_parameters=new,
        weight_bytes=weight_bytes,
        value_bytes=2 if device.type == "cuda" else max(2, weight_bytes),
        tokens=tokens_per_pass(settings, virtual),
        quantized_bytes=quantized_bytes,
        logits_chunk=chunk_positions(shape.vocab)
        if family == "causal" and not isinstance(method, PromptTuningMethod)
        else None,
    )


def activations_fit(
    plan: FitPlan,
    memory: DeviceMemory,
    gradient_checkpointing: bool = False,
    logits_tokens: int | None = None,
) -> bool:
    """Whether the whole run fits in ``memory`` with (or without) gradient checkpointing.

    The decision of ``training.gradient_checkpointing: auto``: on when this is False without it.
    """
    return plan.estimate(gradient_checkpointing, logits_tokens).total <= memory.free_bytes


def resolve_checkpointing(
    choice: bool | str, plan: FitPlan | None, memory: DeviceMemory, device: torch.device
) -> bool:
    """``training.gradient_checkpointing`` resolved: ``true``/``false`` as set; ``auto`` below.

    ``auto`` is off on CPU, where recomputing only costs time (the host's RAM is the whole
    machine's), and on a GPU it is on when the run would not fit in ``memory`` without it
    (:func:`activations_fit`), or when there is no estimate (a ``gs://`` base).
    """
    if choice != "auto":
        return bool(choice)
    if device.type != "cuda":
        return False
    return plan is None or not activations_fit(plan, memory, False)


def plan_of_model(
    model: torch.nn.Module, settings: TrainingSettings, device: torch.device
) -> FitPlan:
    """The plan of training ``model`` as it is loaded (its adapter applied) on ``device``.

    The same estimate as :func:`plan_for` makes before loading, for callers of the training
    loop that did not make one: weights at the bytes of the frozen parameters' dtype, the
    trainable parameters as new ones when the model is a PEFT model.
    """
    from peft import PeftModel

    hf = model.get_base_model() if isinstance(model, PeftModel) else model
    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    frozen = next((p for p in params if not p.requires_grad), None)
    weight_bytes = frozen.element_size() if frozen is not None else 4
    return FitPlan(
        shape=ModelShape.of(hf),
        trainable=trainable,
        new_parameters=trainable if isinstance(model, PeftModel) else 0,
        weight_bytes=weight_bytes,
        value_bytes=2 if device.type == "cuda" else max(2, weight_bytes),
        tokens=tokens_per_pass(settings),
    )


@dataclass(frozen=True)
class FitCheck:
    """The verdict of the fit check: the estimate and whether activations are checkpointed.

    Attributes:
        estimate: The memory the run needs, as it will run.
        gradient_checkpointing: ``training.gradient_checkpointing`` resolved with the estimate.
    """

    estimate: MemoryEstimate
    gradient_checkpointing: bool


def check_fits(
    plan: FitPlan,
    memory: DeviceMemory,
    settings: TrainingSettings,
    gradient_checkpointing: bool = False,
    logits_tokens: int | None = None,
) -> MemoryEstimate:
    """The estimate, when it fits in ``memory``.

    Raises:
        UserError: One line with the figures and the settings to change, when it does not fit.
    """
    estimate = plan.estimate(gradient_checkpointing, logits_tokens)
    if estimate.total <= memory.free_bytes:
        return estimate
    fixed = estimate.weights + estimate.adapter + estimate.optimizer + estimate.runtime
    if fixed > memory.free_bytes:
        advice = (
            f"the weights, adapter and optimizer alone need {fixed / GIB:.1f} GiB: use a "
            "smaller base model, a lower precision or a device with more memory"
        )
    else:
        if settings.max_batch_tokens and plan.tokens < settings.batch_size * settings.max_length:
            advice = (
                f"lower training.max_batch_tokens (now {settings.max_batch_tokens}) or "
                f"training.max_length (now {settings.max_length})"
            )
        else:
            advice = (
                f"lower training.batch_size (now {settings.batch_size}) or training.max_length "
                f"(now {settings.max_length})"
            )
        offered = CHECKPOINTING_SETTING in {f.name for f in fields(TrainingSettings)}
        if (
            offered
            and not gradient_checkpointing
            and activations_fit(plan, memory, True, logits_tokens)
        ):
            advice += f", or set training.{CHECKPOINTING_SETTING}=true"
    raise UserError(
        f"does not fit: needs {estimate.describe()} of {memory.free_bytes / GIB:.1f} GiB on "
        f"{memory.where}; {advice}"
    )


def check_memory(
    base_model: str,
    method: AdapterMethod,
    settings: TrainingSettings,
    device: torch.device,
    show: bool = True,
) -> FitCheck | None:
    """Estimate the run's memory from the base model's config and refuse it when it cannot fit.

    Args:
        base_model: ``builtin:...`` or a checkpoint directory (``gs://``: not estimated).
        method: The adapter method.
        settings: The training settings (``device_memory_gib`` overrides the device's memory).
        device: The training device.
        show: Print the estimate on stderr (in the task log).

    Returns:
        The estimate and the resolved ``gradient_checkpointing``, or None when the base model
        is not estimated.

    Raises:
        UserError: One line with the figures and the setting to change, before any weight loads.
    """
    dtype = resolve_precision(settings.precision, device, "training.precision")
    weight_bytes = torch.empty((), dtype=dtype).element_size()  # the base is loaded in it
    plan = plan_for(
        base_model,
        method,
        settings,
        device,
        weight_bytes=weight_bytes,
        quantized_bytes=QUANTIZED_BYTES.get(method.quantize),
    )
    if plan is None:
        return None
    memory = device_memory(device, settings.device_memory_gib)
    checkpointing = resolve_checkpointing(settings.gradient_checkpointing, plan, memory, device)
    estimate = check_fits(plan, memory, settings, gradient_checkpointing=checkpointing)
    if show:
        print(
            f"memory estimate: {estimate.describe()} of {memory.free_bytes / GIB:.1f} GiB "
            f"free on {memory.where}" + ("; gradient checkpointing on" if checkpointing else ""),
            file=sys.stderr,  # the task log (kfp.local and Vertex keep stderr); stdout is data
            flush=True,
        )
    return FitCheck(estimate, checkpointing)
