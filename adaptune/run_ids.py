"""Run ids: one format for local runs and Vertex AI pipeline jobs.

``adaptune-YYYYMMDD-HHMMSS-xxxxxx`` (UTC time, then random hex): sortable by start time, unique
across processes started in the same second, and a valid Vertex AI job id, so a run keeps one id
wherever it runs.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from adaptune.errors import UserError

RUN_ID_PATTERN = re.compile(r"^[a-z][-a-z0-9]{0,127}$")
PREFIX = "adaptune"


def new_run_id(now: datetime | None = None, suffix: str | None = None) -> str:
    """A new run id; ``suffix`` replaces the random part (for tests and retries)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return check_run_id(f"{PREFIX}-{stamp}-{secrets.token_hex(3) if suffix is None else suffix}")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a valid run id (what Vertex AI accepts as a job id).

    Raises:
        UserError: Otherwise.
    """
    if not RUN_ID_PATTERN.match(run_id):
        raise UserError(
            f"run id {run_id!r}: lowercase letters, digits and -, starting with a letter, "
            "at most 128 characters"
        )
    return run_id
