"""Send a predict request to a running server (ours, or anything speaking Vertex AI's format)."""

from __future__ import annotations

from typing import Any

import httpx

from adaptune.errors import UserError
from adaptune.serving.generation_options import GenerationOptions


def predict_remote(
    url: str,
    model_ref: str,
    texts: list[str],
    options: GenerationOptions,
    raw: bool = False,
    token: str | None = None,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """POST ``texts`` to ``URL/v1/endpoints/MODEL_REF:predict``.

    Returns:
        The response body (``predictions``, ``modelVersionId``, ...).

    Raises:
        UserError: If the server cannot be reached or refuses the request (its message is kept).
    """
    body = {
        "instances": [{"prompt": t} for t in texts],
        "parameters": {
            "maxOutputTokens": options.max_new_tokens,
            "temperature": options.temperature,
            "topP": options.top_p,
            "topK": options.top_k,
            "rawPrompt": raw,
        },
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoint = f"{url.rstrip('/')}/v1/endpoints/{model_ref}:predict"
    try:
        response = httpx.post(endpoint, json=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach {endpoint}: {exc}") from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200 or not isinstance(payload, dict):
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
        raise UserError(
            f"{endpoint} answered {response.status_code}: {message or response.text[:500]}"
        )
    return payload
