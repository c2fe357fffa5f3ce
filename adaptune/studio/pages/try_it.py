"""The Try it page: base, tuned and production answers to one prompt, side by side.

The tuned version is the one asked for, else the latest; the prompt may be a conversation.

Answers come from ``adaptune compare``'s and ``adaptune predict``'s in-process functions,
through one ``AdapterPool`` kept for the studio's life (the server's pool: loaded models stay
in memory within its bounds). Generation is CPU-bound, so the POST handler is a plain ``def``:
FastAPI runs it in its threadpool and the studio keeps answering other pages meanwhile.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from adaptune.errors import UserError
from adaptune.registry import find_production, list_models
from adaptune.registry.refs import check_model_name, version_number
from adaptune.serving.adapters import AdapterPool
from adaptune.serving.errors import describe_errors
from adaptune.serving.generation_options import GenerationOptions
from adaptune.serving.local_predict import compare_base_and_tuned, predict_in_process
from adaptune.serving.prompts import Conversation
from adaptune.serving.schemas import Instance
from adaptune.studio.rendering import render

router = APIRouter()

MAX_TOKENS = 256
"""Most tokens an answer may have here."""
MAX_PROMPT_CHARS = 8000
MAX_CONVERSATION_CHARS = 32000
IDLE_ADAPTERS = 2
"""Adapters no alias points to that the studio keeps loaded (as ``serve --idle-adapters``)."""
DEFAULTS = {
    "model": "",
    "version": "",
    "prompt": "",
    "conversation": "",
    "temperature": "0",
    "max_tokens": "64",
}
_pool_lock = threading.Lock()


def pool_of(request: Request) -> AdapterPool:
    """The studio's pool of loaded models (made on first use)."""
    state = request.app.state
    with _pool_lock:
        if not hasattr(state, "try_pool"):
            state.try_pool = AdapterPool(state.settings.registry_dir, idle_adapters=IDLE_ADAPTERS)
        return state.try_pool


def conversation_from(prompt: str, conversation: str) -> Conversation:
    """The conversation to answer: the JSON messages when given, else the prompt.

    Raises:
        UserError: If neither is given, either is too long, or the messages break the rules
            a server applies to a ``messages`` instance.
    """
    if conversation.strip():
        if len(conversation) > MAX_CONVERSATION_CHARS:
            raise UserError(f"Conversation: at most {MAX_CONVERSATION_CHARS} characters")
        try:
            data: Any = json.loads(conversation)
        except json.JSONDecodeError as exc:
            raise UserError(f"Conversation: not JSON ({exc})") from None
        if isinstance(data, dict) and "messages" in data:
            data = data["messages"]
        try:
            instance = Instance.model_validate({"messages": data})
        except ValidationError as exc:
            problems = describe_errors(list(exc.errors())).replace("body: ", "")
            raise UserError(f"Conversation: {problems}") from None
        return instance.conversation()
    if not prompt.strip():
        raise UserError("give a Prompt, or a Conversation as JSON messages")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserError(f"Prompt: at most {MAX_PROMPT_CHARS} characters")
    try:
        return Instance.model_validate({"prompt": prompt}).conversation()
    except ValidationError as exc:
        problems = describe_errors(list(exc.errors())).replace("body: ", "")
        raise UserError(f"Prompt: {problems}") from None


def options_from(temperature: str, max_tokens: str) -> GenerationOptions:
    """Decoding options from the form's texts, within the page's bounds.

    Raises:
        UserError: Naming the field and its range.
    """
    try:
        heat = float(temperature)
    except ValueError:
        heat = math.nan
    if not 0 <= heat <= 2:
        raise UserError(f"Temperature must be a number from 0 to 2, got {temperature[:20]!r}")
    try:
        tokens = int(max_tokens)
    except ValueError:
        tokens = 0
    if not 1 <= tokens <= MAX_TOKENS:
        raise UserError(f"Max tokens must be a whole number from 1 to {MAX_TOKENS}")
    return GenerationOptions(tokens, heat)


def tuned_ref(name: str, version: str) -> str:
    """``name@vN`` for the version asked for, ``name@latest`` when none was.

    Raises:
        UserError: If the model name or the version is malformed.
    """
    check_model_name(name)
    wanted = version.strip() or "latest"
    version_number(wanted)
    return f"{name}@{wanted}"


def answers(request: Request, values: dict[str, str]) -> list[dict[str, str]]:
    """The three answers (base, tuned, production), each with a heading.

    Raises:
        UserError: On a bad field, an unknown model or version, or a version that cannot load.
    """
    registry_dir = request.app.state.settings.registry_dir
    name = values["model"]
    if name not in list_models(registry_dir):
        raise UserError(f"Model: no model {name[:80]!r} in the registry")
    ref = tuned_ref(name, values["version"])
    conversation = conversation_from(values["prompt"], values["conversation"])
    options = options_from(values["temperature"], values["max_tokens"])
    pool = pool_of(request)
    version, base, tuned = compare_base_and_tuned(
        registry_dir, ref, [conversation], options, pool=pool
    )
    production = find_production(registry_dir, name)
    if production is None:
        served = {
            "id": "production",
            "heading": "Production",
            "text": "",
            "missing": "no production version",
        }
    else:
        if production.version == version.version and options.temperature == 0:
            text = tuned[0]  # the same version, decoded greedily: the same answer
        else:
            text = predict_in_process(
                registry_dir, production.ref, [conversation], options, pool=pool
            )[1][0]
        served = {
            "id": "production",
            "heading": f"Production ({production.ref})",
            "text": text,
            "missing": "",
        }
    return [
        {
            "id": "base",
            "heading": f"Base model ({version.base_model})",
            "text": base[0],
            "missing": "",
        },
        {"id": "tuned", "heading": f"Tuned ({version.ref})", "text": tuned[0], "missing": ""},
        served,
    ]


def _page(request: Request, values: dict[str, str], **context: Any) -> HTMLResponse:
    models = list_models(request.app.state.settings.registry_dir)
    return render(
        request,
        "try.html",
        title="Try it",
        models=models,
        values=values,
        max_tokens=MAX_TOKENS,
        **{"results": [], "error": "", **context},
    )


@router.get("/try", response_class=HTMLResponse)
def try_form(request: Request, model: str = "") -> HTMLResponse:
    """The form (``?model=NAME`` selects the model)."""
    return _page(request, {**DEFAULTS, "model": model})


@router.post("/try", response_class=HTMLResponse)
def try_answers(
    request: Request,
    model: Annotated[str, Form()] = "",
    version: Annotated[str, Form()] = "",
    prompt: Annotated[str, Form()] = "",
    conversation: Annotated[str, Form()] = "",
    temperature: Annotated[str, Form()] = "0",
    max_tokens: Annotated[str, Form()] = "64",
) -> HTMLResponse:
    """The three answers beside the form (its values kept); a user error in role=alert."""
    values = {
        "model": model,
        "version": version,
        "prompt": prompt,
        "conversation": conversation,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    try:
        results = answers(request, values)
    except UserError as exc:
        return _page(request, values, error=str(exc))
    return _page(request, values, results=results)
