"""Versions of kind ``vertex_gemini`` answer through their Vertex AI endpoint, not from memory.

Such a version holds no weights: Vertex AI serves the tuned Gemini model on the endpoint the
version records. ``predict``, ``compare`` and ``serve`` forward its requests there with
``generateContent`` (the request's system text, earlier turns and user turn as ``contents``;
temperature, top-p, top-k, stop sequences and the token limit as the generation config), with
the evaluation's retries on 429 and 503. The base model for ``compare`` is the Gemini model the
version was tuned from. The client is built for the endpoint's project and location (from its
resource name) with Application Default Credentials, and the API root the version was tuned
through (``vertex_gemini.api_endpoint``, when one was set).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from adaptune.errors import UserError
from adaptune.evaluation.generation import TokenCounts
from adaptune.registry import RegisteredVersion, verify_version
from adaptune.registry.kinds import VERTEX_GEMINI, check_tuned_model, version_kind
from adaptune.serving.generation_options import Answer, GenerationOptions
from adaptune.serving.prompts import Conversation
from adaptune.vertex.gemini_backend import GeminiTarget
from adaptune.vertex.gemini_retries import Backoff, call_with_retries

if TYPE_CHECKING:
    from google.genai import Client

ENDPOINT = re.compile(r"^projects/([^/]+)/locations/([^/]+)/endpoints/[^/]+$")
RETRIES = Backoff(max_attempts=4)
"""Attempts per answer on 429 and 503 (and 500, 504), with exponential backoff and jitter."""


def is_forwarded(version: RegisteredVersion) -> bool:
    """Whether the version answers through its Vertex AI endpoint (kind ``vertex_gemini``)."""
    return version_kind(version.metadata) == VERTEX_GEMINI


def _target(version: RegisteredVersion) -> tuple[GeminiTarget, str]:
    """Where the version's endpoint is, and the endpoint."""
    tuned = check_tuned_model(version.metadata)
    match = ENDPOINT.match(tuned["endpoint"])
    if not match:
        raise UserError(
            f"{version.ref}: endpoint {tuned['endpoint']!r} is not "
            "projects/P/locations/L/endpoints/E"
        )
    api_endpoint = str(version.metadata["tuned_model"].get("api_endpoint") or "")
    return GeminiTarget(match.group(1), match.group(2), api_endpoint), tuned["endpoint"]


def client_for(version: RegisteredVersion) -> Client:
    """A google-genai client for the version's endpoint (its project, location and API root)."""
    return _target(version)[0].client()


def contents_of(conversation: Conversation) -> list[dict[str, Any]]:
    """The request's turns as Gemini ``contents``, the user turn to answer last."""
    turns = [*conversation.context, ("user", conversation.input_text)]
    return [{"role": role, "parts": [{"text": text}]} for role, text in turns]


def _config(conversation: Conversation, options: GenerationOptions, system: str) -> Any:
    from google.genai import types

    return types.GenerateContentConfig(
        system_instruction=(system if conversation.system is None else conversation.system) or None,
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k or None,
        stop_sequences=list(options.stop) or None,
        max_output_tokens=options.max_new_tokens,
    )


def _answer(
    client: Client,
    model: str,
    conversation: Conversation,
    options: GenerationOptions,
    system: str,
) -> Answer:
    config = _config(conversation, options, system)

    def call() -> Any:
        return client.models.generate_content(
            model=model, contents=contents_of(conversation), config=config
        )

    try:
        response, _ = call_with_retries(call, RETRIES)
    except Exception as exc:
        raise UserError(f"generateContent on {model} failed: {exc}") from None
    usage = response.usage_metadata
    finish = response.candidates[0].finish_reason if response.candidates else None
    counts = TokenCounts(
        prompt_tokens=int(getattr(usage, "prompt_token_count", 0) or 0),
        completion_tokens=int(getattr(usage, "candidates_token_count", 0) or 0),
        stopped=str(getattr(finish, "value", finish) or "STOP") != "MAX_TOKENS",
    )
    return Answer(response.text or "", counts)


def forward(
    version: RegisteredVersion,
    conversations: list[Conversation],
    options: GenerationOptions,
    base: bool = False,
) -> list[Answer]:
    """The answers of the version's endpoint (``base``: of the model it was tuned from).

    Raises:
        UserError: If the version records no valid endpoint, or a call fails for good.
        BrokenRecord: If its files changed since registration.
    """
    verify_version(version)  # tuned_model.json as registered, or nothing is asked
    target, endpoint = _target(version)
    model = version.base_model if base else endpoint
    client = target.client()
    # The version was tuned with data.system_instruction where an example had no system text.
    system = str(version.metadata["tuned_model"].get("system_instruction") or "")
    return [_answer(client, model, c, options, system) for c in conversations]
