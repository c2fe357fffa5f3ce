"""The built-in models' tokenizer, trained in code, without importing torch or transformers.

Counting tokens (data validation) needs only this;
:func:`adaptune.base_models.builtin.build_tokenizer`
wraps it for the models.
"""

from __future__ import annotations

from importlib import resources

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BUILTIN_PREFIX = "builtin:"
BUILTIN_NAMES = ("tiny-gpt2", "tiny-t5")
PAD, EOS, BOS = "<|pad|>", "<|eos|>", "<|bos|>"
VOCAB_SIZE = 1024


def train_builtin_tokenizer() -> Tokenizer:
    """Train the built-in byte-level BPE tokenizer on the packaged corpus.

    Byte-level BPE encodes any text without an unknown token; training on a fixed corpus with a
    fixed vocabulary size gives the same merges every time.

    Returns:
        A ``tokenizers.Tokenizer`` with pad, eos and bos as special tokens.
    """
    corpus = (
        resources.files("adaptune.base_models").joinpath("builtin_corpus.txt").read_text("utf-8")
    )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, EOS, BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus.splitlines(), trainer=trainer)
    return tokenizer
