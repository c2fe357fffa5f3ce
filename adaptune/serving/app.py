"""The HTTP API: Vertex AI's predict format over the registry's versions.

* ``POST /v1/endpoints/{model}:predict``: ``model`` is ``name`` (its ``production`` version),
  ``name@vN``, ``name@previous`` or ``name@latest``. The alias is resolved on every request
  (one small JSON read), so a promotion is served from the next request on, no restart. Each
  instance is a prompt, OpenAI-style messages or Gemini-style contents (``schemas.py``),
  rendered exactly as tuning rendered the version's examples (``prompts.py``).
* ``POST /v1/chat/completions``: OpenAI's chat completion; ``model`` names the version as
  above, ``stop`` sequences end the answer, ``usage`` counts the tokens.
* ``GET /health``: 200 while the server runs.
* ``GET /v1/models``: every model, its versions and aliases, and what is loaded.
* ``AIP_PREDICT_ROUTE`` / ``AIP_HEALTH_ROUTE``: the same, for Vertex AI (its predict path
  names no model: it serves ``default_model``, or the registry's only model).

Limits give 4xx error bodies and never stop the server: body size (413), instances per
request, ``maxOutputTokens`` (``max_tokens``) and the request's shape (400), unknown model or
version (404), and the bearer token when one is configured (401).

Every mistake of the client is a 4xx, never a 500: a malformed body, field or number, a
malformed model reference (``name@v0``, ``name@``, ``@v1``: 400, while a well-formed one that
names nothing is 404), a prompt that is empty (as sent, once rendered, or once tokenised), a
conversation the version's chat template refuses. A 500 means the server or a version is
broken (its files do not load, its recorded prompt style is unusable, generation failed).

Stale weights are never served: a version whose files are missing, or no longer match the
checksums recorded at registration (checked when it loads; afterwards, a few ``stat`` calls
per request notice any change and its files are hashed again), or whose ``version.json`` or
index is corrupt, is answered 503 (``UNAVAILABLE``) with its path and the reason, and dropped
from memory; every other version keeps serving, and it serves again once its files are
restored.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from adaptune.errors import UserError
from adaptune.registry import (
    BrokenRecord,
    RegisteredVersion,
    list_models,
    parse_model_ref,
    read_index,
    resolve_version,
)
from adaptune.serving.adapters import AdapterPool
from adaptune.serving.batching import GenerationQueue
from adaptune.serving.body_limit import BodySizeLimit
from adaptune.serving.errors import install_error_handlers
from adaptune.serving.gemini_forwarding import forward, is_forwarded
from adaptune.serving.generation_options import Answer, EmptyPrompt, GenerationOptions
from adaptune.serving.prompts import Conversation, build_prompt, needs_tokenizer, prompt_style
from adaptune.serving.schemas import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    Choice,
    Prediction,
    PredictRequest,
    PredictResponse,
    Usage,
    has_visible_text,
    messages_conversation,
)
from adaptune.serving.settings import ServeSettings

log = logging.getLogger(__name__)


BROKEN = 503
"""The status of a version that is broken on disk: the registry's fault, not the client's."""


def not_served(exc: BrokenRecord) -> HTTPException:
    """The 503 of a broken version or index: its path and the reason."""
    return HTTPException(BROKEN, f"not served: {exc}")


def resolve_served(
    settings: ServeSettings, model_ref: str, pool: AdapterPool | None = None
) -> RegisteredVersion:
    """The version ``model_ref`` names now (``name`` follows ``production``).

    A broken index or ``version.json`` also drops the model's versions that no longer resolve
    from ``pool``.

    Raises:
        HTTPException: 400 for a malformed reference, 404 for an unknown model or version,
            503 for a broken one (its index or ``version.json`` unreadable).
    """
    try:
        name, ref = parse_model_ref(model_ref)
    except UserError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        return resolve_version(settings.registry_dir, name, ref or "production")
    except BrokenRecord as exc:
        if pool is not None:
            drop_broken(settings, pool, name)
        raise not_served(exc) from None
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None


def drop_broken(settings: ServeSettings, pool: AdapterPool, model: str) -> list[str]:
    """Drop from memory the loaded versions of ``model`` that no longer resolve; their refs."""
    dropped = []
    for ref in sorted(pool.loaded_refs()):
        name, _, number = ref.partition("@")
        if name != model:
            continue
        try:
            resolve_version(settings.registry_dir, name, number)
        except BrokenRecord:
            if pool.discard(ref):
                log.warning("dropped %s from memory: its registry record is broken", ref)
                dropped.append(ref)
        except UserError:
            continue
    return dropped


def default_model(settings: ServeSettings) -> str:
    """The model Vertex AI's predict route serves.

    Raises:
        HTTPException: 404 when none is configured and the registry holds not exactly one.
    """
    if settings.default_model:
        return settings.default_model
    models = list_models(settings.registry_dir)
    if len(models) != 1:
        raise HTTPException(
            404,
            f"the registry holds {len(models)} models ({', '.join(models) or 'none'}): "
            "start the server with --model NAME to say which this route serves",
        )
    return models[0]


def models_listing(settings: ServeSettings, pool: AdapterPool) -> dict[str, object]:
    """``GET /v1/models``: each model's versions and aliases, and what is in memory.

    A model whose index is unreadable is listed with its ``error`` (path and reason).
    """
    loaded = pool.loaded_refs()
    models: list[dict[str, object]] = []
    for name in list_models(settings.registry_dir):
        try:
            index = read_index(settings.registry_dir, name)
        except UserError as exc:
            models.append({"model": name, "error": str(exc)})
            continue
        models.append(
            {
                "model": name,
                "aliases": index.aliases,
                "versions": index.versions,
                "loaded": [n for n in index.versions if f"{name}@v{n}" in loaded],
            }
        )
    return {"models": models, "loaded": pool.loaded()}


def create_app(
    settings: ServeSettings, pool: AdapterPool | None = None, preload_models: bool = False
) -> FastAPI:
    """The server's application.

    Args:
        settings: Registry, limits and routes.
        pool: Models in memory (a new, empty pool in ``settings.precision`` when None).
        preload_models: Load every model's ``production`` version before taking requests;
            otherwise each version loads on its first request.
    """
    pool = pool or AdapterPool(
        settings.registry_dir,
        settings.idle_adapters,
        precision=settings.precision,
        attention=settings.attention,
    )
    pool.max_prompt_tokens = settings.max_prompt_tokens
    queue = GenerationQueue(pool, settings.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        if preload_models:
            loaded = await asyncio.to_thread(preload, settings, pool)
            log.info("preloaded %s", ", ".join(loaded) or "nothing")
        try:
            yield
        finally:
            await asyncio.to_thread(queue.close)

    app = FastAPI(title="adaptune", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.pool = pool
    app.state.queue = queue
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)

    def require_token(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.token.encode()
        ):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    def token_limit(requested: int | None, name: str) -> int:
        tokens = requested or min(settings.default_new_tokens, settings.max_new_tokens)
        if tokens > settings.max_new_tokens:
            raise HTTPException(
                400, f"{name} {tokens} is over the limit of {settings.max_new_tokens}"
            )
        return tokens

    def render(
        version: RegisteredVersion, conversations: list[Conversation], what: str
    ) -> list[str]:
        """The prompts, as tuning rendered them (a broken version: 500; a bad request: 400).

        ``what`` names the request's prompts in messages (``instances``, ``messages``).
        """
        try:
            needed = needs_tokenizer(version, conversations)
            tokenizer = pool.tokenizer(version) if needed else None
            if tokenizer is not None:
                prompt_style(version).check_template(tokenizer, version.ref)
        except BrokenRecord as exc:
            raise not_served(exc) from None
        except UserError as exc:
            raise HTTPException(500, f"{version.ref} failed: {type(exc).__name__}: {exc}") from None
        prompts = []
        for index, conversation in enumerate(conversations):
            where = f"{what}[{index}]" if len(conversations) > 1 or what == "instances" else what
            try:
                prompt = build_prompt(version, conversation, tokenizer)
            except UserError as exc:  # the chat template refuses this conversation
                raise HTTPException(400, f"{where}: {exc}") from None
            if not has_visible_text(prompt):
                raise HTTPException(
                    400,
                    f"{where}: the prompt is empty once rendered for {version.ref}: "
                    "send some text to answer",
                )
            prompts.append(prompt)
        return prompts

    def forwarded(
        version: RegisteredVersion, conversations: list[Conversation], options: GenerationOptions
    ) -> list[Answer]:
        """A vertex_gemini version's answers from its endpoint (a failed call: 502)."""
        try:
            return forward(version, conversations, options)
        except UserError as exc:
            raise HTTPException(502, f"{version.ref}: {exc}") from None

    async def generated(
        version: RegisteredVersion, prompts: list[str], options: GenerationOptions, what: str
    ) -> list[Answer]:
        try:
            return await asyncio.wrap_future(queue.submit(version, prompts, options))
        except EmptyPrompt as exc:
            where = f"{what}[{exc.index}]" if what == "instances" else what
            raise HTTPException(
                400,
                f"{where}: the prompt is empty once tokenised for {version.ref}: "
                "send some text to answer",
            ) from None
        except BrokenRecord as exc:  # its files changed on disk: dropped from memory
            raise not_served(exc) from None
        except Exception as exc:  # logged by the worker; a broken version is not the client's fault
            raise HTTPException(500, f"{version.ref} failed: {type(exc).__name__}: {exc}") from None

    async def answer(model_ref: str, body: PredictRequest) -> PredictResponse:
        if len(body.instances) > settings.max_instances:
            raise HTTPException(
                400,
                f"{len(body.instances)} instances in one request; at most "
                f"{settings.max_instances} are allowed",
            )
        params = body.parameters
        new_tokens = token_limit(params.max_new_tokens, "maxOutputTokens")
        version = await run_in_threadpool(resolve_served, settings, model_ref, pool)
        conversations = [i.conversation(raw=params.raw_prompt) for i in body.instances]
        options = GenerationOptions(
            new_tokens, params.temperature, params.top_p, params.top_k, stop=params.stop()
        )
        if is_forwarded(version):  # a managed Gemini model: its Vertex AI endpoint answers
            answers = await run_in_threadpool(forwarded, version, conversations, options)
        else:
            prompts = await run_in_threadpool(render, version, conversations, "instances")
            answers = await generated(version, prompts, options, "instances")
        return PredictResponse(
            predictions=[Prediction(content=a.text) for a in answers],
            deployedModelId=settings.deployed_model_id or version.ref,
            model=version.model,
            modelDisplayName=version.model,
            modelVersionId=str(version.version),
        )

    async def chat_completion(body: ChatCompletionRequest) -> ChatCompletionResponse:
        new_tokens = token_limit(body.max_tokens, "max_tokens")
        version = await run_in_threadpool(resolve_served, settings, body.model, pool)
        conversation = messages_conversation(body.messages)
        options = GenerationOptions(
            new_tokens, body.temperature, body.top_p, stop=body.stop_sequences()
        )
        if is_forwarded(version):  # a managed Gemini model: its Vertex AI endpoint answers
            (reply,) = await run_in_threadpool(forwarded, version, [conversation], options)
        else:
            prompts = await run_in_threadpool(render, version, [conversation], "messages")
            (reply,) = await generated(version, prompts, options, "messages")
        counts = reply.counts
        return ChatCompletionResponse(
            id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model=version.ref,
            choices=[
                Choice(
                    index=0,
                    message=ChatMessage(content=reply.text),
                    finish_reason="stop" if counts.stopped else "length",
                )
            ],
            usage=Usage(
                prompt_tokens=counts.prompt_tokens,
                completion_tokens=counts.completion_tokens,
                total_tokens=counts.prompt_tokens + counts.completion_tokens,
            ),
        )

    guarded = [Depends(require_token)]

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "queued": queue.waiting()}

    @app.get("/v1/models", dependencies=guarded)
    async def models() -> dict[str, object]:
        return await run_in_threadpool(models_listing, settings, pool)

    @app.post("/v1/endpoints/{model_ref}:predict", dependencies=guarded)
    async def predict(model_ref: str, body: PredictRequest) -> PredictResponse:
        return await answer(model_ref, body)

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat_completions(body: ChatCompletionRequest) -> ChatCompletionResponse:
        return await chat_completion(body)

    if settings.predict_route:

        async def predict_default(body: PredictRequest) -> PredictResponse:
            return await answer(await run_in_threadpool(default_model, settings), body)

        app.add_api_route(
            settings.predict_route, predict_default, methods=["POST"], dependencies=guarded
        )
    if settings.health_route:
        app.add_api_route(settings.health_route, health, methods=["GET"])
    return app


def preload(settings: ServeSettings, pool: AdapterPool) -> list[str]:
    """Load every model's ``production`` version now, so the first requests are fast.

    A version that fails to load, or whose files do not match their recorded checksums, is
    logged with its path and the reason and skipped: it fails its own requests later (with a
    500, or 503 while its files are broken), not the server.

    Returns:
        The refs loaded.
    """
    done = []
    for name in list_models(settings.registry_dir):
        try:
            version = resolve_version(settings.registry_dir, name, "production")
            if is_forwarded(version):  # nothing to load: its Vertex AI endpoint answers
                continue
            pool.load(version)
            done.append(version.ref)
        except Exception as exc:  # a broken version or index fails its own requests only
            log.warning("not preloaded: %s: %s", name, exc)
    return done
