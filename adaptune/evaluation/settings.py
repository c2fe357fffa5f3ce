"""Evaluation settings: one typed, validated config, passed to the pipeline as one dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from adaptune.settings_dict import SEED_LIMIT, check_fields, from_pipeline_dict, setting


@dataclass(frozen=True)
class EvaluationSettings:
    """How answers are generated and how much of them the report shows.

    Attributes:
        max_new_tokens: Most tokens generated per answer; 0 picks the longest reference (in the
            model's tokens) plus a small margin.
        temperature: 0 decodes greedily; above 0 samples at that temperature (no top-k or
            top-p cut), seeded with ``seed`` so a rerun gives the same answers.
        batch_size: Examples per forward pass, for generation and for the eval loss.
        seed: Seed of the sampling (unused when ``temperature`` is 0).
        report_examples: How many examples the report shows side by side: those where the
            models' answers score most differently.
        max_length: Most tokens per example; prompts are cut from the left beyond it. Use the
            tuning step's ``training.max_length`` so the eval loss is computed as in training.
        precision: The dtype the compared models' base weights are held and run in, as
            ``training.precision``: ``auto`` (bf16 on a GPU that supports it, else fp16 on GPU;
            fp32 on CPU), ``bf16``, ``fp16`` (GPU only) or ``fp32``.
        attention: The attention implementation the compared models run, as
            ``training.attention``: ``auto`` (``flash_attention_2`` when the flash-attn package
            is installed and they run on a CUDA GPU in bf16 or fp16, else ``sdpa``), ``sdpa``,
            ``eager`` or ``flash_attention_2``.
    """

    setting_name: ClassVar[str] = "evaluation"

    max_new_tokens: int = setting(0, "Most new tokens (0: auto).", ge=0)
    temperature: float = setting(0.0, "0: greedy; > 0: seeded sampling.", ge=0)
    batch_size: int = setting(32, "Examples per forward pass.", ge=1)
    seed: int = setting(0, "Seed of the sampling.", ge=0, le=SEED_LIMIT)
    report_examples: int = setting(20, "Examples shown in the report.", ge=0)
    max_length: int = setting(256, "Most tokens per example.", ge=8)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = setting(
        "auto", "Base model dtype: 'auto', 'bf16', 'fp16' (GPU only) or 'fp32'."
    )

    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = setting(
        "auto", "Attention: 'auto', 'sdpa', 'eager' or 'flash_attention_2' (GPU only)."
    )

    def __post_init__(self) -> None:
        check_fields(self, self.setting_name)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> EvaluationSettings:
        """Build from the pipeline's ``evaluation`` dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, cls.setting_name)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)

    @property
    def greedy(self) -> bool:
        """Whether answers are decoded greedily."""
        return self.temperature == 0
