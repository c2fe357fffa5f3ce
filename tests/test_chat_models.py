"""The chat-model fixtures: load, render their templates, round-trip, generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from chat_models import SPECS, STYLES, build_chat_checkpoint, build_chat_tokenizer
from jinja2.exceptions import TemplateError
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

SYSTEM = {"role": "system", "content": "You route support tickets. Answer with one team name."}
CONVERSATION = [
    {"role": "user", "content": "My invoice for order B-2399 is wrong."},
    {"role": "assistant", "content": "Team: billing"},
    {"role": "user", "content": "The desk lamp is very slow and pages time out."},
]
SAMPLE = [SYSTEM, *CONVERSATION]

# apply_chat_template(SAMPLE, tokenize=False, add_generation_prompt=True); gemma without SYSTEM.
RENDERED = {
    "llama3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "You route support tickets. Answer with one team name.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "My invoice for order B-2399 is wrong.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nTeam: billing<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "The desk lamp is very slow and pages time out.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "chatml": (
        "<|im_start|>system\nYou route support tickets. Answer with one team name.<|im_end|>\n"
        "<|im_start|>user\nMy invoice for order B-2399 is wrong.<|im_end|>\n"
        "<|im_start|>assistant\nTeam: billing<|im_end|>\n"
        "<|im_start|>user\nThe desk lamp is very slow and pages time out.<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "gemma": (
        "<bos><start_of_turn>user\nMy invoice for order B-2399 is wrong.<end_of_turn>\n"
        "<start_of_turn>model\nTeam: billing<end_of_turn>\n"
        "<start_of_turn>user\nThe desk lamp is very slow and pages time out.<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "phi3": (
        "<|system|>\nYou route support tickets. Answer with one team name.<|end|>\n"
        "<|user|>\nMy invoice for order B-2399 is wrong.<|end|>\n"
        "<|assistant|>\nTeam: billing<|end|>\n"
        "<|user|>\nThe desk lamp is very slow and pages time out.<|end|>\n"
        "<|assistant|>\n"
    ),
    "mistral": (
        "<s>[INST] You route support tickets. Answer with one team name.\n\n"
        "My invoice for order B-2399 is wrong. [/INST] Team: billing</s>"
        "[INST] The desk lamp is very slow and pages time out. [/INST]"
    ),
}
# The end of the same conversation rendered without a generation prompt.
RENDERED_END = {
    "llama3": "pages time out.<|eot_id|>",
    "chatml": "pages time out.<|im_end|>\n",
    "gemma": "pages time out.<end_of_turn>\n",
    "phi3": "pages time out.<|end|>\n<|endoftext|>",  # the real phi3 template appends eos
    "mistral": "pages time out. [/INST]",
}
GENERATION_EOS = {
    "llama3": ["<|end_of_text|>", "<|eot_id|>"],
    "chatml": ["<|im_end|>", "<|endoftext|>"],
    "gemma": ["<eos>", "<end_of_turn>"],
    "phi3": ["<|end|>", "<|endoftext|>"],
    "mistral": ["</s>"],
}
SPECIAL_TOKENS = {
    "llama3": [
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|end_of_text|>",
    ],
    "chatml": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
    "gemma": ["<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>"],
    "phi3": ["<s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<|endoftext|>"],
    "mistral": ["<s>", "</s>", "[INST]", "[/INST]"],
}
# (bos, eos, pad) as the tokenizer reports them.
TOKENIZER_SPECIALS = {
    "llama3": ("<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"),
    "chatml": (None, "<|im_end|>", "<|endoftext|>"),
    "gemma": ("<bos>", "<eos>", "<pad>"),
    "phi3": ("<s>", "<|endoftext|>", "<|endoftext|>"),
    "mistral": ("<s>", "</s>", None),
}
BOS_ADDED = {"llama3": True, "chatml": False, "gemma": True, "phi3": False, "mistral": True}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chat_models")
    return {style: build_chat_checkpoint(style, root / style) for style in STYLES}


@pytest.fixture(scope="module")
def tokenizers(checkpoints: dict[str, Path]) -> dict:
    return {style: AutoTokenizer.from_pretrained(path) for style, path in checkpoints.items()}


def sample(style: str) -> list[dict]:
    return CONVERSATION if style == "gemma" else SAMPLE


def backend_json(tokenizer) -> dict:
    return json.loads(tokenizer.backend_tokenizer.to_str())


def pre_tokenizer_types(node: dict | None) -> set[str]:
    if not node:
        return set()
    found = {node["type"]}
    for child in node.get("pretokenizers", []):
        found |= pre_tokenizer_types(child)
    return found


def eos_list(value: int | list[int] | None) -> list[int]:
    return [] if value is None else [value] if isinstance(value, int) else list(value)


@pytest.mark.parametrize("style", STYLES)
def test_checkpoint_loads_with_auto_classes(style, checkpoints, tokenizers):
    path = checkpoints[style]
    assert (path / "model.safetensors").is_file()
    assert json.loads((path / "config.json").read_text())["dtype"] == "float32"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert type(model).__name__ == SPECS[style].architecture
    assert model.dtype == torch.float32
    assert model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tokenizers[style])
    tokenizer = tokenizers[style]
    assert tokenizer.is_fast
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == TOKENIZER_SPECIALS[
        style
    ]


@pytest.mark.parametrize("style", STYLES)
def test_chat_template_renders_the_family_format(style, tokenizers):
    tokenizer = tokenizers[style]
    rendered = tokenizer.apply_chat_template(
        sample(style), tokenize=False, add_generation_prompt=True
    )
    assert rendered == RENDERED[style]
    without_prompt = tokenizer.apply_chat_template(
        sample(style), tokenize=False, add_generation_prompt=False
    )
    assert without_prompt.endswith(RENDERED_END[style])


def test_gemma_template_rejects_a_system_message(tokenizers):
    with pytest.raises(TemplateError, match="System role not supported"):
        tokenizers["gemma"].apply_chat_template(SAMPLE, tokenize=False)


def test_chatml_template_adds_a_default_system_message(tokenizers):
    rendered = tokenizers["chatml"].apply_chat_template(CONVERSATION[:1], tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nMy invoice for order B-2399 is wrong.<|im_end|>\n"
    )


@pytest.mark.parametrize("style", STYLES)
def test_rendered_conversation_round_trips(style, tokenizers):
    tokenizer = tokenizers[style]
    answered = [*sample(style), {"role": "assistant", "content": "Team: technical"}]
    text = tokenizer.apply_chat_template(answered, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == text
    for token in SPECIAL_TOKENS[style]:
        assert len(tokenizer(token, add_special_tokens=False).input_ids) == 1, token
        assert token in tokenizer.all_special_tokens, token
    plain = tokenizer.decode(ids, skip_special_tokens=True)
    assert not any(token in plain for token in SPECIAL_TOKENS[style])
    assert "Team: billing" in plain and "Team: technical" in plain
    # The saved and reloaded tokenizer (Qwen2Tokenizer rebuilds chatml's) encodes as the built one.
    assert build_chat_tokenizer(style)(text, add_special_tokens=False).input_ids == ids
    assert tokenizer.tokenize("Team:technical")[-1] != tokenizer.tokenize("Team: technical")[-1]


@pytest.mark.parametrize("style", STYLES)
def test_bos_behaviour(style, tokenizers):
    tokenizer = tokenizers[style]
    ids = tokenizer("Hello there").input_ids
    if BOS_ADDED[style]:
        assert ids[0] == tokenizer.bos_token_id
        # The template writes the BOS text too: tokenizing with special tokens doubles it.
        doubled = tokenizer(RENDERED[style]).input_ids
        assert doubled[:2] == [tokenizer.bos_token_id] * 2
    else:
        assert ids == tokenizer("Hello there", add_special_tokens=False).input_ids
        assert tokenizer.bos_token_id is None or tokenizer.bos_token_id not in ids


@pytest.mark.parametrize("style", STYLES)
def test_generation_config_lists_the_family_eos_ids(style, checkpoints, tokenizers):
    generation = GenerationConfig.from_pretrained(checkpoints[style])
    expected = tokenizers[style].convert_tokens_to_ids(GENERATION_EOS[style])
    assert eos_list(generation.eos_token_id) == expected


@pytest.mark.parametrize("style", STYLES)
def test_generate_runs_on_cpu(style, checkpoints, tokenizers):
    tokenizer = tokenizers[style]
    model = AutoModelForCausalLM.from_pretrained(checkpoints[style])
    inputs = tokenizer(RENDERED[style], add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=3,
            min_new_tokens=3,
            do_sample=False,
        )
    assert out.shape == (1, inputs.input_ids.shape[1] + 3)
    assert int(out.max()) < len(tokenizer)


def test_styles_cover_tokenizer_kinds_and_special_token_cases(tokenizers):
    kinds = {}
    for style, tokenizer in tokenizers.items():
        backend = backend_json(tokenizer)
        pre = pre_tokenizer_types(backend["pre_tokenizer"])
        kind = "ByteLevel" if "ByteLevel" in pre else "Metaspace" if "Metaspace" in pre else None
        kinds[style] = (backend["model"]["type"], kind)
        if kind == "Metaspace":
            assert backend["model"]["byte_fallback"], style
            assert backend["pre_tokenizer"]["prepend_scheme"] in ("first", "always"), style
        elif kind == "ByteLevel":
            pre_tokenizers = [
                backend["pre_tokenizer"],
                *backend["pre_tokenizer"].get("pretokenizers", []),
            ]
            assert not any(p.get("add_prefix_space") for p in pre_tokenizers), style
    assert kinds == {
        "llama3": ("BPE", "ByteLevel"),
        "chatml": ("BPE", "ByteLevel"),
        "gemma": ("Unigram", "Metaspace"),
        "phi3": ("BPE", "Metaspace"),
        "mistral": ("BPE", "Metaspace"),
    }
    bos_added = {s: t("Hi").input_ids[0] == t.bos_token_id for s, t in tokenizers.items()}
    assert bos_added == BOS_ADDED
    assert tokenizers["chatml"].bos_token is None
    pad_is_eos = {s for s, t in tokenizers.items() if t.pad_token_id == t.eos_token_id}
    assert pad_is_eos == {"llama3", "phi3"}
    assert tokenizers["mistral"].pad_token is None
    assert tokenizers["phi3"].padding_side == "left"
    # Legacy SentencePiece (mistral) prefixes every chunk after a special token, phi3 does not.
    mistral, phi3 = tokenizers["mistral"], tokenizers["phi3"]
    assert mistral.tokenize("[INST]Hello") == mistral.tokenize("[INST] Hello")
    assert phi3.tokenize("<|user|>Hello") != phi3.tokenize("<|user|> Hello")


def test_seed_changes_weights_not_the_tokenizer(tmp_path, checkpoints):
    other = build_chat_checkpoint("mistral", tmp_path / "seed1", seed=1)
    same = build_chat_checkpoint("mistral", tmp_path / "seed0", seed=0)
    base = checkpoints["mistral"]
    assert (other / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    assert (same / "model.safetensors").read_bytes() == (base / "model.safetensors").read_bytes()
    assert (other / "model.safetensors").read_bytes() != (base / "model.safetensors").read_bytes()


def test_unknown_style_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown chat style"):
        build_chat_checkpoint("vicuna", tmp_path)
