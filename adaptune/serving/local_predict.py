"""Try a registered version in this process: its answers, and the base model's beside them.

Requests are rendered by :func:`adaptune.serving.prompts.build_prompt`, as the server renders
them, so an answer here is the server's answer.
"""

from __future__ import annotations

from pathlib import Path

import torch

from adaptune.base_models import load_base_model
from adaptune.evaluation.generation import generate
from adaptune.registry import RegisteredVersion, parse_model_ref, resolve_version, verify_version
from adaptune.serving.adapters import AdapterPool, explained_load_errors
from adaptune.serving.gemini_forwarding import forward, is_forwarded
from adaptune.serving.generation_options import GenerationOptions
from adaptune.serving.prompts import Conversation, build_prompt, needs_tokenizer
from adaptune.tuning.loading import load_tuned_model


def resolve_ref(registry_dir: Path, model_ref: str) -> RegisteredVersion:
    """The version ``name[@ref]`` names (``name`` alone: its ``production`` version).

    Raises:
        UserError: If the reference is malformed or names no registered version.
    """
    name, ref = parse_model_ref(model_ref)
    return resolve_version(registry_dir, name, ref or "production")


def predict_in_process(
    registry_dir: Path,
    model_ref: str,
    conversations: list[Conversation],
    options: GenerationOptions,
    pool: AdapterPool | None = None,
) -> tuple[RegisteredVersion, list[str]]:
    """Answer ``conversations`` with the version ``model_ref`` names, as the server would.

    Args:
        registry_dir: The registry.
        model_ref: ``name``, ``name@vN`` or ``name@<alias>``.
        conversations: What to answer.
        options: How to decode.
        pool: Models kept in memory between calls (the studio's); None: loaded for this call.

    Returns:
        The version that answered and one answer per conversation.

    Raises:
        UserError: If the version does not exist or cannot be loaded, or its chat template
            cannot render a conversation.
    """
    version = resolve_ref(registry_dir, model_ref)
    if is_forwarded(version):  # a managed Gemini model: its endpoint answers
        return version, [a.text for a in forward(version, conversations, options)]
    pool = AdapterPool(registry_dir) if pool is None else pool
    tokenizer = pool.tokenizer(version) if needs_tokenizer(version, conversations) else None
    prompts = [build_prompt(version, c, tokenizer) for c in conversations]
    return version, [a.text for a in pool.generate(version, prompts, options)]


def compare_base_and_tuned(
    registry_dir: Path,
    model_ref: str,
    conversations: list[Conversation],
    options: GenerationOptions,
    pool: AdapterPool | None = None,
) -> tuple[RegisteredVersion, list[str], list[str]]:
    """The base model's and the tuned version's answers to the same prompts.

    Args:
        registry_dir: The registry.
        model_ref: ``name``, ``name@vN`` or ``name@<alias>``.
        conversations: What to answer.
        options: How to decode.
        pool: Models kept in memory between calls (the studio's): both answers come from it
            (the base model's with the adapter switched off). None: loaded for this call.

    Returns:
        The version, the base model's answers and the tuned answers (one per conversation each).

    Raises:
        UserError: If the version does not exist or cannot be loaded, or its chat template
            cannot render a conversation.
    """
    version = resolve_ref(registry_dir, model_ref)
    if pool is not None:
        tokenizer = pool.tokenizer(version) if needs_tokenizer(version, conversations) else None
        pooled = [build_prompt(version, c, tokenizer) for c in conversations]
        tuned_answers = [a.text for a in pool.generate(version, pooled, options)]
        return version, pool.generate_base(version, pooled, options), tuned_answers
    verify_version(version)  # never compare with files that changed since registration
    if is_forwarded(version):  # a managed Gemini model: the endpoint and the base model answer
        base_answers = forward(version, conversations, options, base=True)
        tuned_answers = forward(version, conversations, options)
        return version, [a.text for a in base_answers], [a.text for a in tuned_answers]
    with explained_load_errors(version.ref):  # on the CPU, so in fp32 (as auto there)
        base = load_base_model(version.base_model, torch.float32)
    prompts = [build_prompt(version, c, base.tokenizer) for c in conversations]

    def answers(model: torch.nn.Module) -> list[str]:
        return generate(
            model,
            base.tokenizer,
            prompts,
            base.family,
            options.max_new_tokens,
            show_progress=False,
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k,
            stop=list(options.stop),
        )

    base_answers = answers(base.model)
    with explained_load_errors(version.ref):
        tuned = load_tuned_model(base.model, version.path)
    return version, base_answers, answers(tuned)
