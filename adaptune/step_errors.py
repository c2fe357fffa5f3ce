"""How a pipeline step reports a user error: a clear message and a failed task, no traceback.

Inside a component, ``with reported("validate_dataset"): ...`` turns a ``UserError`` into a
message on stderr plus one machine-readable line (``ADAPTUNE_ERROR {...}``) that the local
runner picks out of the task log, then exits the task with status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from adaptune.errors import UserError

ERROR_MARKER = "ADAPTUNE_ERROR "


def error_line(step: str, message: str) -> str:
    """The machine-readable line for a failed step."""
    return ERROR_MARKER + json.dumps({"step": step, "message": message}, ensure_ascii=False)


def parse_error_line(line: str) -> dict[str, str] | None:
    """The ``{"step", "message"}`` of an error line, or None if ``line`` is not one."""
    index = line.find(ERROR_MARKER)
    if index < 0:
        return None
    try:
        data = json.loads(line[index + len(ERROR_MARKER) :])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and "message" in data else None


@contextmanager
def reported(step: str) -> Iterator[None]:
    """Report a ``UserError`` raised in the block and end the task with exit status 1."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        print(f"adaptune: {step} failed: {message}", file=sys.stderr, flush=True)
        print(error_line(step, message), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
