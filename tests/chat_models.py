"""Tiny random instruct checkpoints in the style of five chat-model families, built offline.

Each style copies what matters for chat-template bugs from its family: the tokenizer's model
type and pre-tokenizer, the special tokens and their ids' layout, how BOS is added, which token
pads, the family's own chat template (quirks included) and the EOS ids its
``generation_config.json`` lists. The weights are random and tiny (2 layers, hidden size 64).

============  ==================  ==========  ============================  ====================
style         architecture        tokenizer   BOS                           pad
============  ==================  ==========  ============================  ====================
``llama3``    LlamaForCausalLM    byte BPE    post-processor and template   ``<|eot_id|>`` = eos
``chatml``    Qwen2ForCausalLM    byte BPE    none (no BOS token)           ``<|endoftext|>``
``gemma``     Gemma2ForCausalLM   SP Unigram  post-processor and template   ``<pad>``
``phi3``      Phi3ForCausalLM     SP BPE      defined, never added          ``<|endoftext|>`` = eos
``mistral``   MistralForCausalLM  SP BPE      post-processor and template   unset (None)
============  ==================  ==========  ============================  ====================

"SP" is SentencePiece style: a ``Metaspace`` pre-tokenizer (``▁``) and byte fallback
(``<0x00>``..``<0xFF>``), so any text encodes. The awkward real cases are kept on purpose:

* llama3, gemma and mistral templates emit the BOS text themselves *and* their tokenizers add
  BOS, so tokenizing a rendered conversation with special tokens gives a double BOS.
* llama3 pads with its eos (``<|eot_id|>``), which ends every assistant turn; phi3 pads with
  its eos ``<|endoftext|>``, which its template appends after the last turn when no
  generation prompt is asked for, while its turns end with ``<|end|>``.
* mistral has no pad token at all, phi3 pads on the left, and the model configs of llama3 and
  mistral carry no ``pad_token_id``.
* llama3 and gemma templates ``trim`` message content; chatml adds a default system message
  when there is none; gemma raises on a system message; mistral folds the system message
  into the first user turn and ignores ``add_generation_prompt``.
* mistral's Metaspace prepends ``▁`` to every chunk between special tokens (the "legacy"
  SentencePiece behaviour: ``[INST]hi`` and ``[INST] hi`` encode alike), gemma and phi3 only
  to the start of the text.

* transformers 5 does not save ``add_bos_token``: ``tokenizer.add_bos_token`` reads False on
  every style, and only the post-processor in ``tokenizer.json`` says whether BOS is added
  (encode a text to find out).

The chat special tokens are special added tokens (one id each, dropped by
``skip_special_tokens``) and are listed in ``all_special_tokens``. The tokenizers are trained
in code on :func:`corpus` and are the same on every call; only the weights depend on the seed.

``AutoTokenizer`` loads chatml with ``Qwen2Tokenizer`` (transformers forces it for ``qwen2``
checkpoints), which rebuilds the backend; the chatml tokenizer is therefore built with the same
normalizer and pre-tokenizer so that the loaded one encodes exactly as the saved one. The other
styles load as ``TokenizersBackend`` (``PreTrainedTokenizerFast``) from ``tokenizer.json``.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

STYLES = ("llama3", "chatml", "gemma", "phi3", "mistral")

# Every printable ASCII character is a piece of its own in the SentencePiece-style vocabularies
# (other characters, and whitespace other than the space, take the byte fallback).
ASCII_ALPHABET = [chr(c) for c in range(33, 127)]
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
# Qwen2's split regex (what ``Qwen2Tokenizer`` rebuilds the chatml backend with).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
MAX_POSITIONS = 2048
WIDTH, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128
INIT_RANGE = 0.1  # as the built-in models: wide enough for an adapter to learn on frozen weights

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_message = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system_message = none %}{% set loop_messages = messages %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.first and system_message is not none %}"
    "{{ '[INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class StyleSpec:
    """How one style's tokenizer, model and generation config are made.

    Attributes:
        style: One of ``STYLES``.
        architecture: The ``transformers`` model class name.
        tokenizer_model: ``BPE`` or ``Unigram`` (the ``tokenizers`` model type).
        pre_tokenizer: ``ByteLevel`` (GPT-2 style bytes) or ``Metaspace`` (SentencePiece style).
        prepend_scheme: Metaspace's ``first`` / ``always``; None for byte level.
        front_tokens: Special tokens at the start of the base vocabulary, ids 0, 1, ...
            (SentencePiece layout; the 256 byte tokens follow them).
        added_tokens: Special tokens appended after the base vocabulary, in id order.
        bos_token: The tokenizer's BOS, or None (no BOS token at all).
        adds_bos: Whether the tokenizer's post-processor adds BOS to every encoding.
        eos_token: The tokenizer's EOS.
        pad_token: The tokenizer's pad token, or None (unset, as in the real checkpoint).
        unk_token: The tokenizer's unknown token, or None.
        padding_side: ``right`` or ``left``.
        generation_eos: Tokens whose ids ``generation_config.json`` lists as EOS, in order (one
            is written as an int, as mistral's real file has it).
        config_eos: Tokens whose ids the model config lists as ``eos_token_id`` (one is an int).
        config_pad: Whether the model config has ``pad_token_id`` (the tokenizer's pad).
        chat_template: The Jinja chat template saved with the tokenizer.
    """

    style: str
    architecture: str
    tokenizer_model: str
    pre_tokenizer: str
    prepend_scheme: str | None
    front_tokens: tuple[str, ...]
    added_tokens: tuple[str, ...]
    bos_token: str | None
    adds_bos: bool
    eos_token: str
    pad_token: str | None
    unk_token: str | None
    padding_side: str
    generation_eos: tuple[str, ...]
    config_eos: tuple[str, ...]
    config_pad: bool
    chat_template: str


SPECS: dict[str, StyleSpec] = {
    "llama3": StyleSpec(
        style="llama3",
        architecture="LlamaForCausalLM",
        tokenizer_model="BPE",
        pre_tokenizer="ByteLevel",
        prepend_scheme=None,
        front_tokens=(),
        added_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ),
        bos_token="<|begin_of_text|>",
        adds_bos=True,
        eos_token="<|eot_id|>",
        pad_token="<|eot_id|>",
        unk_token=None,
        padding_side="right",
        generation_eos=("<|end_of_text|>", "<|eot_id|>"),
        config_eos=("<|end_of_text|>", "<|eot_id|>"),
        config_pad=False,
        chat_template=LLAMA3_TEMPLATE,
    ),
    "chatml": StyleSpec(
        style="chatml",
        architecture="Qwen2ForCausalLM",
        tokenizer_model="BPE",
        pre_tokenizer="ByteLevel",
        prepend_scheme=None,
        front_tokens=(),
        added_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        bos_token=None,
        adds_bos=False,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        padding_side="right",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
        config_eos=("<|im_end|>",),
        config_pad=True,
        chat_template=CHATML_TEMPLATE,
    ),
    "gemma": StyleSpec(
        style="gemma",
        architecture="Gemma2ForCausalLM",
        tokenizer_model="Unigram",
        pre_tokenizer="Metaspace",
        prepend_scheme="first",
        front_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        added_tokens=(),
        bos_token="<bos>",
        adds_bos=True,
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
        generation_eos=("<eos>", "<end_of_turn>"),
        config_eos=("<eos>",),
        config_pad=True,
        chat_template=GEMMA_TEMPLATE,
    ),
    "phi3": StyleSpec(
        style="phi3",
        architecture="Phi3ForCausalLM",
        tokenizer_model="BPE",
        pre_tokenizer="Metaspace",
        prepend_scheme="first",
        front_tokens=("<unk>", "<s>", "</s>"),
        added_tokens=("<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"),
        bos_token="<s>",
        adds_bos=False,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        padding_side="left",
        generation_eos=("<|end|>", "<|endoftext|>"),
        config_eos=("<|endoftext|>",),
        config_pad=True,
        chat_template=PHI3_TEMPLATE,
    ),
    "mistral": StyleSpec(
        style="mistral",
        architecture="MistralForCausalLM",
        tokenizer_model="BPE",
        pre_tokenizer="Metaspace",
        prepend_scheme="always",
        front_tokens=("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
        added_tokens=(),
        bos_token="<s>",
        adds_bos=True,
        eos_token="</s>",
        pad_token=None,
        unk_token="<unk>",
        padding_side="right",
        generation_eos=("</s>",),
        config_eos=("</s>",),
        config_pad=False,
        chat_template=MISTRAL_TEMPLATE,
    ),
}


def _spec(style: str) -> StyleSpec:
    if style not in SPECS:
        raise ValueError(f"unknown chat style {style!r}; choose one of {', '.join(STYLES)}")
    return SPECS[style]


_GREETINGS = ("Hi", "Hello", "Hey team", "Good morning", "Hi there", "Dear support")
_ISSUES = (
    "my {p} stopped working after the last update",
    "the {p} is very slow and pages time out",
    "I was charged twice for the {p} on order {o}",
    "why did the price of my {p} go up without notice",
    "can you change the delivery address for order {o}",
    "my {p} has not arrived and tracking shows no movement",
    "can we get a demo of the {p} for our team next week",
    "I cannot log in to my account since yesterday",
    "please cancel my subscription and refund the {p}",
    "the invoice for order {o} lists the wrong {p}",
    "can I talk to someone about upgrading to the {p}",
    "the {p} shows error code {n} when I open it",
)
_PRODUCTS = (
    "desk lamp",
    "mobile app",
    "backpack",
    "gift card",
    "wireless headphones",
    "coffee maker",
    "premium plan",
    "standing desk",
    "laptop stand",
    "water bottle",
)
_CLOSINGS = ("Thank you!", "Thanks.", "Cheers.", "Any advice?", "Please help.", "Regards, Sam")
_TEAMS = ("technical", "billing", "shipping", "sales", "account")
_ANSWERS = (
    "Team: {t}",
    "This goes to the {t} team.",
    "Routing to {t}. A specialist will reply within one business day.",
    "I am sorry for the trouble. The {t} team will contact you about order {o}.",
    "Thanks for reaching out! Our {t} team can help with the {p}.",
)
_SYSTEM = (
    "You are a helpful assistant.",
    "You route customer support tickets to one team.",
    "Answer with the name of one team: technical, billing, shipping, sales or account.",
    "You are a friendly support agent. Keep answers short and polite.",
)


@cache
def corpus() -> tuple[str, ...]:
    """A few hundred lines of customer-support text (fixed: the same lines on every call)."""
    rng = random.Random(0)
    lines: list[str] = list(_SYSTEM)
    for issue, product in itertools.product(_ISSUES, _PRODUCTS):
        order = f"{rng.choice('ABCDK')}-{rng.randint(1000, 9999)}"
        text = issue.format(p=product, o=order, n=rng.randint(100, 999))
        lines.append(f"{rng.choice(_GREETINGS)}, {text}. {rng.choice(_CLOSINGS)}")
        answer = rng.choice(_ANSWERS).format(t=rng.choice(_TEAMS), o=order, p=product)
        lines.append(answer)
    lines += [f"Team: {t}" for t in _TEAMS] + [f"Team:{t}" for t in _TEAMS]
    lines += ["system user assistant model", "The user asks and the assistant answers."]
    return tuple(lines)


def _byte_level_backend(spec: StyleSpec) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    if spec.style == "chatml":  # what Qwen2Tokenizer rebuilds on load
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:  # GPT-2 style: the ByteLevel pre-tokenizer's own regex
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=640,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return tokenizer


def _sentencepiece_backend(spec: StyleSpec) -> Tokenizer:
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=spec.prepend_scheme)
    front = list(spec.front_tokens)
    if spec.tokenizer_model == "Unigram":
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = metaspace
        trainer = trainers.UnigramTrainer(
            vocab_size=400,
            special_tokens=front,
            unk_token=spec.unk_token,
            initial_alphabet=ASCII_ALPHABET,
            show_progress=False,
        )
        tokenizer.train_from_iterator(corpus(), trainer=trainer)
        trained = json.loads(tokenizer.to_str())["model"]["vocab"]
        pieces = [(p, s) for p, s in trained if p not in spec.front_tokens]
        vocab = [(t, 0.0) for t in front + list(BYTE_TOKENS)] + pieces
        model = models.Unigram(vocab, unk_id=front.index(spec.unk_token), byte_fallback=True)
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=spec.unk_token))
        tokenizer.pre_tokenizer = metaspace
        trainer = trainers.BpeTrainer(
            vocab_size=480,
            special_tokens=front,
            initial_alphabet=ASCII_ALPHABET,
            show_progress=False,
        )
        tokenizer.train_from_iterator(corpus(), trainer=trainer)
        trained = json.loads(tokenizer.to_str())["model"]
        ordered = front + list(BYTE_TOKENS)
        ordered += sorted(
            (t for t in trained["vocab"] if t not in spec.front_tokens),
            key=trained["vocab"].__getitem__,
        )
        merges = [
            tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]
        ]
        model = models.BPE(
            {t: i for i, t in enumerate(ordered)},
            merges,
            unk_token=spec.unk_token,
            fuse_unk=True,
            byte_fallback=True,
        )
    backend = Tokenizer(model)
    backend.pre_tokenizer = metaspace
    # SentencePiece's own decoder chain (as Llama 2 / Mistral checkpoints have it): the
    # Metaspace decoder would drop the spaces once Fuse has joined the pieces.
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return backend


@cache
def _backend_json(style: str) -> str:
    """The trained backend tokenizer of ``style``, with its special tokens, as JSON."""
    spec = _spec(style)
    if spec.pre_tokenizer == "ByteLevel":
        backend = _byte_level_backend(spec)
    else:
        backend = _sentencepiece_backend(spec)
    backend.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t in spec.front_tokens + spec.added_tokens
        ]
    )
    if spec.adds_bos:
        bos_id = backend.token_to_id(spec.bos_token)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos_token}:0 $A:0",
            pair=f"{spec.bos_token}:0 $A:0 {spec.bos_token}:1 $B:1",
            special_tokens=[(spec.bos_token, bos_id)],
        )
    return backend.to_str()


def build_chat_tokenizer(style: str) -> PreTrainedTokenizerFast:
    """The tokenizer of ``style``, with its special tokens and chat template (not saved).

    Args:
        style: One of ``STYLES``.

    Returns:
        A fast tokenizer; ``save_pretrained`` it and ``AutoTokenizer`` loads it back.
    """
    spec = _spec(style)
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_backend_json(style)),
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        unk_token=spec.unk_token,
        padding_side=spec.padding_side,
        clean_up_tokenization_spaces=False,
        extra_special_tokens=[
            t
            for t in spec.front_tokens + spec.added_tokens
            if t not in (spec.bos_token, spec.eos_token, spec.pad_token, spec.unk_token)
        ],
        model_max_length=MAX_POSITIONS,
        chat_template=spec.chat_template,
    )


def _model(spec: StyleSpec, vocab: int, ids: dict[str, int | list[int] | None]):
    common = dict(
        vocab_size=vocab,
        hidden_size=WIDTH,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=INIT_RANGE,
        dtype="float32",
        **ids,
    )
    if spec.style == "llama3":
        return LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
    if spec.style == "chatml":
        return Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True))
    if spec.style == "gemma":
        head_dim = WIDTH // HEADS
        config = Gemma2Config(
            **common,
            head_dim=head_dim,
            query_pre_attn_scalar=head_dim,
            sliding_window=MAX_POSITIONS,
        )
        return Gemma2ForCausalLM(config)
    if spec.style == "phi3":
        config = Phi3Config(**common, original_max_position_embeddings=MAX_POSITIONS)
        return Phi3ForCausalLM(config)
    return MistralForCausalLM(MistralConfig(**common, sliding_window=None))


def build_chat_checkpoint(style: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random instruct checkpoint of ``style`` to ``out_dir``.

    The directory loads with ``AutoTokenizer.from_pretrained`` and
    ``AutoModelForCausalLM.from_pretrained`` (fp32 safetensors, a ``generation_config.json``
    with the family's EOS ids, the chat template saved with the tokenizer). The tokenizer is
    the same for every seed; the seed only fixes the weights. The global torch RNG is left as
    it was.

    Args:
        style: One of ``STYLES``.
        out_dir: A new or empty directory (created if missing).
        seed: Seed for the random weights.

    Returns:
        ``out_dir``.
    """
    spec = _spec(style)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_chat_tokenizer(style)
    tokenizer.save_pretrained(out_dir)

    def token_id(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    eos = [token_id(t) for t in spec.config_eos]
    ids = {
        "bos_token_id": token_id(spec.bos_token) if spec.bos_token else None,
        "eos_token_id": eos[0] if len(eos) == 1 else eos,
        "pad_token_id": tokenizer.pad_token_id if spec.config_pad else None,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model(spec, len(tokenizer), ids)
    generation_eos = [token_id(t) for t in spec.generation_eos]
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos_token_id"],
        eos_token_id=generation_eos[0] if len(generation_eos) == 1 else generation_eos,
        pad_token_id=ids["pad_token_id"],
    )
    model.save_pretrained(out_dir)
    return out_dir
