"""Try a registered version in this process: its answers, and the base model's beside them."""

from __future__ import annotations

from pathlib import Path

import torch

from adaptune.base_models import load_base_model
from adaptune.evaluation.generation import generate
from adaptune.registry import RegisteredVersion, parse_model_ref, resolve_version
from adaptune.serving.adapters import AdapterPool, explained_load_errors
from adaptune.serving.generation_options import GenerationOptions
from adaptune.serving.prompts import build_prompt
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
    texts: list[str],
    options: GenerationOptions,
    raw: bool = False,
) -> tuple[RegisteredVersion, list[str]]:
    """Answer ``texts`` with the version ``model_ref`` names, as the server would.

    Returns:
        The version that answered and one answer per text.

    Raises:
        UserError: If the version does not exist or cannot be loaded.
    """
    version = resolve_ref(registry_dir, model_ref)
    pool = AdapterPool(registry_dir)
    prompts = [build_prompt(version, t, raw) for t in texts]
    return version, pool.generate(version, prompts, options)


def compare_base_and_tuned(
    registry_dir: Path,
    model_ref: str,
    texts: list[str],
    options: GenerationOptions,
    raw: bool = False,
) -> tuple[RegisteredVersion, list[str], list[str]]:
    """The base model's and the tuned version's answers to the same prompts.

    Returns:
        The version, the base model's answers and the tuned answers (one per text each).

    Raises:
        UserError: If the version does not exist or cannot be loaded.
    """
    version = resolve_ref(registry_dir, model_ref)
    with explained_load_errors(version.ref):
        base = load_base_model(version.base_model)
    prompts = [build_prompt(version, t, raw) for t in texts]

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
        )

    base_answers = answers(base.model)
    with explained_load_errors(version.ref):
        tuned = load_tuned_model(base.model, version.path)
    return version, base_answers, answers(tuned)
