"""Load only a base model's tokenizer (no weights): enough to count tokens and check examples.

:func:`load_fast_tokenizer` returns the Rust ``tokenizers.Tokenizer`` without importing torch or
transformers (data validation needs nothing more); :func:`load_tokenizer` returns the Hugging
Face tokenizer the tuning code uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from adaptune.base_models.builtin_tokenizer import (
    BUILTIN_NAMES,
    BUILTIN_PREFIX,
    train_builtin_tokenizer,
)
from adaptune.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def checkpoint_dir(name: str) -> Path | None:
    """The directory of a checkpoint name, None for a built-in name.

    Raises:
        UserError: If the name is an unknown built-in model or not a local directory.
    """
    if name.startswith(BUILTIN_PREFIX):
        if name.removeprefix(BUILTIN_PREFIX) not in BUILTIN_NAMES:
            known = ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_NAMES)
            raise UserError(f"unknown built-in model {name!r}; choose one of {known}")
        return None
    if name.startswith("gs://"):
        from adaptune.base_models.remote import fetch_checkpoint

        return fetch_checkpoint(name)
    path = Path(name)
    if not path.is_dir():
        raise UserError(
            f"base model {name!r} is neither a built-in model (builtin:tiny-gpt2, builtin:tiny-t5) "
            "nor a local checkpoint directory"
        )
    return path


def load_fast_tokenizer(name: str) -> Tokenizer:
    """The Rust tokenizer of base model ``name`` (``builtin:<model>`` or a checkpoint directory).

    A checkpoint's ``tokenizer.json`` is read directly; without one, the Hugging Face tokenizer
    is loaded and must be a fast one.

    Raises:
        UserError: If there is no such model or it has no fast tokenizer.
    """
    path = checkpoint_dir(name)
    if path is None:
        return train_builtin_tokenizer()
    if (path / "tokenizer.json").is_file():
        try:
            return Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # the Rust library raises plain Exception on a bad file
            raise UserError(f"base model {name!r}: cannot read tokenizer.json ({exc})") from None
    tokenizer = load_tokenizer(name)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"base model {name!r} has no fast tokenizer (tokenizer.json)")
    return backend


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The Hugging Face tokenizer of base model ``name``, as the tuning code loads it.

    Raises:
        UserError: If there is no such model or its tokenizer cannot be loaded.
    """
    path = checkpoint_dir(name)
    if path is None:
        from adaptune.base_models.builtin import build_tokenizer

        return build_tokenizer()
    return tokenizer_from_dir(path, name)


def tokenizer_from_dir(path: Path, name: str) -> PreTrainedTokenizerBase:
    """The Hugging Face tokenizer of the checkpoint in ``path``, with a pad token set."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"base model {name!r}: cannot load its tokenizer ({exc})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_family(name: str) -> str:
    """``causal`` or ``seq2seq`` for base model ``name``, read from its config only."""
    path = checkpoint_dir(name)
    if path is None:
        from adaptune.base_models.builtin import BUILTIN_MODELS

        return BUILTIN_MODELS[name.removeprefix(BUILTIN_PREFIX)].family
    return family_from_dir(path, name)


def family_from_dir(path: Path, name: str) -> str:
    """``causal`` or ``seq2seq`` for the checkpoint in ``path`` (from its config)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"base model {name!r}: cannot read its config ({exc})") from None
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
