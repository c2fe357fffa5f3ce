"""What managed Gemini tuning on Vertex AI accepts: a typed table with its sources, and the checks.

The service checks a tuning dataset only after it is uploaded and the job has started; these
checks run on the normalised examples (``train.jsonl`` / ``eval.jsonl`` of the validation
step) and on the converted Gemini JSONL before anything is uploaded, and report problems the
way data validation does (:class:`~adaptune.data.problems.Problem`: category, message, file,
line), so the same report and failure message show them.

Tokens are estimated, not counted: Gemini's tokenizer is not available offline. Google gives
"about 4 characters" per token for Gemini models
(https://ai.google.dev/gemini-api/docs/tokens); the
estimate is the character count divided by four, rounded up. An example the estimate puts
over the limit is refused; one it puts just under may still be over, and the service then
truncates it (the job's data statistics count truncated examples:
``total_truncated_example_count``). A caller with a better counter passes it in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from adaptune.data.formats import input_pieces
from adaptune.data.problems import TOO_MANY_EXAMPLES, DataValidationError, Problem
from adaptune.errors import UserError

EXAMPLE_TOO_LONG = "example_too_long"
"""Problem category: an example's input and output tokens together exceed the model's limit."""
FILE_TOO_LARGE = "file_too_large"
"""Problem category: a Gemini JSONL file exceeds the service's file size limit."""

TUNING_DOC = "https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning"
"""Google's page "About supervised fine-tuning for Gemini models": the Limitations tables."""
TOKEN_COUNT_DOC = "https://ai.google.dev/gemini-api/docs/tokens"
CHARS_PER_TOKEN = 4  # "a token is equivalent to about 4 characters": TOKEN_COUNT_DOC
HYPERPARAMETERS_DOC = (
    "https://cloud.google.com/python/docs/reference/aiplatform/latest/"
    "google.cloud.aiplatform_v1.types.SupervisedHyperParameters"
)
"""SupervisedHyperParameters: epochCount (int), learningRateMultiplier (float), adapterSize."""

TUNING_API_DOC = "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/tuning"
MAX_DISPLAY_NAME = 128  # tunedModelDisplayName "can contain up to 128 characters": TUNING_API_DOC
MAX_EPOCHS = 100
"""adaptune's own bound on ``epochCount``: the API documents no maximum (HYPERPARAMETERS_DOC)."""
MAX_LEARNING_RATE_MULTIPLIER = 100.0
"""adaptune's own bound: the API documents only that the multiplier scales the default rate."""

ADAPTER_SIZE_ENUM = {
    1: "ADAPTER_SIZE_ONE",
    2: "ADAPTER_SIZE_TWO",
    4: "ADAPTER_SIZE_FOUR",
    8: "ADAPTER_SIZE_EIGHT",
    16: "ADAPTER_SIZE_SIXTEEN",
    32: "ADAPTER_SIZE_THIRTY_TWO",
}
"""Adapter size → the API's enum (google.genai.types.AdapterSize; the v1 proto's AdapterSize)."""


@dataclass(frozen=True)
class GeminiLimits:
    """What supervised tuning of one Gemini base model accepts.

    Attributes:
        model: The base model id the limits are for (``gemini-2.5-flash``).
        max_example_tokens: Most input and output tokens of one training example, together.
        max_validation_examples: Most examples in the validation dataset.
        max_file_bytes: Largest training dataset file (JSONL).
        max_train_examples: Most text-only training examples.
        adapter_sizes: The adapter sizes the service accepts.
        source: Where the values were read.
    """

    model: str
    max_example_tokens: int
    max_validation_examples: int
    max_file_bytes: int
    max_train_examples: int
    adapter_sizes: tuple[int, ...]
    source: str


GB = 1 << 30  # "1GB for JSONL" read as 2**30 bytes; a file between 10**9 and 2**30 bytes may fail.
GEMINI_LIMITS: dict[str, GeminiLimits] = {
    # TUNING_DOC, "Gemini 2.5 Flash / Gemini 2.5 Flash-Lite" table: "Maximum input and output
    # training tokens 131,072; Maximum validation dataset size 5000 examples; Maximum training
    # dataset file size 1GB for JSONL; Maximum training dataset size 1M text-only examples or
    # 300K multimodal examples; Adapter size: Supported values are 1, 2, 4, 8, and 16."
    "gemini-2.5-flash": GeminiLimits(
        "gemini-2.5-flash", 131_072, 5000, GB, 1_000_000, (1, 2, 4, 8, 16), TUNING_DOC
    ),
    "gemini-2.5-flash-lite": GeminiLimits(
        "gemini-2.5-flash-lite", 131_072, 5000, GB, 1_000_000, (1, 2, 4, 8, 16), TUNING_DOC
    ),
    # TUNING_DOC, "Gemini 2.5 Pro" table: the same token, validation, file and dataset limits;
    # adapter sizes 1, 2, 4 and 8 (no 16). The search excerpts seen while writing this showed
    # the Flash table in full but not this row: check it against the page.
    "gemini-2.5-pro": GeminiLimits(
        "gemini-2.5-pro", 131_072, 5000, GB, 1_000_000, (1, 2, 4, 8), TUNING_DOC
    ),
}
PUBLISHER_PREFIX = "publishers/google/models/"


