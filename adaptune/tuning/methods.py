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
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

from peft import IA3Config, LoraConfig, PeftConfig, PromptTuningConfig, TaskType
from transformers import PreTrainedModel

from adaptune.errors import UserError
from adaptune.settings_dict import check_fields, from_pipeline_dict, setting, shown


def _task_type(family: str) -> TaskType:
    return TaskType.SEQ_2_SEQ_LM if family == "seq2seq" else TaskType.CAUSAL_LM


MODULES = "a module name, 'all-linear' or a list of module names"
MODULES_OR_NULL = "null (PEFT's defaults), a module name or a list of module names"
MAX_RANK = 4096
MAX_VIRTUAL_TOKENS = 4096


@dataclass(frozen=True)
class AdapterMethod:
    """Base of the method configs: parsing, validation and serialisation.

    Attributes:
        quantize: The frozen base's linear layers in ``4bit`` (QLoRA: nf4, double
            quantisation, bf16 compute) or ``8bit`` (LLM.int8()) through bitsandbytes, or
            ``none`` (see :mod:`adaptune.base_models.quantization`). Methods that add
            parameters only: ``last_layers`` trains base weights.
    """

    method: ClassVar[str] = ""
    setting_name: ClassVar[str] = "adapter"
    peft: ClassVar[bool] = True

    quantize: Literal["none", "4bit", "8bit"] = setting(
        "none", "Quantised base: 'none', '4bit' (QLoRA) or '8bit'."
    )

    def __post_init__(self) -> None:
        check_fields(self, self.setting_name)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> AdapterMethod:
        """Build from a dict without the ``method`` key, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, cls.setting_name)

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

    r: int = setting(8, "Rank of the update matrices.", ge=1, le=MAX_RANK)
    alpha: float = setting(16.0, "Scale numerator (alpha/r).", gt=0)
    dropout: float = setting(0.0, "Dropout on the LoRA input.", ge=0, lt=1)
    target_modules: str | tuple[str, ...] = setting(
        "all-linear", "Modules to adapt, or 'all-linear'.", non_empty=True, phrase=MODULES
    )
    use_rslora: bool = setting(False, "Scale by alpha/sqrt(r).")
    use_dora: bool = setting(False, "Weight-decomposed LoRA.")

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

    num_virtual_tokens: int = setting(16, "Virtual tokens learned.", ge=1, le=MAX_VIRTUAL_TOKENS)
    init: Literal["random", "sample_vocab"] = setting("sample_vocab", "'random' or 'sample_vocab'.")

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

    target_modules: str | tuple[str, ...] | None = setting(
        None, "Modules to rescale (None: PEFT's defaults).", non_empty=True, phrase=MODULES_OR_NULL
    )
    feedforward_modules: str | tuple[str, ...] | None = setting(
        None, "Feed-forward modules among them.", non_empty=True, phrase=MODULES_OR_NULL
    )

    def __post_init__(self) -> None:
        super().__post_init__()
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
    peft: ClassVar[bool] = False

    num_layers: int = setting(1, "Last blocks trained.", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quantize != "none":
            raise UserError(
                f"adapter.quantize={self.quantize} needs a method that adds parameters (lora, "
                "ia3, prompt_tuning): last_layers trains the base's own weights, which a "
                "quantised base cannot; use adapter.quantize=none"
            )

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
            raise UserError("adapter.method last_layers: the model has no numbered layer stack")
        prefixes = []
        for stack, indices in stacks.items():
            if len(indices) < self.num_layers:
                raise UserError(
                    f"adapter.num_layers must be at most {len(indices)} for this model "
                    f"({stack.rstrip('.')} has {len(indices)} blocks), got {self.num_layers}"
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
    if values is not None and not isinstance(values, dict):
        raise UserError(f"adapter must be a mapping, got {shown(values)}")
    values = dict(values or {})
    name = values.pop("method", "lora")
    if not isinstance(name, str) or name not in METHODS:
        raise UserError(f"adapter.method must be one of {sorted(METHODS)}, got {shown(name)}")
    return METHODS[name].from_values(values)
