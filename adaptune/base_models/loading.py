"""Load a base model by name: a built-in tiny model or a Hugging Face checkpoint directory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.auto_factory import _get_model_class

from adaptune.base_models import builtin
from adaptune.base_models.attention import FLASH, resolve_attention, supports_flash
from adaptune.base_models.quantization import check_quantize, compute_dtype, quantization_config
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
    attention: str = "auto",
    attention_setting: str = "training.attention",
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
        device: Where the model will run (None: CPU). A quantised model is loaded there
            (quantised weights are made there); an unquantised one loads on CPU and the caller
            moves it. The attention implementation is chosen for it.
        attention: ``auto``, ``sdpa``, ``eager`` or ``flash_attention_2``, passed to
            transformers as ``attn_implementation`` once resolved (see
            :mod:`adaptune.base_models.attention`); the model's ``config._attn_implementation``.
        attention_setting: How the user sets ``attention``, for messages.

    Returns:
        The loaded model and tokenizer.

    Raises:
        UserError: If the name is neither a built-in model nor a readable checkpoint directory,
            or ``attention`` cannot run here (see ``resolve_attention``).
    """
    check_quantize(quantize, name)
    device = device or torch.device("cpu")
    path = checkpoint_dir(name)
    if path is None:
        key = name.removeprefix(builtin.BUILTIN_PREFIX)
        tokenizer = builtin.build_tokenizer()
        model = builtin.build_model(key, tokenizer)
        held = dtype or torch.float32
        implementation = resolve_attention(
            attention, device, held, attention_setting, supports_flash(type(model))
        )
        if dtype is not None:
            model = model.to(dtype)
        if _asked(attention, implementation):
            model.set_attn_implementation(implementation)
        family: Family = builtin.BUILTIN_MODELS[key].family  # type: ignore[assignment]
        return BaseModel(name=name, model=model, tokenizer=tokenizer, family=family)
    if not (path / "config.json").is_file():
        raise UserError(
            f"base model {name!r} is neither a built-in model (builtin:tiny-gpt2, builtin:tiny-t5) "
            "nor a directory holding a Hugging Face checkpoint (config.json not found)"
        )
    family = family_from_dir(path, name)  # type: ignore[assignment]
    auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    quantized = quantization_config(quantize, dtype or torch.bfloat16)
    held = dtype or _file_dtype(config)
    if quantized is not None:
        held = compute_dtype(dtype or torch.bfloat16)
    implementation = resolve_attention(
        attention,
        device,
        held,
        attention_setting,
        supports_flash(_get_model_class(config, auto._model_mapping)),
    )
    placement = {} if quantized is None else {"device_map": {"": str(device)}}
    model = auto.from_pretrained(
        path,
        local_files_only=True,
        dtype=dtype or "auto",
        quantization_config=quantized,
        attn_implementation=implementation if _asked(attention, implementation) else None,
        **placement,
    )
    tokenizer = tokenizer_from_dir(path, name)
    return BaseModel(name=name, model=model.eval(), tokenizer=tokenizer, family=family)


def _asked(attention: str, implementation: str) -> bool:
    """Whether to pass ``implementation`` on; ``auto`` meaning sdpa is left to transformers.

    Transformers' own default is sdpa where the architecture has it, else eager: passing sdpa
    explicitly would refuse an architecture without it.
    """
    return attention != "auto" or implementation == FLASH


def _file_dtype(config: object) -> torch.dtype:
    """The dtype a checkpoint's config says its weights are saved in (fp32 when it says none)."""
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(saved, str):
        saved = getattr(torch, saved, None)
    return saved if isinstance(saved, torch.dtype) else torch.float32
