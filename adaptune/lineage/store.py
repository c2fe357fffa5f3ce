"""A metadata store in one SQLite file, modelled on ML Metadata.

Artifacts (with URI, sha256 and properties), executions (one per task run, with parameters,
times, status and log path), events linking them (INPUT or OUTPUT), and contexts (pipeline run,
experiment) with their attributions and associations. WAL mode and a busy timeout let several
runs write at once. A run left ``running`` by a process that no longer exists is marked
``failed`` the next time the store is opened.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptune.pids import pid_alive

SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, uri TEXT NOT NULL, sha256 TEXT,
    properties TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, run_id TEXT NOT NULL, parameters TEXT NOT NULL,
    status TEXT NOT NULL, start_time TEXT, end_time TEXT, log_path TEXT,
    UNIQUE (run_id, type));
CREATE TABLE IF NOT EXISTS events (
    execution_id INTEGER NOT NULL REFERENCES executions(id),
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
    kind TEXT NOT NULL CHECK (kind IN ('INPUT', 'OUTPUT')), name TEXT NOT NULL,
    PRIMARY KEY (execution_id, artifact_id, kind, name));
CREATE TABLE IF NOT EXISTS contexts (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}', UNIQUE (type, name));
CREATE TABLE IF NOT EXISTS attributions (
    context_id INTEGER NOT NULL REFERENCES contexts(id),
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id), PRIMARY KEY (context_id, artifact_id));
CREATE TABLE IF NOT EXISTS associations (
    context_id INTEGER NOT NULL REFERENCES contexts(id),
    execution_id INTEGER NOT NULL REFERENCES executions(id),
    PRIMARY KEY (context_id, execution_id));
CREATE TABLE IF NOT EXISTS parent_contexts (
    child_id INTEGER NOT NULL REFERENCES contexts(id),
    parent_id INTEGER NOT NULL REFERENCES contexts(id), PRIMARY KEY (child_id, parent_id));
CREATE INDEX IF NOT EXISTS artifacts_by_uri ON artifacts (uri);
CREATE INDEX IF NOT EXISTS events_by_artifact ON events (artifact_id);
"""
STORE_FILE = "metadata.sqlite"
BUSY_TIMEOUT_MS = 30_000
RUN_CONTEXT = "pipeline_run"


