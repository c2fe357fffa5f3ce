"""A metadata store in one SQLite file, modelled on ML Metadata.

Artifacts (with URI, sha256 and properties), executions (one per task run, with parameters,
times, status and log path), events linking them (INPUT or OUTPUT), and contexts (pipeline run,
experiment) with their attributions and associations. WAL mode and a busy timeout let several
runs write at once. A run left ``running`` by a process that no longer exists is marked
``failed`` the next time the store is opened.

A store that is not one (garbage, truncated, a directory, another program's database) or that
another process keeps locked is a ``UserError`` naming the file, the reason and how to move it
aside: it is never replaced or rewritten. Commands that only read (``create=False``) create no
store, and one row that cannot be read (properties that are not a JSON object) is returned with
a ``problem`` note instead of stopping every other row from being read.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptune.errors import UserError
from adaptune.pids import pid_alive

log = logging.getLogger(__name__)

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
READ_BUSY_TIMEOUT_MS = 5_000
"""How long a command that only reads waits for a writer's lock before saying so."""
SQLITE_HEADER = b"SQLite format 3\x00"
COLUMNS = {
    "artifacts": ("id", "type", "uri", "sha256", "properties"),
    "executions": ("id", "type", "run_id", "parameters", "status", "start_time", "end_time"),
    "events": ("execution_id", "artifact_id", "kind", "name"),
    "contexts": ("id", "type", "name", "properties"),
    "parent_contexts": ("child_id", "parent_id"),
}
"""The tables and columns read: a database without them is another program's, not ours."""
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
    problem: str | None = None


