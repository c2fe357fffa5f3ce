"""The google-genai client for Vertex AI: one place that builds it, for tuning and generation.

With ``vertexai=True``, a project and a location, the SDK sends every call to
``{base_url}/{api_version}/projects/{project}/locations/{location}/...`` with the credentials'
bearer token. ``base_url`` is empty for Google's regional endpoint; a test points it at a fake
server on 127.0.0.1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.genai import Client


def gemini_client(
    project: str,
    location: str,
    credentials: Credentials | None = None,
    base_url: str = "",
    api_version: str = "",
    timeout_seconds: float = 0,
) -> Client:
    """A google-genai client calling Vertex AI in ``project`` and ``location``.

    Args:
        project: Google Cloud project id.
        location: Vertex AI region.
        credentials: Credentials (default: Application Default Credentials, found by the SDK).
        base_url: API root (empty: Google's endpoint for the location).
        api_version: API version (empty: the SDK's, ``v1beta1``).
        timeout_seconds: Timeout of each HTTP request (0: the SDK's).

    Returns:
        The client; the SDK's own retries are off (callers retry where it is safe).
    """
    from google import genai
    from google.genai import types

    options: dict[str, Any] = {}
    if base_url:
        options["base_url"] = base_url
    if api_version:
        options["api_version"] = api_version
    if timeout_seconds:
        options["timeout"] = int(timeout_seconds * 1000)  # the SDK takes milliseconds
    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=credentials,
        http_options=types.HttpOptions(**options),
    )
