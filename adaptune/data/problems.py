"""What can be wrong with a dataset: stable category names and one problem per place.

The category names are part of the data contract: reports, metadata and tests use them, and
they do not change between releases.
"""

from __future__ import annotations

from dataclasses import dataclass

from adaptune.errors import UserError

# Problems with a whole file: always fatal, never dropped.
FILE_NOT_FOUND = "file_not_found"
UNREADABLE_FILE = "unreadable_file"
EMPTY_FILE = "empty_file"
# Problems with one record (a line or a row): dropped when max_invalid_fraction allows.
NOT_UTF8 = "not_utf8"
RECORD_TOO_LARGE = "record_too_large"
NOT_JSON = "not_json"
WRONG_TYPE = "wrong_type"
MISSING_FIELD = "missing_field"
EMPTY_FIELD = "empty_field"
NUL_CHARACTER = "nul_character"
INVISIBLE_ONLY = "invisible_only"
UNKNOWN_FORMAT = "unknown_format"
MIXED_FORMATS = "mixed_formats"
UNKNOWN_ROLE = "unknown_role"
BAD_ROLE_ORDER = "bad_role_order"
NO_TARGET_TURN = "no_target_turn"
CHAT_TEMPLATE_FAILED = "chat_template_failed"
INPUT_TOO_LONG = "input_too_long"
OUTPUT_TOO_LONG = "output_too_long"
DUPLICATE = "duplicate"
TRAIN_EVAL_OVERLAP = "train_eval_overlap"
# Problems with the dataset as a whole: always fatal.
TOO_FEW_EXAMPLES = "too_few_examples"
TOO_MANY_EXAMPLES = "too_many_examples"
TOO_MANY_INVALID = "too_many_invalid"
# Found by formatting, after templating and truncation.
TARGET_MASKED = "target_masked"

FILE_CATEGORIES = (FILE_NOT_FOUND, UNREADABLE_FILE, EMPTY_FILE)
RECORD_CATEGORIES = (
    NOT_UTF8,
    RECORD_TOO_LARGE,
    NOT_JSON,
    WRONG_TYPE,
    MISSING_FIELD,
    EMPTY_FIELD,
    NUL_CHARACTER,
    INVISIBLE_ONLY,
    UNKNOWN_FORMAT,
    MIXED_FORMATS,
    UNKNOWN_ROLE,
    BAD_ROLE_ORDER,
    NO_TARGET_TURN,
    CHAT_TEMPLATE_FAILED,
    INPUT_TOO_LONG,
    OUTPUT_TOO_LONG,
    DUPLICATE,
    TRAIN_EVAL_OVERLAP,
)
DATASET_CATEGORIES = (TOO_FEW_EXAMPLES, TOO_MANY_EXAMPLES, TOO_MANY_INVALID)
CATEGORIES = (*FILE_CATEGORIES, *RECORD_CATEGORIES, *DATASET_CATEGORIES, TARGET_MASKED)


@dataclass(frozen=True)
class Problem:
    """One problem at one place.

    Attributes:
        category: A stable name from ``CATEGORIES``.
        message: What is wrong, in words.
        file: The file as given (empty for the dataset as a whole).
        line: 1-based line (JSONL, CSV) or row (Parquet) number; 0 when none applies.
    """

    category: str
    message: str
    file: str = ""
    line: int = 0

    def __str__(self) -> str:
        where = (
            f"{self.file}:{self.line}: " if self.line else (f"{self.file}: " if self.file else "")
        )
        return f"{where}{self.message} [{self.category}]"

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return {
            "category": self.category,
            "message": self.message,
            "file": self.file,
            "line": self.line,
        }


class RecordProblem(Exception):
    """Raised while normalising one record; becomes a :class:`Problem` with file and line."""

    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category
        self.message = message


class DataValidationError(UserError):
    """The dataset would fail the pipeline; the message lists where and why."""

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems
