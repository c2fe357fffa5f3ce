"""Applying an adapter method to a base model, saving the result, and loading it back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from adaptune.compute.precision import trainable_to
from adaptune.errors import UserError
from adaptune.tuning.methods import AdapterMethod, LastLayersMethod, method_from_dict

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def apply_method(model: PreTrainedModel, method: AdapterMethod, family: str) -> torch.nn.Module:
    """Make only the method's parameters trainable: wrap with PEFT, or unfreeze the last blocks.

    The trainable weights are held in fp32 whatever dtype the base model is held in (so are
    the optimizer's moments, which take their dtype); the frozen ones keep the base's dtype.
    A quantised base (``adapter.quantize``) first goes through PEFT's
    ``prepare_model_for_kbit_training`` (its few unquantised weights, the norms, in fp32;
    checkpointing is left to ``training.gradient_checkpointing``), but the frozen input and
    output embeddings stay in the dtype they were loaded in: PEFT would hold them in fp32, which
    for a 128k vocabulary and a width of 4,096 is 4.2 GB instead of 2.1, more than the 4-bit
    blocks of a 1B model weigh.

    Raises:
        UserError: If the method's settings do not fit the model (e.g. unknown module names).
    """
    if isinstance(method, LastLayersMethod):
        prefixes = method.trainable_prefixes(model)
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(tuple(prefixes))
    else:
        if method.quantize != "none":
            embeddings = _embedding_dtypes(model)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            for param, dtype in embeddings:  # frozen: back in the compute dtype
                param.data = param.data.to(dtype)
            _keep_trainable_layout(model)
        try:
            model = get_peft_model(model, method.peft_config(family))
        except (ValueError, TypeError) as exc:
            raise UserError(
                f"adapter settings {method.to_dict()} do not fit the model: {exc}"
            ) from exc
    trainable_to(model)
    return model


def _embedding_dtypes(model: torch.nn.Module) -> list[tuple[torch.nn.Parameter, torch.dtype]]:
    """The input and output embedding weights (once each, tied or not) with their dtypes."""
    found: dict[int, tuple[torch.nn.Parameter, torch.dtype]] = {}
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter, lambda: None)()
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.nn.Parameter) and weight.is_floating_point():
            found[id(weight)] = (weight, weight.dtype)
    return list(found.values())


def _keep_trainable_layout(model: torch.nn.Module) -> None:
    """Keep bitsandbytes' 4-bit layers in the layout its backward runs through.

    On a CPU with AVX-512 BF16, bitsandbytes 0.50 repacks a 4-bit layer's weights for its
    inference kernel at the first eval-mode forward without gradients (an eval loss, a probe)
    and keeps them so; that kernel has no backward, so gradients would stop flowing through
    the base in the training steps after it. A model being tuned never repacks.
    """
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False


def save_adapter(
    model: torch.nn.Module, method: AdapterMethod, base_model: str, directory: Path
) -> None:
    """Save the adapter: PEFT format, or the trained blocks plus an ``adapter_config.json``."""
    if isinstance(model, PeftModel):
        model.save_pretrained(directory, safe_serialization=True)
        _canonicalise_config(directory / CONFIG_FILE)
        return
    tensors = {
        n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }
    save_file(tensors, directory / WEIGHTS_FILE)
    config = {
        "adaptune_method": method.to_dict(),
        "base_model_name_or_path": base_model,
        "peft_type": None,
    }
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")


def _canonicalise_config(path: Path) -> None:
    """Rewrite PEFT's config with sorted keys and module lists.

    PEFT writes module names expanded from ``all-linear`` in set order, which changes from
    process to process; sorting makes the same adapter the same bytes.
    """
    config = json.loads(path.read_text(encoding="utf-8"))
    for key, value in config.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            config[key] = sorted(value)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """The ``adapter_config.json`` of a saved adapter (PEFT's, or adaptune's for last layers).

    Raises:
        UserError: If the directory holds no adapter.
    """
    config_file = Path(adapter_dir) / CONFIG_FILE
    if not config_file.is_file():
        raise UserError(f"{adapter_dir} holds no adapter ({CONFIG_FILE} missing)")
    return json.loads(config_file.read_text(encoding="utf-8"))


def is_peft_adapter(config: dict[str, Any]) -> bool:
    """Whether an adapter config (see :func:`read_adapter_config`) is PEFT's, not last layers."""
    return "adaptune_method" not in config


def adapter_kind(adapter_dir: Path) -> str:
    """The saved adapter's kind: its PEFT type (``LORA``, ``IA3``, ...) or ``last_layers``.

    Adapters of one PEFT type can share one ``PeftModel`` (PEFT refuses to mix types);
    ``last_layers`` overwrites base weights, so it needs a base model of its own.

    Raises:
        UserError: If the directory holds no adapter.
    """
    config = read_adapter_config(adapter_dir)
    if not is_peft_adapter(config):
        return LastLayersMethod.method
    return str(config.get("peft_type"))


def load_tuned_model(
    base: PreTrainedModel, adapter_dir: Path, adapter_name: str = "default"
) -> torch.nn.Module:
    """Load a saved adapter onto ``base`` (PEFT adapters with ``PeftModel.from_pretrained``).

    Args:
        base: The base model; ``last_layers`` tensors are copied into it in place.
        adapter_dir: The saved adapter.
        adapter_name: Name of a PEFT adapter inside the returned ``PeftModel`` (more adapters
            can be added to it with ``load_adapter``).

    Raises:
        UserError: If the directory holds no adapter or its tensors do not fit the base model.
    """
    config = read_adapter_config(adapter_dir)
    if is_peft_adapter(config):
        return PeftModel.from_pretrained(base, str(adapter_dir), adapter_name=adapter_name)
    method_from_dict(config["adaptune_method"])
    tensors = load_file(Path(adapter_dir) / WEIGHTS_FILE)
    own = dict(base.named_parameters())
    unknown = sorted(set(tensors) - set(own))
    if unknown:
        raise UserError(f"{adapter_dir}: tensors not in the base model: {unknown[:5]}")
    with torch.no_grad():
        for name, tensor in tensors.items():
            own[name].copy_(tensor)
    return base


def export_merged(base: PreTrainedModel, adapter_dir: Path, out_dir: Path) -> None:
    """Write base + adapter as one plain Hugging Face checkpoint (no PEFT needed to load it).

    Raises:
        UserError: If the adapter cannot be merged (prompt tuning adds inputs, not weights).
    """
    model = load_tuned_model(base, adapter_dir)
    if isinstance(model, PeftModel):
        if model.peft_config[model.active_adapter].is_prompt_learning:
            raise UserError("prompt tuning adds virtual tokens, not weights: it cannot be merged")
        model = model.merge_and_unload()
    model.save_pretrained(out_dir, safe_serialization=True)
