"""The studio's job queue: tuning jobs run one at a time, each as an ``adaptune run`` process.

A job is the form's pipeline parameters (``config.yaml``, what ``adaptune run --config`` reads)
and a run id chosen when it is queued, so its run page exists at once. Each job has a directory
``<runs_dir>/studio-jobs/<run_id>/`` holding ``job.json`` (written atomically: state
``queued|running|done|cancelled``, the process id, times, the exit code), ``config.yaml`` and
``output.log`` (the process's stdout and stderr). The queue is those files, so a restarted
studio finds its queued jobs, and the running one, again.

The oldest queued job starts when none runs: ``sys.executable -m adaptune run --run-id ID
--runs-dir ... --registry-dir ... --compiled ... --config config.yaml``, the same code as the
command, in a new session (its own process group). Cancelling a running job terminates that
group, and only it; the run it started is then a dead ``running`` run, which the metadata
store marks failed and ``adaptune run --resume`` can continue.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from adaptune.atomic import write_json_atomic, write_text_atomic
from adaptune.errors import UserError
from adaptune.pids import pid_alive
from adaptune.run_ids import check_run_id
from adaptune.studio.settings import StudioSettings

log = logging.getLogger(__name__)

JOBS_SUBDIR = "studio-jobs"
JOB_FILE = "job.json"
CONFIG_FILE = "config.yaml"
OUTPUT_FILE = "output.log"
LOCK_FILE = ".lock"
STATES = ("queued", "running", "done", "cancelled")
KILL_GRACE_SECONDS = 10.0
"""After SIGTERM, how long a cancelled job's process group has before SIGKILL."""
WATCH_SECONDS = 1.0
"""How often a job started by an earlier studio process is checked for its end."""

Command = Callable[[StudioSettings, str, Path], list[str]]


def now() -> str:
    """The current UTC time, ISO 8601 to the millisecond (as the metadata store writes it)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def adaptune_run(settings: StudioSettings, run_id: str, config: Path) -> list[str]:
    """The command a job runs: ``adaptune run`` with the job's run id and config file."""
    return [
        sys.executable,
        "-m",
        "adaptune",
        "run",
        "--run-id",
        run_id,
        "--runs-dir",
        str(settings.runs_dir),
        "--registry-dir",
        str(settings.registry_dir),
        "--compiled",
        str(settings.compiled),
        "--config",
        str(config),
    ]


@dataclass(frozen=True)
class Job:
    """One tuning job.

    Attributes:
        id: The run id its run gets.
        params: The pipeline parameters the form gave (the rest take their defaults).
        state: ``queued``, ``running``, ``done`` (its process ended) or ``cancelled``.
        created_at: When it was queued (UTC ISO time).
        started_at: When its process started.
        ended_at: When its process ended or it was cancelled.
        pid: Its process (also its process group) id, once started.
        exit_code: Its process's exit status (None if unknown: the studio that started it is
            gone, or it was cancelled).
    """

    id: str
    params: dict[str, Any]
    state: str = "queued"
    created_at: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    pid: int | None = None
    exit_code: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """A job from its ``job.json``.

        Raises:
            ValueError: If the file is not a job of this format.
        """
        if not isinstance(data, dict) or data.get("state") not in STATES:
            raise ValueError("not a studio job")
        check_run_id(str(data.get("id")))
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        pid = known.get("pid")
        if pid is not None and type(pid) is not int:
            raise ValueError("pid is not an integer")
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """The job as ``job.json`` holds it."""
        return asdict(self)


