"""``adaptune serve``, ``predict`` and ``compare``: serve registered versions and try them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import apply_options, registry_dir_option, serve_registry_dir_option
from adaptune.errors import UserError
from adaptune.serving.generation_options import GenerationOptions
from adaptune.serving.settings import TOKEN_ENV

if TYPE_CHECKING:
    from adaptune.serving.prompts import Conversation

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def read_messages(path: Path) -> tuple[list[dict[str, Any]], Conversation]:
    """The OpenAI-style messages in ``path`` (a list, or an object with ``messages``), checked.

    Returns:
        The messages as read, and the conversation they make.

    Raises:
        UserError: If the file cannot be read, is not JSON, or its messages break the rules a
            server applies to a ``messages`` instance.
    """
    from pydantic import ValidationError

    from adaptune.serving.errors import describe_errors
    from adaptune.serving.schemas import Instance

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--messages {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"--messages {path}: not JSON ({exc})") from None
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    try:
        instance = Instance.model_validate({"messages": data})
    except ValidationError as exc:
        problems = describe_errors(list(exc.errors())).replace("body: ", "")
        raise UserError(f"--messages {path}: {problems}") from None
    return data, instance.conversation()


def conversation_label(conversation: Conversation) -> str:
    """A conversation as lines of ``role: text`` (OpenAI's role names), for a table cell."""
    names = {"model": "assistant"}
    return "\n".join(f"{names.get(role, role)}: {text}" for role, text in conversation.turns())


messages_help = (
    "JSON file with OpenAI-style messages (a list, or an object with 'messages') ending with "
    "a user turn."
)


def _count_option(flag: str, default: int, help_text: str, minimum: int = 1) -> Callable:
    return click.option(
        flag, type=click.IntRange(min=minimum), default=default, show_default=True, help=help_text
    )


vertex_option = click.option(
    "--vertex",
    "on_vertex",
    is_flag=True,
    help="Ask the version's Vertex AI endpoint (a `vertex deploy --serving vllm` records it): "
    "each request names the adapter's gs:// directory.",
)

decoding_options = apply_options(
    [
        _count_option("--max-new-tokens", 64, "Most tokens generated per answer."),
        click.option(
            "--temperature",
            type=click.FloatRange(0, 2),
            default=0.0,
            show_default=True,
            help="0 decodes greedily; above 0 samples.",
        ),
        click.option("--raw", is_flag=True, help="Send the prompt as it is, without the template."),
    ]
)


@click.command()
@serve_registry_dir_option
@click.option(
    "--host",
    default=None,
    help="Address to listen on [default: 127.0.0.1; "
    "0.0.0.0 when AIP_HTTP_PORT is set, as on Vertex AI].",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port [default: AIP_HTTP_PORT, else 8080].",
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"Require 'Authorization: Bearer TOKEN' (env {TOKEN_ENV}).",
)
@click.option(
    "--model",
    "default_model",
    envvar="ADAPTUNE_SERVE_MODEL",
    default=None,
    help="The model AIP_PREDICT_ROUTE serves (needed when the registry holds several).",
)
@_count_option("--max-instances", 32, "Most instances per request.")
@_count_option("--max-new-tokens", 256, "Largest maxOutputTokens a request may ask for.")
@_count_option(
    "--max-prompt-tokens",
    256,
    "Prompt tokens kept, cut from the left as training cuts them (set it to the versions' "
    "training.max_length or more for long chat prompts).",
)
@_count_option("--max-body-bytes", 1_500_000, "Largest request body.")
@_count_option("--idle-adapters", 4, "Adapters no alias points to that stay loaded.", minimum=0)
@_count_option("--max-batch", 32, "Most prompts generated together for one adapter (1: none).")
@_count_option(
    "--torch-threads",
    0,
    "CPU threads for PyTorch (0: its default); a small model on a busy CPU is faster with 1.",
    minimum=0,
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    default="auto",
    show_default=True,
    help="dtype the base models are held in; auto: bf16 on a GPU that supports it, else fp16 "
    "on GPU, fp32 on CPU (fp16 needs a GPU).",
)
@click.option(
    "--attention",
    type=click.Choice(["auto", "sdpa", "eager", "flash_attention_2"]),
    default="auto",
    show_default=True,
    help="Attention implementation of the base models; auto: flash_attention_2 when flash-attn "
    "is installed and they run on a GPU in bf16/fp16, else sdpa.",
)
@click.option(
    "--preload/--no-preload",
    default=True,
    show_default=True,
    help="Load every model's production version before taking requests.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@reports_errors
def serve(
    registry_dir: str | None,
    host: str | None,
    port: int | None,
    token: str | None,
    default_model: str | None,
    torch_threads: int,
    precision: str,
    attention: str,
    preload: bool,
    log_level: str,
    **limits: int,
) -> None:
    """Serve the registry's versions over HTTP in Vertex AI's predict format.

    POST /v1/endpoints/MODEL[@REF]:predict with {"instances": [{"prompt": ...}],
    "parameters": {"maxOutputTokens": N}} (an instance may instead hold OpenAI-style
    "messages" or Gemini-style "contents"); MODEL alone follows its production alias, so a
    promoted version is served without a restart. POST /v1/chat/completions (OpenAI's format,
    "model": "MODEL[@REF]"). GET /health and /v1/models.
    """
    import uvicorn

    from adaptune.serving.app import create_app
    from adaptune.serving.settings import ServeSettings, VertexEnvironment
    from adaptune.serving.storage import local_registry

    vertex = VertexEnvironment.from_environ()
    location = registry_dir or vertex.storage_uri or "registry"
    settings = ServeSettings(
        registry_dir=local_registry(location),
        token=token or None,
        default_model=default_model,
        **limits,
        predict_route=vertex.predict_route,
        health_route=vertex.health_route,
        deployed_model_id=vertex.deployed_model_id,
        precision=precision,
        attention=attention,
    )
    if not settings.registry_dir.is_dir():
        raise UserError(f"registry {settings.registry_dir} is not a directory")
    address = vertex.host(host)
    if address not in LOOPBACK and settings.token is None and not vertex.on_vertex:
        click.echo(
            f"adaptune: warning: listening on {address} without a token; anyone who can reach "
            f"it can use it (set --token or {TOKEN_ENV})",
            err=True,
        )
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    app = create_app(settings, preload_models=preload)
    uvicorn.run(app, host=address, port=vertex.listen_port(port), log_level=log_level)


@click.command()
@click.argument("model_ref")
@click.argument("prompt", required=False)
@click.option(
    "--messages",
    "messages_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=messages_help + " Instead of PROMPT.",
)
@registry_dir_option
@decoding_options
@click.option(
    "--url",
    default=None,
    help="Ask a running server (e.g. http://127.0.0.1:8080) instead of loading here.",
)
@click.option(
    "--token", envvar=TOKEN_ENV, default=None, help=f"Bearer token for --url (env {TOKEN_ENV})."
)
@vertex_option
@reports_errors
def predict(
    model_ref: str,
    prompt: str | None,
    messages_file: Path | None,
    registry_dir: Path,
    max_new_tokens: int,
    temperature: float,
    raw: bool,
    url: str | None,
    token: str | None,
    on_vertex: bool,
) -> None:
    """Print the tuned model's answer to PROMPT, or to --messages (MODEL, MODEL@vN, ...)."""
    from adaptune.serving.prompts import Conversation

    if (prompt is None) == (messages_file is None):
        raise UserError("give exactly one of PROMPT or --messages FILE")
    if raw and messages_file is not None:
        raise UserError("--raw applies to PROMPT only, not to --messages")
    if messages_file is not None:
        messages, conversation = read_messages(messages_file)
    else:
        messages, conversation = None, Conversation.from_prompt(str(prompt), raw=raw)
    options = GenerationOptions(max_new_tokens, temperature)
    if url and on_vertex:
        raise UserError("give at most one of --url or --vertex")
    if on_vertex:
        from adaptune.serving.vertex_vllm import predict_on_vertex

        version, answers = predict_on_vertex(registry_dir, model_ref, [conversation], options)
        answer, served = answers[0], f"{version.ref} on Vertex AI (vLLM)"
    elif url:
        from adaptune.serving.client import predict_remote

        texts = [] if prompt is None else [prompt]
        conversations = [] if messages is None else [messages]
        body = predict_remote(
            url, model_ref, texts, options, raw=raw, token=token, conversations=conversations
        )
        answer, served = body["predictions"][0]["content"], body.get("deployedModelId", "")
    else:
        from adaptune.serving.local_predict import predict_in_process

        version, answers = predict_in_process(registry_dir, model_ref, [conversation], options)
        answer, served = answers[0], version.ref
    click.echo(f"# {served}", err=True)
    click.echo(answer)


@click.command()
@click.argument("model_ref")
@click.option("--prompt", "prompts", multiple=True, help="A prompt to try (repeat for more).")
@click.option(
    "--messages",
    "messages_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=messages_help + " Repeat for more.",
)
@registry_dir_option
@decoding_options
@vertex_option
@reports_errors
def compare(
    model_ref: str,
    prompts: tuple[str, ...],
    messages_files: tuple[Path, ...],
    registry_dir: Path,
    max_new_tokens: int,
    temperature: float,
    raw: bool,
    on_vertex: bool,
) -> None:
    """Print the base model's and the tuned model's answers side by side."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from adaptune.serving.prompts import Conversation

    if not prompts and not messages_files:
        raise UserError("give at least one --prompt TEXT or --messages FILE")
    if raw and messages_files:
        raise UserError("--raw applies to --prompt only, not to --messages")
    conversations = [Conversation.from_prompt(p, raw=raw) for p in prompts]
    conversations += [read_messages(path)[1] for path in messages_files]
    labels = [*prompts, *(conversation_label(c) for c in conversations[len(prompts) :])]
    options = GenerationOptions(max_new_tokens, temperature)
    if on_vertex:  # one vLLM endpoint answers both: without and with the adapter
        from adaptune.serving.vertex_vllm import predict_on_vertex

        _, base = predict_on_vertex(registry_dir, model_ref, conversations, options, False)
        version, tuned = predict_on_vertex(registry_dir, model_ref, conversations, options)
    else:
        from adaptune.serving.local_predict import compare_base_and_tuned

        version, base, tuned = compare_base_and_tuned(
            registry_dir, model_ref, conversations, options
        )
    table = Table(title=f"{version.ref} vs its base model", show_lines=True)
    table.add_column("prompt", overflow="fold")
    table.add_column(f"base ({version.metadata.get('base_model', 'base')})", overflow="fold")
    table.add_column(f"tuned ({version.ref})", overflow="fold")
    for row in zip(labels, base, tuned, strict=True):
        table.add_row(*(Text(cell) for cell in row))
    Console(width=max(120, Console().width)).print(table)
