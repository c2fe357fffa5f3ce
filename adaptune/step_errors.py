"""How a pipeline step reports a user error: a clear message and a failed task, no traceback.

Inside a component, ``with reported("validate_dataset"): ...`` turns a ``UserError`` into a
message on stderr plus one machine-readable line (``ADAPTUNE_ERROR {...}``) that the local
runner picks out of the task log, then exits the task with status 1.

A task with retries (``tune_adapter``) also gives a marker file beside its output: kfp.local
and Vertex AI retry a failed task whatever the cause, with the same output paths, so the
first attempt that fails on a user error records it there (with a hash of the task's
inputs), and every retry of the same task with the same inputs fails at once with the same
message, before any work. Retries stay for what they are for: a killed or preempted task
resumes from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError

ERROR_MARKER = "ADAPTUNE_ERROR "
NOT_REPEATED = "an earlier attempt of this task failed on this user error; the work is not repeated"


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


def inputs_key(inputs: Any) -> str:
    """The sha256 of a task's inputs (JSON, keys sorted): what a marker is valid for."""
    text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def earlier_user_error(marker: Path, inputs: Any) -> str | None:
    """The message of an earlier attempt's user error with the same inputs, if one is recorded."""
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("inputs_sha256") != inputs_key(inputs):
        return None
    message = data.get("message")
    return message if isinstance(message, str) else None


def _fail(step: str, message: str) -> NoReturn:
    print(f"adaptune: {step} failed: {message}", file=sys.stderr, flush=True)
    print(error_line(step, message), file=sys.stderr, flush=True)
    raise SystemExit(1)


@contextmanager
def reported(step: str, marker: Path | None = None, inputs: Any = None) -> Iterator[None]:
    """Report a ``UserError`` raised in the block and end the task with exit status 1.

    Args:
        step: The step's name, as the summary shows it.
        marker: A file beside the task's output; when given, a user error is recorded there,
            and on entry an error recorded by an earlier attempt with the same ``inputs`` ends
            the task at once with the same message (the block does not run).
        inputs: What the task was given (JSON-serialisable); a marker is only honoured for
            the same inputs, so a rerun with changed inputs does the work.
    """
    if marker is not None:
        earlier = earlier_user_error(marker, inputs)
        if earlier is not None:
            print(f"adaptune: {step}: {NOT_REPEATED}", file=sys.stderr, flush=True)
            _fail(step, earlier)
    try:
        yield
    except UserError as exc:
        message = str(exc)
        if marker is not None:
            record = {"step": step, "message": message, "inputs_sha256": inputs_key(inputs)}
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(marker, record)
            except OSError as write_error:  # the report matters more than the marker
                print(f"adaptune: {step}: marker not written: {write_error}", file=sys.stderr)
        _fail(step, message)
