"""Try a version served by vLLM on Vertex AI: its answers, and the base model's beside them.

``adaptune vertex deploy --serving vllm`` records which endpoint serves a version and its
adapter's ``gs://`` directory (``vertex.vllm_deployment.ServingRecord``). The prompts are
rendered here as in tuning (the container's ``/generate`` applies no template) and sent with
the adapter's directory in each instance's ``dynamic-lora``; without it, the same endpoint's
base model answers.
"""

from __future__ import annotations

from pathlib import Path

from adaptune.errors import UserError
from adaptune.registry import RegisteredVersion, parse_model_ref, resolve_version
from adaptune.serving.generation_options import GenerationOptions
from adaptune.serving.prompts import Conversation, build_prompt, needs_tokenizer
from adaptune.vertex.vllm_deployment import predict_with_vllm, read_serving_record


def vertex_prompts(
    registry_dir: Path, model_ref: str, conversations: list[Conversation]
) -> tuple[RegisteredVersion, list[str]]:
    """The version ``model_ref`` names and the prompts it was tuned to read.

    Raises:
        UserError: If the version does not exist, or its prompts are in the chat format (they
            need the base model's tokenizer, which is on Cloud Storage): send them with --raw.
    """
    name, ref = parse_model_ref(model_ref)
    version = resolve_version(registry_dir, name, ref or "production")
    if needs_tokenizer(version, conversations):
        raise UserError(
            f"{version.ref} was tuned on chat-format prompts: rendering them needs the base "
            "model's tokenizer, which --vertex does not fetch; send the rendered prompt with --raw"
        )
    return version, [build_prompt(version, c) for c in conversations]


def predict_on_vertex(
    registry_dir: Path,
    model_ref: str,
    conversations: list[Conversation],
    options: GenerationOptions,
    with_adapter: bool = True,
) -> tuple[RegisteredVersion, list[str]]:
    """Answer ``conversations`` on the version's vLLM endpoint (``with_adapter`` False: base).

    Raises:
        UserError: If the version has no vLLM deploy recorded, its prompts cannot be rendered
            here, or the endpoint refuses the request.
    """
    version, prompts = vertex_prompts(registry_dir, model_ref, conversations)
    record = read_serving_record(registry_dir, version.model, version.version)
    return version, predict_with_vllm(record, prompts, options, with_adapter)
