"""Built-in tiny base models that need no download.

``builtin:tiny-gpt2`` (a causal LM) and ``builtin:tiny-t5`` (a seq2seq LM) are built from a
config and a seed: the same name always gives the same weights and the same tokenizer. Their
weights are random, so the base model knows nothing and an adapter has everything to learn;
that makes them a fast, honest check that tuning works end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from adaptune.base_models.builtin_tokenizer import (  # noqa: F401 - re-exported
    BOS,
    BUILTIN_PREFIX,
    EOS,
    PAD,
    VOCAB_SIZE,
    train_builtin_tokenizer,
)

SEED = 1234
# Wider than GPT-2's 0.02: the output head is tied to the frozen embeddings, and with 0.02 the
# logits cannot separate tokens enough for an adapter to reach a low loss.
INIT_RANGE = 0.1


@dataclass(frozen=True)
class BuiltinSpec:
    """How one built-in model is made.

    Attributes:
        name: Name after ``builtin:``.
        family: ``causal`` or ``seq2seq``.
        width: Hidden size.
        layers: Number of layers (per stack for seq2seq).
        heads: Attention heads.
    """

    name: str
    family: str
    width: int
    layers: int
    heads: int


BUILTIN_MODELS: dict[str, BuiltinSpec] = {
    "tiny-gpt2": BuiltinSpec("tiny-gpt2", "causal", width=128, layers=2, heads=4),
    "tiny-t5": BuiltinSpec("tiny-t5", "seq2seq", width=128, layers=2, heads=4),
}


def is_builtin(name: str) -> bool:
    """Whether ``name`` names a built-in model (``builtin:...``)."""
    return name.startswith(BUILTIN_PREFIX)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Train the built-in byte-level BPE tokenizer on the packaged corpus.

    Byte-level BPE encodes any text without an unknown token; training on a fixed corpus with a
    fixed vocabulary size gives the same merges every time.

    Returns:
        A fast tokenizer with pad, eos and bos tokens.
    """
    tokenizer = train_builtin_tokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, bos_token=BOS
    )


def build_model(name: str | BuiltinSpec, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """Build the built-in model ``name`` with seeded random weights.

    Args:
        name: A key of ``BUILTIN_MODELS`` (without the ``builtin:`` prefix), or a spec of
            another size (benchmarks build bigger models this way).
        tokenizer: The built-in tokenizer, which fixes the vocabulary and special ids.

    Returns:
        The model in eval mode.

    Raises:
        ValueError: If ``name`` is not a built-in model.
    """
    if isinstance(name, BuiltinSpec):
        spec = name
    elif name in BUILTIN_MODELS:
        spec = BUILTIN_MODELS[name]
    else:
        known = ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_MODELS)
        raise ValueError(f"unknown built-in model {BUILTIN_PREFIX}{name!r}; choose one of {known}")
    vocab = len(tokenizer)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(SEED)
    try:
        if spec.family == "causal":
            config = GPT2Config(
                vocab_size=vocab,
                n_positions=512,
                n_embd=spec.width,
                n_layer=spec.layers,
                n_head=spec.heads,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                initializer_range=INIT_RANGE,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
            )
            model: PreTrainedModel = GPT2LMHeadModel(config)
        else:
            config = T5Config(
                vocab_size=vocab,
                d_model=spec.width,
                d_kv=spec.width // spec.heads,
                d_ff=spec.width * 2,
                num_layers=spec.layers,
                num_decoder_layers=spec.layers,
                num_heads=spec.heads,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                decoder_start_token_id=tokenizer.pad_token_id,
                dropout_rate=0.0,
            )
            model = T5ForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.config.name_or_path = BUILTIN_PREFIX + spec.name
    return model.eval()