def json_object(raw: Any) -> tuple[dict[str, Any], str | None]:
    """A stored JSON column as a dict, or ``{}`` and why it is not one."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        return {}, f"not JSON ({exc})"
    if not isinstance(value, dict):
        return {}, f"JSON {type(value).__name__}, not an object"
    return value, None


def check_store_file(path: Path) -> bool:
    """Whether ``path`` holds a store (False: missing or empty); ``UserError`` if it is not one.

    Raises:
        UserError: If ``path`` is not a regular file or does not start as a SQLite database.
    """
    if not path.exists() and not path.is_symlink():
        return False
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise broken_store(path, kind)
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise broken_store(path, f"unreadable: {exc.strerror or exc}") from None
    if not header:
        return False
    if header != SQLITE_HEADER:
        raise broken_store(path, "not a SQLite database")
    return True


def broken_store(path: Path, reason: str) -> UserError:
    """The one-line refusal of a store that cannot be used: its path, why, what to do."""
    if "locked" in reason:
        return UserError(
            f"{path} is locked by another process ({reason}); try again when it finishes"
        )
    return UserError(
        f"{path} is not a usable metadata store ({reason}); nothing was changed: move it aside "
        f"(mv {path} {path}.broken) to start a new one (the runs it recorded are then no "
        "longer listed; their directories stay)"
    )


class MetadataStore:
    """Read and write lineage in ``<root>/metadata.sqlite``."""

    def __init__(self, root: Path, create: bool = True):
        """Open the store of ``root``.

        Args:
            root: The runs directory.
            create: Create the store (and ``root``) when missing; with False (commands that
                only read), a missing or empty store reads as holding no run and nothing is
                created.

        Raises:
            UserError: If the file is not a usable store, or stays locked by another process.
        """
        self.path = Path(root) / STORE_FILE
        exists = check_store_file(self.path)
        timeout_ms = BUSY_TIMEOUT_MS if create else READ_BUSY_TIMEOUT_MS
        sidecars = [self.path.with_name(self.path.name + end) for end in ("-wal", "-shm")]
        absent = [path for path in sidecars if not path.exists()]
        self.db: sqlite3.Connection | None = None
        try:
            if create:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise UserError(
                        f"cannot create the runs directory {self.path.parent}: "
                        f"{exc.strerror or exc}"
                    ) from None
            self.db = self._connect(self.path if create or exists else ":memory:", timeout_ms)
            if self._check_tables() and not create and exists:
                self.db.close()  # a database without tables holds no run: read as empty
                self.db, exists = self._connect(":memory:", timeout_ms), False
            if create or not exists:  # ":memory:" when reading nothing: nothing is created
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA foreign_keys = ON")
                self.db.executescript(SCHEMA)  # idempotent; it manages its own transaction
            if create:
                self.mark_dead_runs_failed()
            else:
                self._mark_dead_runs_failed_if_writable()
        except (sqlite3.Error, OSError) as exc:
            self._give_up(absent)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise broken_store(self.path, reason) from None
        except BaseException:
            self._give_up(absent)
            raise

    def _give_up(self, absent: list[Path]) -> None:
        """Close a store that cannot be used; remove the WAL files opening it made (only those).

        SQLite makes ``-wal`` and ``-shm`` beside a WAL database it opens; a damaged one is
        left exactly as it was found.
        """
        if self.db is not None:
            with suppress(sqlite3.Error):
                self.db.close()
        for path in absent:
            with suppress(OSError):
                path.unlink(missing_ok=True)

    @staticmethod
    def _connect(target: str | Path, timeout_ms: int) -> sqlite3.Connection:
        db = sqlite3.connect(
            target, timeout=timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        return db

    def _mark_dead_runs_failed_if_writable(self) -> None:
        """``mark_dead_runs_failed``, skipped when the store cannot be written now (a reader)."""
        try:
            self.mark_dead_runs_failed()
        except (UserError, sqlite3.Error) as exc:
            log.info("left dead runs as they are in %s: %s", self.path, exc)

    def _check_tables(self) -> bool:
        """Whether the database is empty (no table yet); refuse one with other tables.

        Raises:
            UserError: If tables or columns the store reads are missing: another program's
                database, or one damaged by hand. Nothing is added to it.
        """
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        found = {r["name"] for r in self.db.execute(query)}
        if not found:
            return True
        for table, columns in COLUMNS.items():
            if table not in found:
                raise broken_store(self.path, f"not an adaptune metadata store: no {table} table")
            have = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if lacking := [c for c in columns if c not in have]:
                raise broken_store(
                    self.path,
                    f"not an adaptune metadata store: {table} has no {', '.join(lacking)} column",
                )
        return False

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
        rows = self._read(
            "SELECT c.name FROM contexts c JOIN parent_contexts pc ON pc.child_id = c.id "
            "JOIN contexts p ON p.id = pc.parent_id WHERE p.type = ? AND p.name = ? "
            "ORDER BY c.id DESC",
            (context_type, name),
        )
        return [str(r["name"]) for r in rows]

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
        """Every run, newest first, as ``{"run_id", ...properties}``.

        A run whose properties are not a JSON object comes with only its id and ``problem``.

        Raises:
            UserError: If the store cannot be read (corrupt, locked).
        """
        rows = self._read(
            "SELECT name, properties FROM contexts WHERE type = ? ORDER BY id DESC", (RUN_CONTEXT,)
        )
        runs = []
        for row in rows:
            properties, problem = json_object(row["properties"])
            record = {**properties, "run_id": str(row["name"])}
            if problem:
                record["problem"] = f"its properties in {self.path} are {problem}"
            runs.append(record)
        return runs

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of a query; a store that cannot be read is a ``UserError`` with its path."""
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise broken_store(self.path, str(exc)) from None

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
            and type(r.get("pid")) is int
            and not pid_alive(r["pid"])
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
        rows = self._read(
            "SELECT * FROM executions WHERE run_id = ? ORDER BY start_time IS NULL, start_time, id",
            (run_id,),
        )
        executions = []
        for r in rows:
            parameters, problem = json_object(r["parameters"])
            executions.append(dict(r) | {"parameters": parameters})
            if problem:
                executions[-1]["problem"] = f"its parameters in {self.path} are {problem}"
        return executions

    def artifact(self, artifact_id: int) -> Artifact:
        """One artifact by id (properties that are not a JSON object: ``{}`` and ``problem``).

        Raises:
            UserError: If the store cannot be read, or holds no such artifact.
        """
        found = self._read("SELECT * FROM artifacts WHERE id = ?", (artifact_id,))
        if not found:
            raise UserError(f"{self.path} has no artifact {artifact_id}: the store is incomplete")
        r = found[0]
        properties, problem = json_object(r["properties"])
        note = f"artifact {r['id']}'s properties in {self.path} are {problem}" if problem else None
        sha256 = r["sha256"] if isinstance(r["sha256"], str) else None
        return Artifact(r["id"], str(r["type"]), str(r["uri"]), sha256, properties, note)

    def artifacts_at(self, uri: str) -> list[Artifact]:
        """Every artifact recorded at this URI, newest first."""
        rows = self.db.execute(
            "SELECT id FROM artifacts WHERE uri = ? ORDER BY id DESC", (uri,)
        ).fetchall()
        return [self.artifact(r["id"]) for r in rows]

    def find_artifacts(self, type_: str, **properties: Any) -> list[Artifact]:
        """Artifacts of a type whose properties include ``properties``, newest first."""
        rows = self._read("SELECT id FROM artifacts WHERE type = ? ORDER BY id DESC", (type_,))
        found = [self.artifact(r["id"]) for r in rows]
        return [a for a in found if all(a.properties.get(k) == v for k, v in properties.items())]

    def producer(self, artifact_id: int) -> dict[str, Any] | None:
        """The execution that output the artifact, with its inputs ``{name: artifact id}``."""
        found = self._read(
            "SELECT e.* FROM events v JOIN executions e ON e.id = v.execution_id "
            "WHERE v.artifact_id = ? AND v.kind = 'OUTPUT' ORDER BY e.id DESC LIMIT 1",
            (artifact_id,),
        )
        if not found:
            return None
        row = found[0]
        inputs = self._read(
            "SELECT name, artifact_id FROM events WHERE execution_id = ? AND kind = 'INPUT' "
            "ORDER BY name",
            (row["id"],),
        )
        parameters, problem = json_object(row["parameters"])
        return (
            dict(row)
            | {
                "parameters": parameters,
                "inputs": {str(i["name"]): i["artifact_id"] for i in inputs},
            }
            | ({"problem": f"its parameters in {self.path} are {problem}"} if problem else {})
        )