def now() -> str:
    """The current UTC time, ISO 8601 to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RunNotRestartable(Exception):
    """A run that cannot be resumed: it is running now, or it succeeded."""


@dataclass(frozen=True)
class Artifact:
    """A stored artifact."""

    id: int
    type: str
    uri: str
    sha256: str | None
    properties: dict[str, Any]


class MetadataStore:
    """Read and write lineage in ``<root>/metadata.sqlite``."""

    def __init__(self, root: Path):
        self.path = Path(root) / STORE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA)  # idempotent; executescript manages its own transaction
        self.mark_dead_runs_failed()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction, committed on success."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- contexts (runs) ---------------------------------------------------------------------

    def start_run(self, run_id: str, properties: dict[str, Any]) -> int:
        """Create the pipeline-run context, status ``running``, owned by this process."""
        props = {
            **properties,
            "status": "running",
            "start_time": now(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "attempts": 1,
        }
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO contexts (type, name, properties) VALUES (?, ?, ?)",
                (RUN_CONTEXT, run_id, json.dumps(props)),
            )
            return int(cursor.lastrowid)

    def add_run_to(self, run_id: str, context_type: str, name: str) -> None:
        """Make ``context_type:name`` (an experiment, say) a parent context of the run."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO contexts (type, name) VALUES (?, ?)", (context_type, name)
            )
            parent = db.execute(
                "SELECT id FROM contexts WHERE type = ? AND name = ?", (context_type, name)
            ).fetchone()["id"]
            child = db.execute(
                "SELECT id FROM contexts WHERE type = ? AND name = ?", (RUN_CONTEXT, run_id)
            ).fetchone()["id"]
            db.execute("INSERT OR IGNORE INTO parent_contexts VALUES (?, ?)", (child, parent))

    def runs_in(self, context_type: str, name: str) -> list[str]:
        """Run ids whose parent context is ``context_type:name``, newest first."""
        rows = self.db.execute(
            "SELECT c.name FROM contexts c JOIN parent_contexts pc ON pc.child_id = c.id "
            "JOIN contexts p ON p.id = pc.parent_id WHERE p.type = ? AND p.name = ? "
            "ORDER BY c.id DESC",
            (context_type, name),
        ).fetchall()
        return [r["name"] for r in rows]

    def update_run(self, run_id: str, **changes: Any) -> None:
        """Merge ``changes`` into the run's properties."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT id, properties FROM contexts WHERE type = ? AND name = ?",
                (RUN_CONTEXT, run_id),
            ).fetchone()
            if row is None:
                raise KeyError(run_id)
            props = {**json.loads(row["properties"]), **changes}
            db.execute(
                "UPDATE contexts SET properties = ? WHERE id = ?", (json.dumps(props), row["id"])
            )

    def restart_run(self, run_id: str) -> dict[str, Any]:
        """Put a run that ended without succeeding back to ``running``, owned by this process.

        In one write-locked transaction, so of two resumes of the same run only one restarts
        it. Its end, error and failed step are cleared and ``attempts`` counts this one.

        Returns:
            The run's properties as they were before the restart.

        Raises:
            KeyError: If there is no such run.
            RunNotRestartable: If it is running now or it succeeded.
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT id, properties FROM contexts WHERE type = ? AND name = ?",
                (RUN_CONTEXT, run_id),
            ).fetchone()
            if row is None:
                raise KeyError(run_id)
            before = json.loads(row["properties"])
            status = before.get("status")
            if status == "running":
                raise RunNotRestartable(f"it is running now (process {before.get('pid')})")
            if status == "succeeded":
                raise RunNotRestartable("it succeeded: there is nothing to resume")
            cleared = ("end_time", "error", "failed_step", "finished_at")
            props = {k: v for k, v in before.items() if k not in cleared}
            props |= {
                "status": "running",
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "attempts": int(before.get("attempts") or 1) + 1,
                "resumed_at": now(),
            }
            db.execute(
                "UPDATE contexts SET properties = ? WHERE id = ?", (json.dumps(props), row["id"])
            )
        return before

    def finish_run(self, run_id: str, status: str, **changes: Any) -> None:
        """Record the run's end: ``succeeded`` or ``failed``."""
        self.update_run(run_id, status=status, end_time=now(), **changes)

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, as ``{"run_id", ...properties}``."""
        rows = self.db.execute(
            "SELECT name, properties FROM contexts WHERE type = ? ORDER BY id DESC", (RUN_CONTEXT,)
        ).fetchall()
        return [{"run_id": r["name"], **json.loads(r["properties"])} for r in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's properties, or None."""
        return next((r for r in self.runs() if r["run_id"] == run_id), None)

    def mark_dead_runs_failed(self) -> list[str]:
        """Mark ``running`` runs of this host whose process is gone as ``failed``."""
        host = socket.gethostname()
        dead = [
            r["run_id"]
            for r in self.runs()
            if r.get("status") == "running"
            and r.get("host") == host
            and not pid_alive(int(r.get("pid", 0)))
        ]
        for run_id in dead:
            self.finish_run(run_id, "failed", error="the run's process ended without finishing")
        return dead

    # --- artifacts, executions, events -------------------------------------------------------

    def put_artifact(
        self, type_: str, uri: str, sha256: str | None, properties: dict[str, Any] | None = None
    ) -> int:
        """Insert an artifact, or return the existing one with the same type, URI and sha256."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT id FROM artifacts WHERE type = ? AND uri = ? AND sha256 IS ?",
                (type_, uri, sha256),
            ).fetchone()
            if row:
                return int(row["id"])
            cursor = db.execute(
                "INSERT INTO artifacts (type, uri, sha256, properties, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (type_, uri, sha256, json.dumps(properties or {}), now()),
            )
            return int(cursor.lastrowid)

    def put_execution(
        self,
        run_id: str,
        type_: str,
        parameters: dict[str, Any],
        status: str,
        start_time: str | None,
        end_time: str | None,
        log_path: str | None,
        inputs: dict[str, int],
        outputs: dict[str, int],
    ) -> int:
        """Record one task run with its input and output artifacts, in one transaction."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO executions (type, run_id, parameters, status, start_time, end_time,"
                " log_path) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, type) DO UPDATE SET"
                " parameters = excluded.parameters, status = excluded.status,"
                " start_time = excluded.start_time, end_time = excluded.end_time,"
                " log_path = excluded.log_path",
                (
                    type_,
                    run_id,
                    json.dumps(parameters, default=str),
                    status,
                    start_time,
                    end_time,
                    log_path,
                ),
            )
            execution = int(
                db.execute(
                    "SELECT id FROM executions WHERE run_id = ? AND type = ?", (run_id, type_)
                ).fetchone()["id"]
            )
            for kind, artifacts in (("INPUT", inputs), ("OUTPUT", outputs)):
                for name, artifact in artifacts.items():
                    db.execute(
                        "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                        (execution, artifact, kind, name),
                    )
            context = db.execute(
                "SELECT id FROM contexts WHERE type = ? AND name = ?", (RUN_CONTEXT, run_id)
            ).fetchone()
            if context:
                db.execute(
                    "INSERT OR IGNORE INTO associations VALUES (?, ?)", (context["id"], execution)
                )
                for artifact in [*inputs.values(), *outputs.values()]:
                    db.execute(
                        "INSERT OR IGNORE INTO attributions VALUES (?, ?)",
                        (context["id"], artifact),
                    )
            return execution

    def executions(self, run_id: str) -> list[dict[str, Any]]:
        """The run's task executions in start order."""
        rows = self.db.execute(
            "SELECT * FROM executions WHERE run_id = ? ORDER BY start_time IS NULL, start_time, id",
            (run_id,),
        ).fetchall()
        return [dict(r) | {"parameters": json.loads(r["parameters"])} for r in rows]

    def artifact(self, artifact_id: int) -> Artifact:
        """One artifact by id."""
        r = self.db.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return Artifact(r["id"], r["type"], r["uri"], r["sha256"], json.loads(r["properties"]))

    def artifacts_at(self, uri: str) -> list[Artifact]:
        """Every artifact recorded at this URI, newest first."""
        rows = self.db.execute(
            "SELECT id FROM artifacts WHERE uri = ? ORDER BY id DESC", (uri,)
        ).fetchall()
        return [self.artifact(r["id"]) for r in rows]

    def find_artifacts(self, type_: str, **properties: Any) -> list[Artifact]:
        """Artifacts of a type whose properties include ``properties``, newest first."""
        rows = self.db.execute(
            "SELECT id FROM artifacts WHERE type = ? ORDER BY id DESC", (type_,)
        ).fetchall()
        found = [self.artifact(r["id"]) for r in rows]
        return [a for a in found if all(a.properties.get(k) == v for k, v in properties.items())]

    def producer(self, artifact_id: int) -> dict[str, Any] | None:
        """The execution that output the artifact, with its inputs ``{name: artifact id}``."""
        row = self.db.execute(
            "SELECT e.* FROM events v JOIN executions e ON e.id = v.execution_id "
            "WHERE v.artifact_id = ? AND v.kind = 'OUTPUT' ORDER BY e.id DESC LIMIT 1",
            (artifact_id,),
        ).fetchone()
        if row is None:
            return None
        inputs = self.db.execute(
            "SELECT name, artifact_id FROM events WHERE execution_id = ? AND kind = 'INPUT' "
            "ORDER BY name",
            (row["id"],),
        ).fetchall()
        return dict(row) | {
            "parameters": json.loads(row["parameters"]),
            "inputs": {i["name"]: i["artifact_id"] for i in inputs},
        }
