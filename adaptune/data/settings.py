"""Data settings: one typed, validated config, passed to the pipeline as the ``data`` dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from adaptune.data.chat import PROMPT_FORMATS
from adaptune.errors import UserError
from adaptune.settings_dict import MAX_TEXT_CHARS, check_fields, from_pipeline_dict, setting

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

    setting_name: ClassVar[str] = "data"

    format: str = setting("auto", "auto, or one format name.", choices=FORMATS)
    input_column: str = setting("input_text", "CSV/Parquet input column.", non_empty=True)
    output_column: str = setting("output_text", "CSV/Parquet output column.", non_empty=True)
    max_input_tokens: int = setting(4096, "Input token limit.", ge=1)
    max_output_tokens: int = setting(1024, "Output token limit.", ge=1)
    length_policy: str = setting("reject", "reject or truncate.", choices=LENGTH_POLICIES)
    min_examples: int = setting(16, "Fewest training examples.", ge=0)
    max_examples: int = setting(0, "Most training examples; 0: no limit.", ge=0)
    max_invalid_fraction: float = setting(
        0.0, "Share of invalid records that may be dropped.", ge=0, lt=1
    )
    eval_fraction: float = setting(
        0.2, "Eval share split off by content hash without eval data.", gt=0, lt=1
    )
    prompt_format: str = setting("auto", "auto, template or chat.", choices=PROMPT_FORMATS)
    system_instruction: str = setting(
        "", "System instruction for examples without one.", max_chars=MAX_TEXT_CHARS
    )

    def __post_init__(self) -> None:
        check_fields(self, self.setting_name)
        if self.max_examples and self.max_examples < self.min_examples:
            raise UserError(
                f"data.max_examples ({self.max_examples}) is below data.min_examples "
                f"({self.min_examples})"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> DataSettings:
        """Build from a pipeline dict, rejecting unknown keys with the list of known ones.

        Pipeline dicts travel as protobuf Structs, where every number is a float: integral
        floats are turned back into ints for the integer settings.
        """
        return from_pipeline_dict(cls, values, cls.setting_name)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)
