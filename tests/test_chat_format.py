"""The chat prompt format and tokenising at the seam, over five chat-template styles.

The property checked for every style (byte-level BPE with and without BOS, SentencePiece-style
BPE and Unigram) on the sample's records, single- and multi-turn: the prompt's ids plus the
target's ids are exactly the ids of the whole rendered conversation (BOS once), the prompt's ids
are what generation feeds the model, and the target ends its turn with a trained token.
"""

from __future__ import annotations

import json

import pytest
from chat_models import STYLES, build_chat_checkpoint, build_chat_tokenizer
from conftest import SAMPLE

from adaptune.base_models import load_base_model
from adaptune.base_models.tokenizer import load_tokenizer
from adaptune.data.chat import (
    PromptStyle,
    conversation,
    end_of_turn_ids,
    render_chat_pair,
    render_chat_prompt,
    resolve_prompt_format,
)
from adaptune.data.encoding import IGNORE_INDEX, bos_prefix, encode_pairs, encode_prompts
from adaptune.data.formatting import format_text_to_text
from adaptune.errors import UserError
from adaptune.evaluation.generation import stop_token_ids
from adaptune.hashing import sha256_text

RECORDS = [json.loads(line) for line in (SAMPLE / "train.jsonl").read_text().splitlines()[:40]]
EXAMPLES = [
    *({"input_text": r["input_text"], "output_text": r["output_text"]} for r in RECORDS[:30]),
    {
        "system": "Route the ticket to one team.",
        "context": [
            {"role": "user", "text": "Hello, I have a question."},
            {"role": "model", "text": "Sure, what is it?"},
        ],
        "input_text": RECORDS[30]["input_text"],
        "output_text": RECORDS[30]["output_text"],
    },
    {"system": "Answer with a team name.", "input_text": " leading space", "output_text": "sales"},
    {"input_text": "Trailing space ", "output_text": " account"},
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("chat")
    return {style: str(build_chat_checkpoint(style, root / style)) for style in STYLES}


def _assert_split_at_the_seam(tokenizer) -> None:
    bos = bos_prefix(tokenizer)
    turn_ends = set(end_of_turn_ids(tokenizer))
    assert turn_ends, "every style closes the assistant turn with a special token"
    pairs = []
    for example in EXAMPLES:
        prompt, target = render_chat_pair(tokenizer, conversation(example), example["output_text"])
        pairs.append({"prompt": prompt, "target": target})
    encoded = encode_pairs(tokenizer, pairs, "causal", 4096)
    fed = encode_prompts(tokenizer, [p["prompt"] for p in pairs], 4096)
    for pair, ids, prompt_ids in zip(pairs, encoded, fed, strict=True):
        whole = tokenizer(pair["prompt"] + pair["target"], add_special_tokens=False)["input_ids"]
        if bos and whole[:1] != bos:
            whole = bos + whole
        split = sum(1 for label in ids.labels if label == IGNORE_INDEX)
        assert ids.input_ids[:split] == prompt_ids, "training sees the prompt generation feeds"
        assert ids.input_ids[: len(whole)] == whole, pair
        assert ids.input_ids.count(bos[0]) == 1 if bos else True, "BOS exactly once"
        trained = [t for t in ids.labels if t != IGNORE_INDEX]
        assert turn_ends & set(trained), "the end-of-turn token is trained"
        assert ids.labels[split:] == ids.input_ids[split:]


@pytest.mark.parametrize("style", STYLES)
def test_prompt_and_target_ids_are_the_rendered_whole(checkpoints, style):
    _assert_split_at_the_seam(load_tokenizer(checkpoints[style]))


def test_a_byte_level_tokenizer_with_a_prefix_space_splits_at_the_seam_too():
    """Byte-level BPE adding a prefix space (RoBERTa style), the one style the fixtures lack."""
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    base = build_chat_tokenizer("llama3")
    backend = Tokenizer.from_str(base.backend_tokenizer.to_str())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    specials = [t for t in base.all_special_tokens if t not in (base.bos_token, base.eos_token)]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=base.bos_token,
        eos_token=base.eos_token,
        pad_token=base.eos_token,
        chat_template=base.chat_template,
        extra_special_tokens=specials,
    )
    plain = base("billing", add_special_tokens=False)["input_ids"]
    assert tokenizer("billing", add_special_tokens=False)["input_ids"] != plain, "prefix space"
    _assert_split_at_the_seam(tokenizer)


@pytest.mark.parametrize("style", ["llama3", "phi3"])
def test_eos_is_trained_when_it_is_also_the_pad_token(checkpoints, style):
    tokenizer = load_tokenizer(checkpoints[style])
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    prompt, target = render_chat_pair(tokenizer, [{"role": "user", "content": "hi"}], "billing")
    (encoded,) = encode_pairs(tokenizer, [{"prompt": prompt, "target": target}], "causal", 256)
    assert encoded.labels[-1] == tokenizer.eos_token_id


def test_a_sentencepiece_target_learns_no_extra_leading_piece(checkpoints):
    tokenizer = load_tokenizer(checkpoints["gemma"])
    prompt, target = render_chat_pair(tokenizer, [{"role": "user", "content": "hi"}], "billing")
    (encoded,) = encode_pairs(tokenizer, [{"prompt": prompt, "target": target}], "causal", 256)
    first = tokenizer.convert_ids_to_tokens(next(t for t in encoded.labels if t != IGNORE_INDEX))
    alone_ids = tokenizer("billing", add_special_tokens=False)["input_ids"]
    alone = tokenizer.convert_ids_to_tokens(alone_ids)
    assert not first.startswith("▁") and alone[0].startswith("▁"), (first, alone)


