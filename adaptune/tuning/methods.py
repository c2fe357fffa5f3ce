"""Adapter methods: one typed, validated config per method, in the style of PEFT's configs.

The pipeline passes the method as one dict, ``{"method": "lora", "r": 8, ...}``;
:func:`method_from_dict` turns it into the matching config. Two kinds of method:

* new parameters: ``lora`` (with rsLoRA and DoRA switches), ``prompt_tuning`` (virtual-token
  embeddings) and ``ia3`` (learned rescaling vectors), all saved in PEFT format;
* existing parameters: ``last_layers`` trains the last N transformer blocks of the base model
  itself, saved as those tensors plus ``adapter_config.json`` (PEFT has no such method, so
  load it with :func:`adaptune.tuning.loading.load_tuned_model`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from peft import IA3Config, LoraConfig, PeftConfig, PromptTuningConfig, TaskType
from transformers import PreTrainedModel

from adaptune.errors import UserError
from adaptune.settings_dict import from_pipeline_dict


def _task_type(family: str) -> TaskType:
    return TaskType.SEQ_2_SEQ_LM if family == "seq2seq" else TaskType.CAUSAL_LM


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"adapter.{name} must be a positive integer, got {value!r}")


def _modules(name: str, value: Any) -> str | tuple[str, ...] | None:
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise UserError(f"adapter.{name} must be a module name list or 'all-linear', got {value!r}")


@dataclass(frozen=True)
class AdapterMethod:
    """Base of the method configs: parsing, validation and serialisation."""

    method: ClassVar[str] = ""
    int_fields: ClassVar[tuple[str, ...]] = ()
    peft: ClassVar[bool] = True

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> AdapterMethod:
        """Build from a dict without the ``method`` key, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, f"{cls.method} adapter setting", cls.int_fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the ``method`` key, for JSON and the pipeline."""
        data = {"method": self.method, **asdict(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def peft_config(self, family: str) -> PeftConfig:
        """The PEFT config for a causal or seq2seq model."""
        raise NotImplementedError


@dataclass(frozen=True)
class LoraMethod(AdapterMethod):
    """Low-rank adaptation (LoRA).

    Attributes:
        r: Rank of the update matrices.
        alpha: Scale numerator: the update is scaled by ``alpha / r`` (``alpha / sqrt(r)`` with
            rsLoRA).
        dropout: Dropout on the LoRA input during training.
        target_modules: Module names to adapt, or ``all-linear`` (every linear layer but the
            output head).
        use_rslora: Rank-stabilised scaling ``alpha / sqrt(r)``, better at high ranks.
        use_dora: Weight-decomposed LoRA (DoRA): learns a magnitude per output too.
    """

    method: ClassVar[str] = "lora"
    int_fields: ClassVar[tuple[str, ...]] = ("r",)

    r: int = field(default=8, metadata={"help": "Rank of the update matrices."})
    alpha: float = field(default=16.0, metadata={"help": "Scale numerator (alpha/r)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    target_modules: str | tuple[str, ...] = field(
        default="all-linear", metadata={"help": "Modules to adapt, or 'all-linear'."}
    )
    use_rslora: bool = field(default=False, metadata={"help": "Scale by alpha/sqrt(r)."})
    use_dora: bool = field(default=False, metadata={"help": "Weight-decomposed LoRA."})

    def __post_init__(self) -> None:
        _positive_int("r", self.r)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise UserError(f"adapter.alpha must be a number, got {self.alpha!r}")
        if self.alpha <= 0:
            raise UserError(f"adapter.alpha must be > 0, got {self.alpha}")
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise UserError(f"adapter.dropout must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "target_modules", _modules("target_modules", self.target_modules))
        for name in ("use_rslora", "use_dora"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"adapter.{name} must be true or false")

    def peft_config(self, family: str) -> PeftConfig:  # noqa: D102
        modules = self.target_modules
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=modules if isinstance(modules, str) else list(modules),
            use_rslora=self.use_rslora,
            use_dora=self.use_dora,
            task_type=_task_type(family),
        )


@dataclass(frozen=True)
class PromptTuningMethod(AdapterMethod):
    """Prompt tuning: new virtual-token embeddings prepended to every input.

    Attributes:
        num_virtual_tokens: How many virtual tokens are learned.
        init: ``random`` or ``sample_vocab`` (start from embeddings of random real tokens).
    """

    method: ClassVar[str] = "prompt_tuning"
    int_fields: ClassVar[tuple[str, ...]] = ("num_virtual_tokens",)

    num_virtual_tokens: int = field(default=16, metadata={"help": "Virtual tokens learned."})
    init: Literal["random", "sample_vocab"] = field(
        default="sample_vocab", metadata={"help": "'random' or 'sample_vocab'."}
    )

    def __post_init__(self) -> None:
        _positive_int("num_virtual_tokens", self.num_virtual_tokens)
        if self.init not in ("random", "sample_vocab"):
            raise UserError(f"adapter.init must be 'random' or 'sample_vocab', got {self.init!r}")

    def peft_config(self, family: str) -> PeftConfig:  # noqa: D102
        return PromptTuningConfig(
            task_type=_task_type(family),
            num_virtual_tokens=self.num_virtual_tokens,
            prompt_tuning_init="SAMPLE_VOCAB" if self.init == "sample_vocab" else "RANDOM",
        )


@dataclass(frozen=True)
class IA3Method(AdapterMethod):
    """IA³: learned vectors that rescale attention keys/values and feed-forward activations.

    Attributes:
        target_modules: Modules to rescale; None uses PEFT's defaults for the architecture.
        feedforward_modules: Which of them are feed-forward (scaled on the input); None uses
            PEFT's defaults.
    """

    method: ClassVar[str] = "ia3"

    target_modules: str | tuple[str, ...] | None = field(
        default=None, metadata={"help": "Modules to rescale (None: PEFT's defaults)."}
    )
    feedforward_modules: str | tuple[str, ...] | None = field(
        default=None, metadata={"help": "Feed-forward modules among them."}
    )

    def __post_init__(self) -> None:
        for name in ("target_modules", "feedforward_modules"):
            object.__setattr__(self, name, _modules(name, getattr(self, name)))
        if (self.feedforward_modules is None) != (self.target_modules is None):
            raise UserError("adapter.target_modules and feedforward_modules go together for ia3")

    def peft_config(self, family: str) -> PeftConfig:  # noqa: D102
        def as_list(v: str | tuple[str, ...] | None) -> str | list[str] | None:
            return list(v) if isinstance(v, tuple) else v

        return IA3Config(
            task_type=_task_type(family),
            target_modules=as_list(self.target_modules),
            feedforward_modules=as_list(self.feedforward_modules),
        )


@dataclass(frozen=True)
class LastLayersMethod(AdapterMethod):
    """Train the base model's own last N transformer blocks (and nothing else).

    Attributes:
        num_layers: How many of the last blocks are trained (per stack for seq2seq).
    """

    method: ClassVar[str] = "last_layers"
    int_fields: ClassVar[tuple[str, ...]] = ("num_layers",)
    peft: ClassVar[bool] = False

    num_layers: int = field(default=1, metadata={"help": "Last blocks trained."})

    def __post_init__(self) -> None:
        _positive_int("num_layers", self.num_layers)

    def trainable_prefixes(self, model: PreTrainedModel) -> list[str]:
        """Parameter-name prefixes of the last ``num_layers`` blocks of each layer stack.

        Raises:
            UserError: If the model has no numbered blocks or fewer than ``num_layers``.
        """
        pattern = re.compile(r"^(.*?\.)(\d+)\.")
        stacks: dict[str, set[int]] = {}
        for name, _ in model.named_parameters():
            match = pattern.match(name)
            if match:
                stacks.setdefault(match.group(1), set()).add(int(match.group(2)))
        if not stacks:
            raise UserError("last_layers: the model has no numbered layer stack")
        prefixes = []
        for stack, indices in stacks.items():
            if len(indices) < self.num_layers:
                raise UserError(
                    f"last_layers: num_layers={self.num_layers} but {stack} has {len(indices)}"
                )
            prefixes += [f"{stack}{i}." for i in sorted(indices)[-self.num_layers :]]
        return prefixes


METHODS: dict[str, type[AdapterMethod]] = {
    m.method: m for m in (LoraMethod, PromptTuningMethod, IA3Method, LastLayersMethod)
}


def method_from_dict(values: dict[str, Any] | None) -> AdapterMethod:
    """Build the method config from the pipeline's ``adapter`` dict (``method`` picks it).

    Raises:
        UserError: On an unknown method, unknown keys or invalid values.
    """
    values = dict(values or {})
    name = values.pop("method", "lora")
    if name not in METHODS:
        raise UserError(f"unknown adapter method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name].from_values(values)
