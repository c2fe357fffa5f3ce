"""Settings of managed Gemini tuning (backend ``vertex_gemini``), checked before anything runs.

One typed config, passed to the pipeline as the ``vertex_gemini`` dict: the tuning job's
hyperparameters (checked against the base model's limits in :mod:`gemini_limits`), how the job
is waited on, and how the evaluation calls ``generateContent``. Where the job runs (project,
location) comes with the Vertex settings; :func:`check_gemini_credentials` refuses a run this
machine could not start a job for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from adaptune.errors import UserError
from adaptune.settings_dict import check_fields, from_pipeline_dict, setting
from adaptune.vertex.gemini_limits import (
    ADAPTER_SIZE_ENUM,
    MAX_DISPLAY_NAME,
    MAX_EPOCHS,
    MAX_LEARNING_RATE_MULTIPLIER,
    limits_for,
)

ADAPTER_SIZES = (0, *ADAPTER_SIZE_ENUM)


@dataclass(frozen=True)
class GeminiTuningSettings:
    """How a Gemini model is tuned on Vertex AI and then called for evaluation.

    Attributes:
        base_model: The Gemini model to tune, e.g. ``gemini-2.5-flash`` (a ``-NNN`` version
            may follow).
        epochs: Passes over the training data; 0: the service chooses.
        learning_rate_multiplier: Multiplier of the service's default learning rate.
        adapter_size: Adapter size (1, 2, 4, 8, 16 or 32, as the base model allows); 0: the
            service chooses.
        display_name: Display name of the tuned model (empty: ``adaptune-<run id>``).
        poll_seconds: Seconds between two reads of the job's state while waiting.
        concurrency: ``generateContent`` calls in flight at once during evaluation.
        max_attempts: Attempts per example on 429 and 503 (and 500, 504), with exponential
            backoff and jitter.
        max_failed_fraction: Share of examples whose calls may fail for good before the
            evaluation fails; their failures are counted either way.
        max_output_tokens: Most tokens an evaluation answer may have.
        temperature: Sampling temperature of evaluation calls (0: the most likely answer).
    """

    setting_name: ClassVar[str] = "vertex_gemini"

    base_model: str = setting("gemini-2.5-flash", "Gemini base model.", non_empty=True)
    epochs: int = setting(0, "Epochs; 0: the service's default.", ge=0, le=MAX_EPOCHS)
    learning_rate_multiplier: float = setting(
        1.0, "Learning-rate multiplier.", gt=0, le=MAX_LEARNING_RATE_MULTIPLIER
    )
    adapter_size: int = setting(0, "Adapter size; 0: the service's default.", choices=ADAPTER_SIZES)
    display_name: str = setting("", "Tuned model display name.", max_chars=MAX_DISPLAY_NAME)
    poll_seconds: float = setting(60.0, "Seconds between job state reads.", gt=0, le=3600)
    concurrency: int = setting(8, "Evaluation calls in flight.", ge=1, le=64)
    max_attempts: int = setting(6, "Attempts per evaluation call.", ge=1, le=20)
    max_failed_fraction: float = setting(0.05, "Share of calls that may fail.", ge=0, lt=1)
    max_output_tokens: int = setting(1024, "Most tokens per evaluation answer.", ge=1)
    temperature: float = setting(0.0, "Evaluation sampling temperature.", ge=0, le=2)

    def __post_init__(self) -> None:
        check_fields(self, self.setting_name)
        limits = limits_for(self.base_model)
        if self.adapter_size and self.adapter_size not in limits.adapter_sizes:
            raise UserError(
                f"vertex_gemini.adapter_size {self.adapter_size} is not one {limits.model} "
                f"tunes with; one of {list(limits.adapter_sizes)} ({limits.source})"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> GeminiTuningSettings:
        """Build from the pipeline's ``vertex_gemini`` dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, cls.setting_name)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)

    def tuned_model_name(self, run_id: str) -> str:
        """The tuned model's display name for run ``run_id``."""
        return self.display_name or f"adaptune-{run_id}"[:MAX_DISPLAY_NAME]


def check_gemini_settings(values: dict[str, Any] | None) -> GeminiTuningSettings:
    """The ``vertex_gemini`` dict, checked whole.

    Raises:
        UserError: One line naming the setting: an unknown key, a base model without known
            limits, epochs, adapter size or learning-rate multiplier out of range.
    """
    return GeminiTuningSettings.from_dict(values)


def check_gemini_credentials(project: str, location: str) -> None:
    """Refuse a ``vertex_gemini`` run that could not start a tuning job, before anything runs.

    The job is created with Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
    ``gcloud auth application-default login``, or a metadata server) in ``project`` and
    ``location``; without them the run would fail only after validating and converting data.

    Raises:
        UserError: Without a project or location, or without credentials (one line: how to
            provide them).
    """
    if not project:
        raise UserError(
            "the vertex_gemini backend needs a Google Cloud project (--project, "
            "ADAPTUNE_PROJECT or the Vertex config file)"
        )
    if not location:
        raise UserError("the vertex_gemini backend needs a Vertex AI location, e.g. us-central1")
    import google.auth
    from google.auth.exceptions import GoogleAuthError

    try:
        google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except GoogleAuthError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            "the vertex_gemini backend tunes on Vertex AI but no Google Cloud credentials were "
            "found (set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth "
            f"application-default login`): {first}"
        ) from None