class JobQueue:
    """The jobs of one runs directory, started one at a time, oldest first.

    Args:
        settings: The studio's directories (jobs go under ``runs_dir``).
        command: What a job runs (default ``adaptune_run``); tests give a slow stand-in.
    """

    def __init__(self, settings: StudioSettings, command: Command = adaptune_run):
        self.settings = settings
        self.command = command
        self.root = Path(settings.runs_dir) / JOBS_SUBDIR
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._watched: set[str] = set()

    # --- reading ----------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        """The job's directory (the id is checked: never a path outside the jobs directory)."""
        return self.root / check_run_id(job_id)

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        path = self.job_dir(job_id) / JOB_FILE
        try:
            return Job.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, UserError) as exc:
            log.warning("skipping %s: %s", path, exc)
            return None

    def jobs(self) -> list[Job]:
        """Every job, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if entry.is_dir() and not entry.name.startswith("."):
                with suppress(UserError):
                    job = self.get(entry.name)
                    if job is not None:
                        found.append(job)
        return sorted(found, key=lambda j: (j.created_at, j.id))

    def output(self, job_id: str) -> Path:
        """The file holding the job's process output."""
        return self.job_dir(job_id) / OUTPUT_FILE

    # --- changing ---------------------------------------------------------------------------

    def enqueue(self, run_id: str, params: dict[str, Any]) -> Job:
        """Queue a job for a new run with these pipeline parameters; start it if none runs.

        Raises:
            UserError: If a job already has this id.
        """
        directory = self.job_dir(run_id)
        try:
            directory.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise UserError(f"a studio job {run_id} exists already") from None
        write_text_atomic(directory / CONFIG_FILE, yaml.safe_dump(params, sort_keys=True))
        job = Job(run_id, params, "queued", now())
        self._save(job)
        self.advance()
        return self.get(run_id) or job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job (it never starts) or a running one (its process group ends).

        Raises:
            UserError: If there is no such job, or it already ended.
        """
        with self._locked():
            job = self.get(job_id)
            if job is None:
                raise UserError(f"no studio job {job_id}")
            if job.state not in ("queued", "running"):
                raise UserError(f"job {job_id} is {job.state}: nothing to cancel")
            if job.state == "running" and job.pid is not None and self._alive(job):
                self._terminate(job.pid)
            job = replace(job, state="cancelled", ended_at=now())
            self._save(job)
        self.advance()
        return job

    def advance(self) -> None:
        """Note jobs whose process ended; start the oldest queued job when none runs."""
        with self._locked():
            jobs = self.jobs()
            running = None
            for job in jobs:
                if job.state != "running":
                    continue
                if self._alive(job):
                    running = job
                    self._watch(job)
                else:
                    self._save(self._ended(job))
            if running is not None:
                return
            queued = next((j for j in jobs if j.state == "queued"), None)
            if queued is not None:
                self._start(queued)

    # --- internals --------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's lock and a file lock: two studios on one runs directory agree too."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with (self.root / LOCK_FILE).open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self, job: Job) -> None:
        write_json_atomic(self.job_dir(job.id) / JOB_FILE, job.to_dict())

    def _start(self, job: Job) -> None:
        directory = self.job_dir(job.id)
        argv = self.command(self.settings, job.id, directory / CONFIG_FILE)
        with (directory / OUTPUT_FILE).open("ab") as output:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                output.write(f"could not start {argv[0]}: {exc}\n".encode())
                self._save(replace(job, state="done", ended_at=now(), exit_code=None))
                return
        self._processes[job.id] = process
        job = replace(job, state="running", started_at=now(), pid=process.pid)
        self._save(job)
        self._watch(job)

    def _alive(self, job: Job) -> bool:
        """Whether the job's process still runs (ours: not yet exited; else: its pid is it)."""
        process = self._processes.get(job.id)
        if process is not None:
            return process.poll() is None
        return job.pid is not None and pid_alive(job.pid) and _runs_job(job.pid, job.id)

    def _ended(self, job: Job) -> Job:
        process = self._processes.pop(job.id, None)
        code = process.poll() if process is not None else None
        return replace(job, state="done", ended_at=job.ended_at or now(), exit_code=code)

    def _watch(self, job: Job) -> None:
        """A thread that waits for the job's process to end, then starts the next job."""
        if job.id in self._watched:
            return
        self._watched.add(job.id)

        def wait() -> None:
            process = self._processes.get(job.id)
            if process is not None:
                process.wait()
            else:
                while self._alive(job):
                    time.sleep(WATCH_SECONDS)
            self._watched.discard(job.id)
            if process is not None:
                self._finished(job.id, process.returncode)
            try:
                self.advance()
            except OSError as exc:  # the runs directory went away
                log.warning("job queue in %s: %s", self.root, exc)

        threading.Thread(target=wait, name=f"job-{job.id}", daemon=True).start()

    def _finished(self, job_id: str, code: int) -> None:
        """Record the exit status of a job's process (ours) once it ended."""
        with self._locked():
            self._processes.pop(job_id, None)
            job = self.get(job_id)
            if job is not None and job.state == "running":
                self._save(replace(job, state="done", ended_at=now(), exit_code=code))
            elif job is not None and job.state == "cancelled" and job.exit_code is None:
                self._save(replace(job, exit_code=code))

    def _terminate(self, pid: int) -> None:
        """SIGTERM the job's process group (its id is the job's pid); SIGKILL it if it stays."""
        with suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) != pid:
                return  # not the group leader it started as: not ours to signal
            os.killpg(pid, signal.SIGTERM)

        def finish() -> None:
            deadline = time.monotonic() + KILL_GRACE_SECONDS
            while time.monotonic() < deadline:
                try:
                    os.killpg(pid, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.2)
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

        threading.Thread(target=finish, name=f"kill-{pid}", daemon=True).start()


def _runs_job(pid: int, job_id: str) -> bool:
    """Whether process ``pid`` is the job's (its command line names the run id).

    Guards against a reused pid after a restart; True where ``/proc`` cannot say.
    """
    if not Path("/proc/self").is_dir():
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return job_id.encode() in cmdline.split(b"\0")
