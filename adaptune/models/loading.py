"""Load a base model by name: a built-in tiny model or a Hugging Face checkpoint directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from adaptune.errors import UserError
from adaptune.models import builtin
from adaptune.models.remote import fetch_checkpoint

Family = Literal["causal", "seq2seq"]


@dataclass
class BaseModel:
    """A loaded base model with its tokenizer.

    Attributes:
        name: What the user asked for (``builtin:tiny-gpt2`` or a directory).
        model: The Hugging Face model, in eval mode.
        tokenizer: Its tokenizer, with a pad token set.
        family: ``causal`` (decoder-only) or ``seq2seq`` (encoder-decoder).
    """

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    family: Family


def load_base_model(name: str) -> BaseModel:
    """Load ``name``: ``builtin:<model>`` or a local directory holding a Hugging Face checkpoint.

    Checkpoint directories are loaded with the Auto classes: an encoder-decoder config gives a
    seq2seq model, anything else a causal LM. Nothing is downloaded.

    Args:
        name: ``builtin:tiny-gpt2``, ``builtin:tiny-t5``, or a checkpoint directory (local or ``gs://``).

    Returns:
        The loaded model and tokenizer.

    Raises:
        UserError: If the name is neither a built-in model nor a readable checkpoint directory.
    """
    if builtin.is_builtin(name):
        key = name.removeprefix(builtin.BUILTIN_PREFIX)
        if key not in builtin.BUILTIN_MODELS:
            known = ", ".join(builtin.BUILTIN_PREFIX + k for k in builtin.BUILTIN_MODELS)
            raise UserError(f"unknown built-in model {name!r}; choose one of {known}")
        tokenizer = builtin.build_tokenizer()
        model = builtin.build_model(key, tokenizer)
        family: Family = builtin.BUILTIN_MODELS[key].family  # type: ignore[assignment]
        return BaseModel(name=name, model=model, tokenizer=tokenizer, family=family)
    path = fetch_checkpoint(name) if name.startswith("gs://") else Path(name)
    if not (path / "config.json").is_file():
        raise UserError(
            f"base model {name!r} is neither a built-in model (builtin:tiny-gpt2, builtin:tiny-t5) "
            "nor a directory holding a Hugging Face checkpoint (config.json not found)"
        )
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    family = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
    model = auto.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return BaseModel(name=name, model=model.eval(), tokenizer=tokenizer, family=family)
