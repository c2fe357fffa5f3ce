"""A managed Gemini tuning job: create it, wait on it with progress, read what it made.

The job is created through google-genai's ``client.tunings.tune`` (``POST .../tuningJobs``)
and read with ``client.tunings.get`` until it ends. What counts as ended is decided here, not
by the SDK's ``TuningJob.has_ended``: that property knows SUCCEEDED, FAILED, CANCELLED and
EXPIRED only, so a job that ended PARTIALLY_SUCCEEDED would be waited on for ever, and one
PAUSED (stopped until someone resumes it) too. Here:

- SUCCEEDED: the tuned model and its endpoint are the result (an answer without them fails);
- PARTIALLY_SUCCEEDED: the result when the job still names a tuned model and endpoint, a
  failure otherwise;
- FAILED, CANCELLED, EXPIRED: a failure naming the state and the job's error;
- PAUSED: a failure too (the job makes no progress until resumed; a rerun of the step finds
  the same job by its labels and waits on it again);
- QUEUED, PENDING, RUNNING, CANCELLING, UPDATING, UNSPECIFIED and states the SDK does not
  know: keep waiting.

A retried step does not start a second job: a job with the same run id and data hash labels
that has not failed is waited on instead. When the waiting process is interrupted
(KeyboardInterrupt, or SIGTERM, which a pipeline runner sends to stop a task), the job is
cancelled before the interrupt goes on.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from adaptune.errors import UserError
from adaptune.vertex.gemini_data import GeminiDataset
from adaptune.vertex.gemini_limits import ADAPTER_SIZE_ENUM
from adaptune.vertex.gemini_retries import Backoff, call_with_retries
from adaptune.vertex.gemini_settings import GeminiTuningSettings
from adaptune.vertex.jobs import job_labels

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai.types import TuningJob

SUCCEEDED = "JOB_STATE_SUCCEEDED"
PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
FAILED_STATES = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
PAUSED = "JOB_STATE_PAUSED"
ENDED_STATES = (SUCCEEDED, PARTIALLY_SUCCEEDED, *FAILED_STATES, PAUSED)
"""States in which waiting stops (the SDK's ``has_ended`` misses the last two)."""
REUSABLE_STATES_EXCLUDED = (*FAILED_STATES, "JOB_STATE_CANCELLING")
POLL_BACKOFF = Backoff(max_attempts=8, initial_seconds=2.0, max_seconds=120.0)
"""Retries of one state read on 429/5xx: a busy API does not fail a job that is running."""

Log = Callable[[str], None]


class TuningJobEnded(UserError):
    """The tuning job ended without a tuned model (failed, cancelled, expired, paused)."""

    def __init__(self, message: str, job_name: str, state: str):
        super().__init__(message)
        self.job_name = job_name
        self.state = state


def state_name(job: TuningJob) -> str:
    """The job's state as the API spells it (``JOB_STATE_RUNNING``); empty when unset."""
    state = job.state
    if state is None:
        return ""
    return str(getattr(state, "value", state))


@dataclass(frozen=True)
class GeminiTuningResult:
    """What a finished tuning job made, for the step's outputs, report and lineage.

    Attributes:
        job_name: ``projects/P/locations/L/tuningJobs/ID``.
        state: The state it ended in.
        tuned_model: ``projects/P/locations/L/models/M@V``.
        endpoint: ``projects/P/locations/L/endpoints/E``, serving the tuned model.
        base_model: The model that was tuned.
        data_stats: The job's ``tuningDataStats`` as the API returned them (examples,
            billable tokens, truncated examples, token distributions, ...); empty if none.
        seconds: From the job's creation to its end, as the job records them (0 if unknown).
        reused: Whether an earlier attempt's job was waited on instead of creating one.
    """

    job_name: str
    state: str
    tuned_model: str
    endpoint: str
    base_model: str = ""
    data_stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and step metadata."""
        return asdict(self)


def tuning_labels(
    run_id: str, data_sha256: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The job's labels: run id, data sha256 (first 32 hex digits), adaptune version, extra.

    Values follow Google Cloud's label rules (lowercase, ``[a-z0-9_-]``, at most 63).

    Raises:
        UserError: If an extra label is invalid.
    """
    return job_labels(run_id, data_sha256, dict(extra or {}))


def tuning_config(
    settings: GeminiTuningSettings,
    dataset: GeminiDataset,
    run_id: str,
    data_sha256: str,
    extra_labels: dict[str, str] | None = None,
) -> Any:
    """The ``CreateTuningJobConfig`` of a run's job (hyperparameters, names, labels)."""
    from google.genai import types

    values: dict[str, Any] = {
        "tuned_model_display_name": settings.tuned_model_name(run_id),
        "description": f"adaptune run {run_id}; data sha256 {data_sha256}",
        "learning_rate_multiplier": settings.learning_rate_multiplier,
        "labels": tuning_labels(run_id, data_sha256, extra_labels),
    }
    if settings.epochs:
        values["epoch_count"] = settings.epochs
    if settings.adapter_size:
        values["adapter_size"] = types.AdapterSize(ADAPTER_SIZE_ENUM[settings.adapter_size])
    if dataset.validation_uri:
        values["validation_dataset"] = types.TuningValidationDataset(gcs_uri=dataset.validation_uri)
    return types.CreateTuningJobConfig(**values)


def create_tuning_job(
    client: Client,
    settings: GeminiTuningSettings,
    dataset: GeminiDataset,
    run_id: str,
    data_sha256: str,
    extra_labels: dict[str, str] | None = None,
) -> TuningJob:
    """Start a supervised tuning job of ``settings.base_model`` on the uploaded data."""
    from google.genai import types

    return client.tunings.tune(
        base_model=settings.base_model,
        training_dataset=types.TuningDataset(gcs_uri=dataset.train_uri),
        config=tuning_config(settings, dataset, run_id, data_sha256, extra_labels),
    )


def find_tuning_job(client: Client, labels: dict[str, str]) -> TuningJob | None:
    """The newest job carrying all of ``labels`` that has not failed, or None."""
    found = [
        job
        for job in client.tunings.list()
        if all((job.labels or {}).get(k) == v for k, v in labels.items())
        and state_name(job) not in REUSABLE_STATES_EXCLUDED
    ]
    found.sort(key=lambda job: str(job.create_time or ""))
    return found[-1] if found else None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def progress_line(job: TuningJob, elapsed: float, epochs: int) -> str:
    """One log line about a job being waited on: state, detail, epochs done and an estimate."""
    state = state_name(job).removeprefix("JOB_STATE_") or "UNKNOWN"
    parts = [f"tuning job {job.name}: {state}"]
    detail = job.tuning_job_state
    if detail is not None:
        text = str(getattr(detail, "value", detail)).removeprefix("TUNING_JOB_STATE_")
        if text and text != "UNSPECIFIED":
            parts.append(text.lower().replace("_", " "))
    done = job.tuning_job_metadata.completed_epoch_count if job.tuning_job_metadata else None
    if done is not None:
        parts.append(f"epoch {done}/{epochs}" if epochs else f"{done} epochs done")
        if done and epochs and done < epochs:
            per_epoch = elapsed / done
            parts.append(
                f"{_minutes(per_epoch)} per epoch, "
                f"about {_minutes(per_epoch * (epochs - done))} left"
            )
    parts.append(f"{_minutes(elapsed)} waited")
    return ", ".join(parts)


def wait_for_tuning_job(
    client: Client,
    name: str,
    poll_seconds: float,
    epochs: int = 0,
    log: Log = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TuningJob:
    """Read the job every ``poll_seconds`` until it is in one of ``ENDED_STATES``.

    A line is logged when the state or progress changes, and at least every ten polls.

    Returns:
        The job as last read (ended).
    """
    start = clock()
    last_line = ""
    quiet = 0
    while True:
        job, _ = call_with_retries(
            lambda: client.tunings.get(name=name),
            POLL_BACKOFF,
            sleep,
            on_retry=lambda n, exc, wait: log(
                f"reading tuning job {name} failed ({exc}); retrying"
            ),
        )
        line = progress_line(job, clock() - start, epochs)
        core = line.rsplit(", ", 1)[0]
        if core != last_line or quiet >= 9:
            log(line)
            last_line, quiet = core, 0
        else:
            quiet += 1
        if state_name(job) in ENDED_STATES:
            return job
        sleep(poll_seconds)


def _seconds(job: TuningJob) -> float:
    if job.create_time is None or job.end_time is None:
        return 0.0
    return max(0.0, (job.end_time - job.create_time).total_seconds())


def _error_text(job: TuningJob) -> str:
    error = job.error
    if error is None:
        return ""
    message = getattr(error, "message", None) or (
        error.get("message") if isinstance(error, dict) else None
    )
    return f": {message}" if message else ""


def tuning_result(job: TuningJob, reused: bool = False) -> GeminiTuningResult:
    """What an ended job made.

    Raises:
        TuningJobEnded: If it ended without a tuned model and endpoint.
    """
    state = state_name(job)
    name = job.name or ""
    model = job.tuned_model.model if job.tuned_model else None
    endpoint = job.tuned_model.endpoint if job.tuned_model else None
    short = state.removeprefix("JOB_STATE_")
    if state == PAUSED:
        raise TuningJobEnded(
            f"tuning job {name} is PAUSED: resume it (console or API) and run the step again; "
            "it waits on the same job",
            name,
            state,
        )
    if state not in (SUCCEEDED, PARTIALLY_SUCCEEDED):
        raise TuningJobEnded(f"tuning job {name} ended {short}{_error_text(job)}", name, state)
    if not model or not endpoint:
        raise TuningJobEnded(
            f"tuning job {name} ended {short} but names no tuned model and endpoint"
            f"{_error_text(job)}",
            name,
            state,
        )
    stats = (
        job.tuning_data_stats.model_dump(mode="json", exclude_none=True, by_alias=True)
        if job.tuning_data_stats
        else {}
    )
    return GeminiTuningResult(
        job_name=name,
        state=state,
        tuned_model=model,
        endpoint=endpoint,
        base_model=job.base_model or "",
        data_stats=stats,
        seconds=_seconds(job),
        reused=reused,
    )


@contextmanager
def cancel_on_interrupt(client: Client, name: str, log: Log = print) -> Iterator[None]:
    """Cancel job ``name`` when the block is interrupted (KeyboardInterrupt, SIGTERM, exit).

    SIGTERM is turned into ``SystemExit(143)`` while the block runs (in the main thread, where
    signal handlers can be set), so the cancel runs before the process ends; the previous
    handler is restored after.
    """
    previous = None
    in_main = threading.current_thread() is threading.main_thread()

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    if in_main:
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as exc:
        log(f"interrupted ({type(exc).__name__}): cancelling tuning job {name}")
        try:
            client.tunings.cancel(name=name)
            log(f"cancel requested for tuning job {name}")
        except Exception as cancel_error:  # the interrupt goes on whatever the cancel says
            log(f"cancelling tuning job {name} failed: {cancel_error}")
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def run_tuning_job(
    client: Client,
    settings: GeminiTuningSettings,
    dataset: GeminiDataset,
    run_id: str,
    data_sha256: str,
    extra_labels: dict[str, str] | None = None,
    log: Log = print,
    sleep: Callable[[float], None] = time.sleep,
) -> GeminiTuningResult:
    """Tune: start the job (or find an earlier attempt's), wait on it, return what it made.

    Args:
        client: A google-genai client for Vertex AI (:func:`gemini_client`).
        settings: The ``vertex_gemini`` settings.
        dataset: The uploaded Gemini JSONL (:func:`upload_gemini_data`).
        run_id: The pipeline run's id (a label of the job).
        data_sha256: sha256 of the validated data (a label, first 32 hex digits; whole in
            the description).
        extra_labels: More labels for the job.
        log: Where progress lines go.
        sleep: Waits between polls (tests pass a fake).

    Raises:
        TuningJobEnded: If the job ends without a tuned model (failed, cancelled, expired,
            paused).
    """
    labels = tuning_labels(run_id, data_sha256, extra_labels)
    job = find_tuning_job(client, labels)
    reused = job is not None
    if job is None:
        job = create_tuning_job(client, settings, dataset, run_id, data_sha256, extra_labels)
        log(
            f"started tuning job {job.name} ({settings.base_model}, "
            f"{dataset.records.get('train', 0)} training records)"
        )
    else:
        log(f"waiting on tuning job {job.name} started by an earlier attempt ({state_name(job)})")
    name = job.name or ""
    with cancel_on_interrupt(client, name, log):
        ended = wait_for_tuning_job(
            client, name, settings.poll_seconds, settings.epochs, log, sleep
        )
    result = tuning_result(ended, reused)
    log(
        f"tuning job {name} ended {result.state.removeprefix('JOB_STATE_')}: "
        f"{result.tuned_model} on {result.endpoint}"
    )
    return result
