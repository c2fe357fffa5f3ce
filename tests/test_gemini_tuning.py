"""Managed Gemini tuning through the real google-genai client against the fake on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import threading
import warnings

import pytest
from fake_gemini import FakeGemini, JobScript
from google.oauth2.credentials import Credentials

from adaptune.vertex.gemini_client import gemini_client
from adaptune.vertex.gemini_data import GeminiDataset
from adaptune.vertex.gemini_settings import GeminiTuningSettings
from adaptune.vertex.gemini_tuning import (
    ENDED_STATES,
    TuningJobEnded,
    run_tuning_job,
    tuning_labels,
)

PROJECT, LOCATION = "test-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
SHA = "ab" * 32
DATASET = GeminiDataset(
    train_uri="gs://bucket/root/gemini_data/x/train.jsonl",
    validation_uri="gs://bucket/root/gemini_data/x/validation.jsonl",
    sha256="x",
    records={"train": 20, "eval": 4},
    bytes={"train": 100, "eval": 20},
    uploaded=True,
)
SETTINGS = GeminiTuningSettings(
    base_model="gemini-2.5-flash",
    epochs=3,
    learning_rate_multiplier=0.5,
    adapter_size=4,
    display_name="support-tickets",
    poll_seconds=7,
)


@pytest.fixture
def fake():
    server = FakeGemini().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fake):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK marks tuning experimental
        yield gemini_client(PROJECT, LOCATION, Credentials(token="test"), base_url=fake.url)


def run(client, log, sleeps=None, run_id="Run-2025_01", settings=SETTINGS, dataset=DATASET):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_tuning_job(
            client,
            settings,
            dataset,
            run_id,
            SHA,
            {"team": "support"},
            log=log.append,
            sleep=(sleeps.append if sleeps is not None else lambda s: None),
        )


def test_a_job_that_succeeds_after_polls_gives_model_endpoint_and_data_stats(fake, client):
    fake.script = JobScript(polls=3)
    log: list[str] = []
    sleeps: list[float] = []
    result = run(client, log, sleeps)
    (create,) = fake.calls("POST", "/tuningJobs")
    assert create.path == f"/v1beta1/{PARENT}/tuningJobs"
    assert create.headers["Authorization"] == "Bearer test"
    assert create.body == {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": DATASET.train_uri,
            "validationDatasetUri": DATASET.validation_uri,
            "hyperParameters": {
                "epochCount": 3,
                "learningRateMultiplier": 0.5,
                "adapterSize": "ADAPTER_SIZE_FOUR",
            },
        },
        "tunedModelDisplayName": "support-tickets",
        "description": f"adaptune run Run-2025_01; data sha256 {SHA}",
        "labels": {
            "adaptune-run-id": "run-2025_01",
            "adaptune-data-sha256": SHA[:32],
            "adaptune-version": tuning_labels("x", "")["adaptune-version"],
            "team": "support",
        },
    }
    assert all(len(v) <= 63 and v == v.lower() for v in create.body["labels"].values())
    job = f"{PARENT}/tuningJobs/7001"
    assert len(fake.calls("GET", job)) == 4  # three running reads, then the ended one
    assert sleeps == [7, 7, 7]  # poll_seconds between reads, none after the end
    assert result.job_name == job
    assert result.state == "JOB_STATE_SUCCEEDED"
    assert result.tuned_model == f"{PARENT}/models/7001@1"
    assert result.endpoint == f"{PARENT}/endpoints/7001"
    assert result.base_model == "gemini-2.5-flash"
    assert result.data_stats == {
        "supervisedTuningDataStats": {
            "tuningDatasetExampleCount": 20,
            "totalBillableTokenCount": 1234,
            "totalTruncatedExampleCount": 0,
            "tuningStepCount": 15,
        }
    }
    assert result.seconds == 600 and not result.reused
    assert log[0].startswith(f"started tuning job {job} (gemini-2.5-flash, 20 training records)")
    assert any("RUNNING, tuning, epoch 1/3" in line and "about" in line for line in log), log
    assert log[-1].endswith(f"ended SUCCEEDED: {result.tuned_model} on {result.endpoint}")


def test_optional_hyperparameters_are_left_to_the_service(fake, client):
    settings = GeminiTuningSettings(poll_seconds=1)
    no_eval = GeminiDataset(DATASET.train_uri, "", "x", {"train": 20}, {"train": 100}, True)
    run(client, [], settings=settings, dataset=no_eval)
    (create,) = fake.calls("POST", "/tuningJobs")
    assert create.body["supervisedTuningSpec"] == {
        "trainingDatasetUri": DATASET.train_uri,
        "hyperParameters": {"learningRateMultiplier": 1.0},
    }
    assert create.body["tunedModelDisplayName"] == "adaptune-Run-2025_01"


@pytest.mark.parametrize(
    ("final", "error", "expected"),
    [
        ("JOB_STATE_FAILED", "invalid dataset", r"ended FAILED: invalid dataset"),
        ("JOB_STATE_EXPIRED", "", r"ended EXPIRED$"),
        ("JOB_STATE_CANCELLED", "", r"ended CANCELLED$"),
        ("JOB_STATE_PAUSED", "", r"is PAUSED: resume it"),
    ],
)
def test_a_job_that_ends_without_a_model_fails_with_its_state(fake, client, final, error, expected):
    fake.script = JobScript(polls=1, final=final, error=error)
    with pytest.raises(TuningJobEnded, match=expected) as err:
        run(client, [])
    assert err.value.state == final
    assert err.value.job_name == f"{PARENT}/tuningJobs/7001"
    assert "\n" not in str(err.value)


def test_paused_and_partially_succeeded_end_the_wait_unlike_the_sdks_has_ended(fake, client):
    from google.genai import types

    for state in ("JOB_STATE_PAUSED", "JOB_STATE_PARTIALLY_SUCCEEDED"):
        assert state in ENDED_STATES
        assert not types.TuningJob(state=state).has_ended  # the SDK would wait for ever
    fake.script = JobScript(polls=0, final="JOB_STATE_PARTIALLY_SUCCEEDED", with_model=False)
    with pytest.raises(TuningJobEnded, match="PARTIALLY_SUCCEEDED but names no tuned model"):
        run(client, [])


def test_partially_succeeded_with_a_model_is_a_result(fake, client):
    fake.script = JobScript(polls=0, final="JOB_STATE_PARTIALLY_SUCCEEDED")
    result = run(client, [])
    assert result.state == "JOB_STATE_PARTIALLY_SUCCEEDED"
    assert result.endpoint == f"{PARENT}/endpoints/7001"


def test_a_retried_step_waits_on_the_earlier_attempts_job_instead_of_starting_one(fake, client):
    labels = tuning_labels("Run-2025_01", SHA, {"team": "support"})
    fake.add_job(
        f"{PARENT}/tuningJobs/42",
        {"state": "JOB_STATE_FAILED", "labels": labels, "createTime": "2025-01-01T00:00:00Z"},
    )
    fake.add_job(
        f"{PARENT}/tuningJobs/43",
        {"state": "JOB_STATE_RUNNING", "labels": labels, "createTime": "2025-01-01T01:00:00Z"},
        JobScript(polls=1),
    )
    fake.add_job(
        f"{PARENT}/tuningJobs/44",
        {"state": "JOB_STATE_RUNNING", "labels": {**labels, "adaptune-run-id": "other"}},
    )
    log: list[str] = []
    result = run(client, log)
    assert fake.calls("POST", "/tuningJobs") == []  # nothing new started
    assert fake.calls("GET", f"/v1beta1/{PARENT}/tuningJobs")  # the list was read
    assert result.job_name == f"{PARENT}/tuningJobs/43" and result.reused
    assert "started by an earlier attempt" in log[0]


def test_a_busy_api_while_polling_is_retried_not_a_failure(fake, client):
    fake.script = JobScript(polls=1)
    fake.fail("GET", "/tuningJobs/7001", code=503, times=2)
    log: list[str] = []
    result = run(client, log)
    assert result.state == "JOB_STATE_SUCCEEDED"
    assert sum("503" in line and "retrying" in line for line in log) == 2


def test_sigterm_while_waiting_cancels_the_job(fake, client):
    fake.script = JobScript(polls=1000)
    started = threading.Event()

    def sleep(seconds: float) -> None:
        if not started.is_set():
            started.set()
            os.kill(os.getpid(), signal.SIGTERM)  # what a runner sends to stop the task
        threading.Event().wait(0.01)

    previous = signal.getsignal(signal.SIGTERM)
    log: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SystemExit) as exit_info:
            run_tuning_job(client, SETTINGS, DATASET, "r1", SHA, log=log.append, sleep=sleep)
    assert exit_info.value.code == 128 + signal.SIGTERM
    job = f"{PARENT}/tuningJobs/7001"
    assert [c.path for c in fake.calls("POST", ":cancel")] == [f"/v1beta1/{job}:cancel"]
    assert client.tunings.get(name=job).state.value == "JOB_STATE_CANCELLED"
    assert any("cancelling tuning job" in line for line in log)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back


def test_keyboard_interrupt_while_waiting_cancels_the_job(fake, client):
    fake.script = JobScript(polls=1000)

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(KeyboardInterrupt):
            run_tuning_job(client, SETTINGS, DATASET, "r1", SHA, log=lambda line: None, sleep=sleep)
    assert len(fake.calls("POST", ":cancel")) == 1


def test_the_tuning_metrics_are_the_jobs_numeric_data_stats_and_seconds():
    from adaptune.vertex.gemini_steps import TuneOutcome
    from adaptune.vertex.gemini_tuning import GeminiTuningResult

    stats = {
        "tuningDatasetExampleCount": "20",  # int64 comes as a string
        "totalBillableTokenCount": 1234,
        "userInputTokenDistribution": {"sum": "900", "mean": 45.0},  # a mapping: left out
    }
    result = GeminiTuningResult(
        "j",
        "JOB_STATE_SUCCEEDED",
        "m",
        "e",
        data_stats={"supervisedTuningDataStats": stats},
        seconds=600.0,
    )
    assert TuneOutcome(DATASET, result).metrics() == {
        "tuningDatasetExampleCount": 20.0,
        "totalBillableTokenCount": 1234.0,
        "job_seconds": 600.0,
    }
