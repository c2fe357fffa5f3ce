"""Load a base model by name: a built-in tiny model or a Hugging Face checkpoint directory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from adaptune.base_models import builtin
from adaptune.base_models.quantization import check_quantize, quantization_config
from adaptune.base_models.tokenizer import checkpoint_dir, family_from_dir, tokenizer_from_dir
from adaptune.errors import UserError

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


def load_base_model(
    name: str,
    dtype: torch.dtype | None = None,
    quantize: str = "none",
    device: torch.device | None = None,
) -> BaseModel:
    """Load ``name``: ``builtin:<model>`` or a local directory holding a Hugging Face checkpoint.

    Checkpoint directories are loaded with the Auto classes: an encoder-decoder config gives a
    seq2seq model, anything else a causal LM. Nothing is downloaded.

    Args:
        name: ``builtin:tiny-gpt2``, ``builtin:tiny-t5``, or a checkpoint directory (local or ``gs://``).
        dtype: The dtype the weights are held in, converted while loading (no copy in the
            files' dtype is kept); None: the dtype the files hold (built-in models: fp32).
        quantize: ``none``, or ``4bit``/``8bit``: the linear layers quantised while loading
            through bitsandbytes (see :mod:`adaptune.base_models.quantization`; checkpoint
            directories only, checked by ``check_quantize`` first), placed on ``device``.
        device: Where a quantised model is loaded (quantised weights are made there); an
            unquantised one loads on CPU (None: CPU).

    Returns:
        The loaded model and tokenizer.

    Raises:
        UserError: If the name is neither a built-in model nor a readable checkpoint directory.
    """
    check_quantize(quantize, name)
    path = checkpoint_dir(name)
    if path is None:
        key = name.removeprefix(builtin.BUILTIN_PREFIX)
        tokenizer = builtin.build_tokenizer()
        model = builtin.build_model(key, tokenizer)
        if dtype is not None:
            model = model.to(dtype)
        family: Family = builtin.BUILTIN_MODELS[key].family  # type: ignore[assignment]
        return BaseModel(name=name, model=model, tokenizer=tokenizer, family=family)
    if not (path / "config.json").is_file():
        raise UserError(
            f"base model {name!r} is neither a built-in model (builtin:tiny-gpt2, builtin:tiny-t5) "
            "nor a directory holding a Hugging Face checkpoint (config.json not found)"
        )
    family = family_from_dir(path, name)  # type: ignore[assignment]
    auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
    quantized = quantization_config(quantize, dtype or torch.bfloat16)
    if quantized is None:
        model = auto.from_pretrained(path, local_files_only=True, dtype=dtype or "auto")
    else:
        model = auto.from_pretrained(
            path,
            local_files_only=True,
            dtype=dtype or "auto",
            quantization_config=quantized,
            device_map={"": str(device or torch.device("cpu"))},
        )
    tokenizer = tokenizer_from_dir(path, name)
    return BaseModel(name=name, model=model.eval(), tokenizer=tokenizer, family=family)
