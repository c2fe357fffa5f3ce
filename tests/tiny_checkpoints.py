"""Tiny random Llama-shaped checkpoints saved in bf16 with the built-in tokenizer, built offline."""

from __future__ import annotations

from pathlib import Path

import torch

from adaptune.base_models import builtin


def save_tiny_llama(
    directory: Path, hidden: int, intermediate: int, heads: int, kv_heads: int = 2
) -> Path:
    """Save a random 2-layer bf16 Llama of these sizes and the built-in tokenizer there."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = builtin.build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
