"""The pending-release record: a Vertex AI deploy that has not yet been settled locally.

A release with a Vertex AI deploy changes two places that cannot change in one write: the
endpoint (the deployment and its traffic share, one Vertex AI operation) and the local
``production`` alias (one index write). Before the deployment is made, the release writes
``<registry>/<model>/pending-release.json`` (atomically): the version, the endpoint, the
deployed models and traffic split before, the run, and the process (pid, host) releasing it. It
removes the record once the version is production or the deployment is undone.

A record whose process is gone (see ``PendingRelease.interrupted``) marks an interrupted release:
the endpoint may serve a version ``production`` does not point at. ``models list`` and
``models show`` warn about it; ``promote`` and ``rollback`` refuse to move an alias until it is
settled (an alias moved on top of it would be judged against an endpoint nobody accounts for);
a resume of its run completes it, and the next release of the model, or the end of its own
run, settles it (undoes the deployment unless its version is production).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.pids import pid_alive
from adaptune.registry.index import model_dir

PENDING_RELEASE_FILE = "pending-release.json"
OTHER_HOST_STALE_S = 6 * 3600.0
"""Another host's pid cannot be checked: its record counts as interrupted after this long (a
Vertex AI deploy takes minutes, rarely half an hour)."""


@dataclass(frozen=True)
class PendingRelease:
    """One release between its Vertex AI deploy and its local settlement.

    Attributes:
        model: Registry model name.
        version: The version being released.
        run_id: The run releasing it.
        endpoint: The endpoint, ``projects/P/locations/L/endpoints/ID``.
        vertex_model: The uploaded Vertex model, ``projects/P/locations/L/models/ID``.
        vertex_version_id: The uploaded model version's id.
        deployed_before: The endpoint's deployed model ids before the deploy.
        traffic_split_before: The endpoint's traffic split before the deploy.
        project: Google Cloud project of the endpoint.
        location: Its region.
        api_endpoint: The Vertex API endpoint used (empty: the regional one).
        pid: The releasing process.
        host: Its host.
        started_at: When the record was written (UTC, ISO 8601).
    """

    model: str
    version: int
    run_id: str
    endpoint: str
    vertex_model: str
    vertex_version_id: str
    deployed_before: list[str] = field(default_factory=list)
    traffic_split_before: dict[str, int] = field(default_factory=dict)
    project: str = ""
    location: str = ""
    api_endpoint: str = ""
    pid: int = 0
    host: str = ""
    started_at: str = ""

    @property
    def ref(self) -> str:
        """``model@vN``."""
        return f"{self.model}@v{self.version}"

    def interrupted(self, now: datetime | None = None) -> bool:
        """Whether its process is gone: dead on this host, or another host's and old."""
        if self.host == socket.gethostname():
            return not pid_alive(self.pid)
        try:
            started = datetime.fromisoformat(self.started_at)
        except ValueError:
            return True
        age = ((now or datetime.now(UTC)) - started).total_seconds()
        return age > OTHER_HOST_STALE_S

    def warning(self) -> str:
        """The one line ``models list`` and ``models show`` print for an interrupted release."""
        return (
            f"{self.model}: release of v{self.version} to endpoint {self.endpoint} was "
            f"interrupted (run {self.run_id}): `adaptune run --resume {self.run_id}` completes "
            "it (the next release of the model undoes it unless it is production)"
        )


def pending_release_path(registry_dir: Path, model: str) -> Path:
    """``<registry>/<model>/pending-release.json``."""
    return model_dir(registry_dir, model) / PENDING_RELEASE_FILE


def read_pending_release(registry_dir: Path, model: str) -> PendingRelease | None:
    """The model's pending release; None when there is none.

    Raises:
        UserError: If the record exists but cannot be read (its path and the reason: it was
            not written by this code, which writes it whole or not at all).
    """
    path = pending_release_path(registry_dir, model)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        record = PendingRelease(**data)
        if not isinstance(record.version, int) or not isinstance(record.pid, int):
            raise ValueError("version and pid must be integers")
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(
            f"{path} is not a pending-release record ({exc}); if no release of {model} is "
            "under way, check its Vertex AI endpoint and move the file aside"
        ) from None
    return record


def write_pending_release(registry_dir: Path, record: PendingRelease) -> PendingRelease:
    """Write the record (temp file + rename), stamped with this process, host and time."""
    stamped = PendingRelease(
        **{
            **asdict(record),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    write_json_atomic(pending_release_path(registry_dir, record.model), asdict(stamped))
    return stamped


def remove_pending_release(registry_dir: Path, model: str, version: int) -> None:
    """Remove the model's record if it is ``version``'s (another release's is left)."""
    try:
        record = read_pending_release(registry_dir, model)
    except UserError:
        return
    if record is not None and record.version == version:
        pending_release_path(registry_dir, model).unlink(missing_ok=True)


def refuse_during_interrupted_release(
    registry_dir: Path, model: str, action: str, target: int | None = None
) -> PendingRelease | None:
    """Refuse ``action`` (``promote``, ``rollback``) while the model's release is unsettled.

    Promoting the interrupted release's own version is allowed: it completes that release by
    hand (the endpoint serves it already). Returns that record then (the caller removes it
    once production moved), else None.

    Raises:
        UserError: If a release of the model was interrupted between its Vertex AI deploy and
            its promotion and ``target`` is another version (or the record is unreadable).
    """
    try:
        record = read_pending_release(registry_dir, model)
    except UserError as exc:
        raise UserError(f"{action} refused: {exc}") from None
    if record is None or not record.interrupted():
        return None
    if target == record.version:
        return record
    raise UserError(
        f"{action} refused: the release of {record.ref} to endpoint {record.endpoint} was "
        f"interrupted (run {record.run_id}) and that endpoint may serve it: "
        f"`adaptune run --resume {record.run_id}` completes it first, promoting "
        f"{record.ref} completes it by hand (or pass --force)"
    )


def as_dict(record: PendingRelease) -> dict[str, Any]:
    """Plain values (for ``--json`` output)."""
    return asdict(record)
