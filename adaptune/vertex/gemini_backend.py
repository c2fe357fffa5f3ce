"""The ``vertex_gemini`` backend's pipeline dict: where the tuning job runs, and how it tunes.

The gemini pipeline (``pipelines/gemini_tuning.py``) takes one ``vertex_gemini`` mapping, as
the adapter pipeline takes ``vertex_deploy``: the keys ``project``, ``location``,
``api_endpoint`` and ``pipeline_root`` say where (:class:`GeminiTarget`), every other key is a
:class:`GeminiTuningSettings` field. ``api_endpoint`` replaces Google's regional endpoint (a
private endpoint, or a test's fake server); ``pipeline_root`` is the ``gs://`` directory the
converted data is uploaded to (default: the pipeline's own root, which on Vertex AI is a
``gs://`` directory; a local run against Google's endpoint needs one, the service reads only
Cloud Storage).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adaptune.errors import UserError
from adaptune.settings_dict import check_value, shown
from adaptune.vertex.gemini_client import gemini_client
from adaptune.vertex.gemini_settings import GeminiTuningSettings, check_gemini_settings

if TYPE_CHECKING:
    from google.genai import Client

SETTING = "vertex_gemini"
WHERE_KEYS = ("project", "location", "api_endpoint", "pipeline_root")
"""Keys of the ``vertex_gemini`` dict that say where (:class:`GeminiTarget`)."""
DEFAULT_LOCATION = "us-central1"
PROJECT_ENV = "ADAPTUNE_PROJECT"
LOCATION_ENV = "ADAPTUNE_LOCATION"


@dataclass(frozen=True)
class GeminiTarget:
    """Where the tuning job and the evaluation calls go.

    Attributes:
        project: Google Cloud project id.
        location: Vertex AI region.
        api_endpoint: API root instead of Google's regional one (``https://HOST`` or
            ``http://127.0.0.1:PORT``); for private endpoints and tests.
        pipeline_root: ``gs://`` directory the converted data is uploaded to (empty: the
            pipeline's root).
    """

    project: str
    location: str = DEFAULT_LOCATION
    api_endpoint: str = ""
    pipeline_root: str = ""

    def base_url(self) -> str:
        """The SDK's base URL: ``api_endpoint`` with a scheme (``https://`` when it has none)."""
        if not self.api_endpoint or "://" in self.api_endpoint:
            return self.api_endpoint
        return f"https://{self.api_endpoint}"

    def client(self, credentials: Any = None) -> Client:
        """A google-genai client for this project and location (ADC unless ``credentials``)."""
        return gemini_client(self.project, self.location, credentials, base_url=self.base_url())

    def data_root(self, pipeline_root: str) -> str:
        """Where the data is uploaded: ``pipeline_root`` here, else the pipeline's root."""
        return self.pipeline_root or pipeline_root


def split_gemini_dict(values: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the ``vertex_gemini`` dict into (where, how): ``WHERE_KEYS`` and the rest."""
    values = dict(values or {})
    where = {k: values.pop(k) for k in WHERE_KEYS if k in values}
    return where, values


def with_defaults(values: dict[str, Any] | None, env: dict[str, str] | None = None) -> dict:
    """The dict with ``project`` and ``location`` from ``ADAPTUNE_PROJECT``/``_LOCATION``.

    Values in the dict win; the variables fill what it leaves out (as ``vertex submit``'s).
    """
    env = dict(os.environ) if env is None else env
    filled = dict(values or {})
    if not filled.get("project") and env.get(PROJECT_ENV):
        filled["project"] = env[PROJECT_ENV]
    if not filled.get("location"):
        filled["location"] = env.get(LOCATION_ENV) or DEFAULT_LOCATION
    return filled


def check_vertex_gemini(
    values: dict[str, Any] | None, local: bool = False
) -> tuple[GeminiTarget, GeminiTuningSettings]:
    """The ``vertex_gemini`` dict, checked whole: (where, how).

    Args:
        values: The pipeline's ``vertex_gemini`` dict.
        local: Whether the pipeline runs here: then, against Google's endpoint, the data
            needs a ``gs://`` ``pipeline_root`` (the local run's root is a local directory).

    Raises:
        UserError: One line naming the key: a missing project, an unknown key, a value of the
            wrong type or out of range.
    """
    if not isinstance(values, dict):
        raise UserError(f"{SETTING} must be a mapping, got {shown(values)}")
    odd = [k for k in values if not isinstance(k, str)]
    if odd:
        raise UserError(f"{SETTING} keys must be strings, got {shown(odd[0])}")
    where, how = split_gemini_dict(values)
    for key, value in where.items():
        check_value(f"{SETTING}.{key}", value, str)
    if not where.get("project"):
        raise UserError(
            f"the vertex_gemini backend needs a Google Cloud project: {SETTING}.project "
            f"(--set {SETTING}.project=ID, or ADAPTUNE_PROJECT)"
        )
    settings = check_gemini_settings(how)
    if not where.get("location"):
        raise UserError(f"{SETTING}.location must not be empty, e.g. {DEFAULT_LOCATION}")
    root = where.get("pipeline_root", "")
    if root and (not root.startswith("gs://") or len(root) <= len("gs://")):
        raise UserError(f"{SETTING}.pipeline_root must be a gs:// directory, got {root!r}")
    if local and not root and not where.get("api_endpoint"):
        raise UserError(
            f"{SETTING}.pipeline_root is required for a local run: the gs:// directory the "
            "tuning service reads the converted data from"
        )
    return GeminiTarget(**where), settings
