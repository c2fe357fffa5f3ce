"""LoRA settings: one typed, validated config, passed to the pipeline as one dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from peft import LoraConfig, TaskType

from adaptune.errors import UserError


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adaptation settings, in the style of PEFT's ``LoraConfig``.

    Attributes:
        r: Rank of the update matrices.
        alpha: Scaling numerator; the update is scaled by ``alpha / r``.
        dropout: Dropout on the LoRA input during training.
        target_modules: Module names to adapt, or ``all-linear`` for every linear layer but the
            output head.
    """

    r: int = field(default=8, metadata={"help": "Rank of the update matrices."})
    alpha: float = field(default=16.0, metadata={"help": "Scale numerator (update × alpha/r)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    target_modules: str | tuple[str, ...] = field(
        default="all-linear", metadata={"help": "Modules to adapt, or 'all-linear'."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise UserError(f"lora.r must be a positive integer, got {self.r!r}")
        if not isinstance(self.alpha, int | float) or self.alpha <= 0:
            raise UserError(f"lora.alpha must be a positive number, got {self.alpha!r}")
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise UserError(f"lora.dropout must be in [0, 1), got {self.dropout!r}")
        modules = self.target_modules
        if isinstance(modules, list):
            object.__setattr__(self, "target_modules", tuple(modules))
            modules = self.target_modules
        if isinstance(modules, str):
            if not modules:
                raise UserError("lora.target_modules must not be empty")
        elif not modules or not all(isinstance(m, str) and m for m in modules):
            raise UserError(
                "lora.target_modules must be 'all-linear' or a non-empty list of module names, "
                f"got {modules!r}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> LoraSettings:
        """Build from a pipeline dict, rejecting unknown keys with the list of known ones."""
        values = dict(values or {})
        # Pipeline dicts travel as protobuf Structs, where every number is a float.
        if isinstance(values.get("r"), float) and values["r"].is_integer():
            values["r"] = int(values["r"])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown lora setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) for JSON and the pipeline."""
        data = asdict(self)
        if isinstance(self.target_modules, tuple):
            data["target_modules"] = list(self.target_modules)
        return data

    def to_peft(self, family: str) -> LoraConfig:
        """The PEFT ``LoraConfig`` for a causal or seq2seq model."""
        modules = self.target_modules
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=modules if isinstance(modules, str) else list(modules),
            task_type=TaskType.SEQ_2_SEQ_LM if family == "seq2seq" else TaskType.CAUSAL_LM,
        )
