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
    conversations: list[list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """POST ``texts`` (and ``conversations``) to ``URL/v1/endpoints/MODEL_REF:predict``.

    Args:
        url: The server's address.
        model_ref: ``MODEL``, ``MODEL@vN``, ...
        texts: Prompts, one ``{"prompt"}`` instance each.
        options: Decoding settings.
        raw: Send the prompts without the template.
        token: Bearer token.
        timeout_s: How long to wait for the answer.
        conversations: OpenAI-style message lists, one ``{"messages"}`` instance each, after
            the prompts.

    Returns:
        The response body (``predictions``, ``modelVersionId``, ...).

    Raises:
        UserError: If the server cannot be reached or refuses the request (its message is kept).
    """
    instances: list[dict[str, Any]] = [{"prompt": t} for t in texts]
    instances += [{"messages": m} for m in conversations or []]
    body = {
        "instances": instances,
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