def test_a_template_without_a_system_role_gets_the_system_text_in_the_first_turn(checkpoints):
    tokenizer = load_tokenizer(checkpoints["gemma"])
    messages = conversation({"system": "Be brief.", "input_text": "hi"})
    prompt = render_chat_prompt(tokenizer, messages)
    assert prompt.startswith("<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>")


def test_generation_stops_on_every_eos_id_and_the_end_of_turn(checkpoints):
    base = load_base_model(checkpoints["llama3"])
    names = base.tokenizer.convert_ids_to_tokens(stop_token_ids(base.model, base.tokenizer))
    assert {"<|end_of_text|>", "<|eot_id|>"} <= set(names)
    chatml = load_base_model(checkpoints["chatml"])
    names = chatml.tokenizer.convert_ids_to_tokens(stop_token_ids(chatml.model, chatml.tokenizer))
    assert {"<|im_end|>", "<|endoftext|>"} <= set(names)


def test_auto_picks_chat_for_a_chat_model_and_the_template_for_built_in_ones(checkpoints):
    assert resolve_prompt_format("auto", load_tokenizer(checkpoints["chatml"]), "x") == "chat"
    builtin = load_tokenizer("builtin:tiny-gpt2")
    assert resolve_prompt_format("auto", builtin, "builtin:tiny-gpt2") == "template"
    with pytest.raises(UserError, match=r"data\.prompt_format is chat but the tokenizer"):
        resolve_prompt_format("chat", builtin, "builtin:tiny-gpt2")


def _validated(tmp_path, records):
    valid = tmp_path / "valid"
    valid.mkdir()
    (valid / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return valid


def test_formatting_in_the_chat_format_writes_rendered_pairs_and_references(checkpoints, tmp_path):
    records = [
        {"input_text": r["input_text"], "output_text": r["output_text"]} for r in RECORDS
    ]
    result = format_text_to_text(
        _validated(tmp_path, records),
        tmp_path / "formatted",
        eval_fraction=0.25,
        base_model=checkpoints["chatml"],
        system_instruction="Route the ticket.",
    )
    template = "{input_text}\n### Response:\n"
    digest = sha256_text(load_tokenizer(checkpoints["chatml"]).chat_template)
    assert result.prompt_style == PromptStyle("chat", template, "Route the ticket.", digest)
    pairs = [json.loads(line) for line in result.files["train"].read_text().splitlines()]
    first = pairs[0]
    assert first["prompt"].startswith("<|im_start|>system\nRoute the ticket.<|im_end|>\n")
    assert first["prompt"].endswith("<|im_start|>assistant\n")
    assert first["target"] == first["reference"] + "<|im_end|>\n"


def test_the_built_in_models_keep_the_template_format(tmp_path):
    records = [{"input_text": r["input_text"], "output_text": r["output_text"]} for r in RECORDS]
    result = format_text_to_text(
        _validated(tmp_path, records),
        tmp_path / "formatted",
        prompt_template="Ticket: {input_text}\nTeam:",
        eval_fraction=0.25,
        base_model="builtin:tiny-gpt2",
    )
    assert result.prompt_style.format == "template"
    first = json.loads(result.files["train"].read_text().splitlines()[0])
    assert set(first) == {"prompt", "target"}
    assert first["prompt"].startswith("Ticket: ") and first["prompt"].endswith("\nTeam:")


def test_token_limits_count_the_rendered_template(checkpoints, tmp_path):
    from adaptune.data.chat import ChatRendering
    from adaptune.data.settings import DataSettings
    from adaptune.data.validation import check_dataset

    base = checkpoints["llama3"]
    tokenizer = load_tokenizer(base)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:20]))
    content = max(len(tokenizer(r["input_text"])["input_ids"]) for r in RECORDS[:20])
    rendered = max(
        n for n, _ in ChatRendering(tokenizer, "Be brief.").token_counts(RECORDS[:20])
    )
    assert rendered > content + 10, "the template adds its markup and the system turn"
    between = DataSettings(
        min_examples=1, max_input_tokens=content + 1, system_instruction="Be brief."
    )
    report, _ = check_dataset(str(train), None, between, base)
    assert not report.passed and report.problem_counts.get("input_too_long")
    assert report.prompt_format == "chat"
    enough = DataSettings(min_examples=1, max_input_tokens=rendered, system_instruction="Be brief.")
    report, _ = check_dataset(str(train), None, enough, base)
    assert report.passed, report.failure_message()
    assert report.max_tokens["input"] == rendered
    prompt, trained = report.rendered_example
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert trained == RECORDS[0]["output_text"] + "<|eot_id|>"
    assert "What the model sees" in report.to_markdown()
    assert report.to_metadata()["prompt_format"] == "chat"


def test_the_built_in_models_validate_in_the_template_format(tmp_path):
    from adaptune.data.settings import DataSettings
    from adaptune.data.validation import check_dataset

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:20]))
    report, _ = check_dataset(str(train), None, DataSettings(min_examples=1), "builtin:tiny-gpt2")
    assert report.passed and report.prompt_format == "template"
    assert report.rendered_example is None