def model_id(base_model: str) -> str:
    """The model id of a base model name: without the publisher path or a ``-NNN`` version."""
    name = base_model.removeprefix(PUBLISHER_PREFIX)
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() and len(tail) == 3 else name


def limits_for(base_model: str) -> GeminiLimits:
    """The tuning limits of ``base_model`` (``gemini-2.5-flash``, ``gemini-2.5-flash-001``, ...).

    Raises:
        UserError: For a model without known limits (one line, naming the known ones).
    """
    limits = GEMINI_LIMITS.get(model_id(base_model))
    if limits is None:
        raise UserError(
            f"vertex_gemini.base_model {base_model!r} is not a Gemini model adaptune knows the "
            f"tuning limits of; one of {sorted(GEMINI_LIMITS)} (a -NNN version suffix is allowed)"
        )
    return limits


def estimated_tokens(text: str) -> int:
    """Gemini tokens of ``text``, estimated: characters / ``CHARS_PER_TOKEN``, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def example_tokens(
    example: dict[str, Any],
    system_instruction: str = "",
    count: Callable[[str], int] = estimated_tokens,
) -> int:
    """Input and output tokens of a normalised example as tuned (system, context, input, output).

    ``system_instruction`` is counted for an example without its own system text.
    """
    pieces = input_pieces(example)
    if "system" not in example and system_instruction:
        pieces.insert(0, system_instruction)
    return sum(count(piece) for piece in pieces) + count(example["output_text"])


def read_examples(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, example) of a normalised examples file, one at a time."""
    with Path(path).open("rb") as f:
        for line, raw in enumerate(f, 1):
            if raw.strip():
                yield line, orjson.loads(raw)


def check_gemini_examples(
    files: dict[str, Path],
    limits: GeminiLimits,
    system_instruction: str = "",
    count: Callable[[str], int] = estimated_tokens,
) -> list[Problem]:
    """The problems Gemini tuning would have with normalised examples, as validation reports them.

    Args:
        files: The normalised examples per split (``train``, and ``eval`` when there is one).
        limits: The base model's limits.
        system_instruction: ``data.system_instruction`` (counted where an example has none).
        count: Tokens of one text.

    Returns:
        One problem per example over the token limit (file and line), and one for a split with
        more examples than the service accepts. Empty when the data fits.
    """
    problems: list[Problem] = []
    for split, path in files.items():
        if split not in ("train", "eval"):
            continue
        examples = 0
        for line, example in read_examples(path):
            examples += 1
            tokens = example_tokens(example, system_instruction, count)
            if tokens > limits.max_example_tokens:
                problems.append(
                    Problem(
                        EXAMPLE_TOO_LONG,
                        f"about {tokens:,} input and output tokens, more than the "
                        f"{limits.max_example_tokens:,} {limits.model} tunes on "
                        f"({limits.source})",
                        str(path),
                        line,
                    )
                )
        most = limits.max_validation_examples if split == "eval" else limits.max_train_examples
        if examples > most:
            what = "validation" if split == "eval" else "training"
            problems.append(
                Problem(
                    TOO_MANY_EXAMPLES,
                    f"{examples:,} {what} examples, more than the {most:,} {limits.model} "
                    f"accepts ({limits.source})",
                    str(path),
                )
            )
    return problems


def check_gemini_files(files: dict[str, Path], limits: GeminiLimits) -> list[Problem]:
    """Problems with the sizes of converted Gemini JSONL files (what would be uploaded)."""
    problems = []
    for path in files.values():
        size = Path(path).stat().st_size
        if size > limits.max_file_bytes:
            problems.append(
                Problem(
                    FILE_TOO_LARGE,
                    f"{size:,} bytes of Gemini JSONL, more than the {limits.max_file_bytes:,} "
                    f"({limits.max_file_bytes / GB:g} GB) a tuning dataset file may have "
                    f"({limits.source})",
                    str(path),
                )
            )
    return problems


def gemini_failure_message(problems: list[Problem], limit: int = 20) -> str:
    """A failed step's message, in the form of data validation's: the first problems, counts."""
    lines = [str(q) for q in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more problems")
    counts: dict[str, int] = {}
    for q in problems:
        counts[q.category] = counts.get(q.category, 0) + 1
    summary = ", ".join(f"{c}: {n}" for c, n in sorted(counts.items()))
    return "Gemini tuning limits exceeded:\n  " + "\n  ".join(lines) + f"\n  counts: {summary}"


def require_within_limits(problems: list[Problem]) -> None:
    """Fail as data validation fails when there are problems.

    Raises:
        DataValidationError: Naming the first problems with file, line and category.
    """
    if problems:
        raise DataValidationError(gemini_failure_message(problems), problems)
