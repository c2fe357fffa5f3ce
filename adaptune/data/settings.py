"""Data settings: one typed, validated config, passed to the pipeline as the ``data`` dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from adaptune.data.chat import PROMPT_FORMATS
from adaptune.errors import UserError
from adaptune.settings_dict import from_pipeline_dict

FORMATS = (
    "auto",
    "vertex_text",
    "gemini_chat",
    "openai_chat",
    "prompt_completion",
    "csv",
    "parquet",
)
LENGTH_POLICIES = ("reject", "truncate")
INT_FIELDS = ("max_input_tokens", "max_output_tokens", "min_examples", "max_examples")


@dataclass(frozen=True)
class DataSettings:
    """What the data must look like, in the style of PEFT's config dataclasses.

    Attributes:
        format: ``auto`` (detected per file) or one of the formats in ``FORMATS``.
        input_column: CSV/Parquet column holding the input text.
        output_column: CSV/Parquet column holding the output text.
        max_input_tokens: Most tokens an example's input (system, context and input) may have,
            counted with the base model's tokenizer.
        max_output_tokens: Most tokens an example's output may have.
        length_policy: ``reject`` an example over a limit, or ``truncate`` it (the input keeps
            its end, nearest the answer; the output keeps its start).
        min_examples: Fewest training examples accepted.
        max_examples: Most training examples accepted; 0 for no limit.
        max_invalid_fraction: Share of invalid records that may be dropped (each drop listed);
            0 fails on the first invalid record.
        eval_fraction: Share of examples held out by content hash when no eval data is given.
        prompt_format: ``auto`` (``chat`` when the base model's tokenizer has a chat template,
            else ``template``), ``template`` (``prompt_template`` around the input) or ``chat``
            (the tokenizer's chat template; see :mod:`adaptune.data.chat`).
        system_instruction: System instruction for examples that have none (the chat
            template's system turn; in the template format, a first line of the prompt).
    """

    format: str = field(default="auto", metadata={"help": "auto, or one format name."})
    input_column: str = field(default="input_text", metadata={"help": "CSV/Parquet input column."})
    output_column: str = field(
        default="output_text", metadata={"help": "CSV/Parquet output column."}
    )
    max_input_tokens: int = field(default=4096, metadata={"help": "Input token limit."})
    max_output_tokens: int = field(default=1024, metadata={"help": "Output token limit."})
    length_policy: str = field(default="reject", metadata={"help": "reject or truncate."})
    min_examples: int = field(default=16, metadata={"help": "Fewest training examples."})
    max_examples: int = field(default=0, metadata={"help": "Most training examples; 0: no limit."})
    max_invalid_fraction: float = field(
        default=0.0, metadata={"help": "Share of invalid records that may be dropped."}
    )
    eval_fraction: float = field(
        default=0.2, metadata={"help": "Eval share split off by content hash without eval data."}
    )
    prompt_format: str = field(default="auto", metadata={"help": "auto, template or chat."})
    system_instruction: str = field(
        default="", metadata={"help": "System instruction for examples without one."}
    )

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"data.format must be one of {list(FORMATS)}, got {self.format!r}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise UserError(
                f"data.prompt_format must be one of {list(PROMPT_FORMATS)}, "
                f"got {self.prompt_format!r}"
            )
        if not isinstance(self.system_instruction, str):
            raise UserError(
                f"data.system_instruction must be a string, got {self.system_instruction!r}"
            )
        if "\x00" in self.system_instruction:
            raise UserError("data.system_instruction must not hold a NUL character")
        if self.length_policy not in LENGTH_POLICIES:
            raise UserError(
                f"data.length_policy must be one of {list(LENGTH_POLICIES)}, "
                f"got {self.length_policy!r}"
            )
        for name in ("input_column", "output_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise UserError(f"data.{name} must be a non-empty string, got {value!r}")
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"data.{name} must be a non-negative integer, got {value!r}")
        for name in ("max_input_tokens", "max_output_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"data.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_examples and self.max_examples < self.min_examples:
            raise UserError(
                f"data.max_examples ({self.max_examples}) is below data.min_examples "
                f"({self.min_examples})"
            )
        fraction = self.max_invalid_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise UserError(f"data.max_invalid_fraction must be a number, got {fraction!r}")
        if not 0.0 <= fraction < 1.0:
            raise UserError(f"data.max_invalid_fraction must be in [0, 1), got {fraction!r}")
        eval_fraction = self.eval_fraction
        if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, int | float):
            raise UserError(f"data.eval_fraction must be a number, got {eval_fraction!r}")
        if not 0.0 < eval_fraction < 1.0:
            raise UserError(f"data.eval_fraction must be between 0 and 1, got {eval_fraction!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> DataSettings:
        """Build from a pipeline dict, rejecting unknown keys with the list of known ones.

        Pipeline dicts travel as protobuf Structs, where every number is a float: integral
        floats are turned back into ints for the integer settings.
        """
        return from_pipeline_dict(cls, values, "data setting", INT_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)
