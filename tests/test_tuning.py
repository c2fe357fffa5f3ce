import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from adaptune.errors import UserError
from adaptune.models import load_base_model
from adaptune.tuning.adapter import tune_adapter
from adaptune.tuning.batching import length_grouped_batches
from adaptune.tuning.encoding import IGNORE_INDEX, collate, encode_example
from adaptune.tuning.lora import LoraSettings
from adaptune.tuning.settings import TrainingSettings


def test_causal_loss_is_on_target_tokens_only():
    tok = load_base_model("builtin:tiny-gpt2").tokenizer
    example = encode_example(tok, "Ticket: refund please\nTeam:", "billing", "causal", 64)
    target = tok("billing", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n_prompt = len(example.input_ids) - len(target)
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert example.labels[n_prompt:] == target == example.input_ids[n_prompt:]


def test_long_prompts_are_cut_from_the_left_and_keep_the_target():
    tok = load_base_model("builtin:tiny-gpt2").tokenizer
    example = encode_example(tok, "word " * 500 + "END", "billing", "causal", 32)
    assert len(example.input_ids) == 32
    assert example.target_tokens > 0
    seq2seq = encode_example(tok, "word " * 500, "billing", "seq2seq", 32)
    assert len(seq2seq.input_ids) == 32 and seq2seq.input_ids[-1] == tok.eos_token_id


def test_collate_pads_with_ignored_labels():
    tok = load_base_model("builtin:tiny-gpt2").tokenizer
    batch = [encode_example(tok, p, "x", "causal", 64) for p in ("a", "a much longer prompt")]
    tensors = collate(batch, tok.pad_token_id, "causal")
    assert tensors["input_ids"].shape == tensors["labels"].shape
    assert tensors["attention_mask"][0].sum() == len(batch[0].input_ids)
    assert (tensors["labels"][0, len(batch[0].input_ids) :] == IGNORE_INDEX).all()


def test_length_grouped_batches_cover_every_example_once():
    lengths = [(i * 37) % 101 for i in range(300)]
    batches = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(300))
    padding = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)
    random_batches = [list(range(300))[i : i + 16] for i in range(0, 300, 16)]
    random_padding = sum(
        len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in random_batches
    )
    assert padding < random_padding / 4


@pytest.mark.parametrize(
    "bad", [{"r": 0}, {"alpha": -1}, {"dropout": 1.5}, {"target_modules": []}, {"rank": 8}]
)
def test_lora_settings_reject_bad_values(bad):
    with pytest.raises(UserError):
        LoraSettings.from_dict(bad)


def test_lora_settings_accept_pipeline_floats():
    assert LoraSettings.from_dict({"r": 8.0, "target_modules": ["c_attn"]}).r == 8


def test_training_settings_reject_bad_values():
    with pytest.raises(UserError, match="learning_rate"):
        TrainingSettings(learning_rate=0)


def _formatted(tmp_path, rows):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("base_model", ["builtin:tiny-gpt2", "builtin:tiny-t5"])
def test_tuning_lowers_loss_and_saves_a_loadable_peft_adapter(tmp_path, base_model):
    rows = [
        {
            "prompt": f"Ticket {i}: {'refund' if i % 2 else 'crash'}\nTeam:",
            "target": "billing" if i % 2 else "technical",
        }
        for i in range(32)
    ]
    result = tune_adapter(
        _formatted(tmp_path, rows),
        tmp_path / "adapter",
        base_model,
        TrainingSettings(steps=40, batch_size=8),
        LoraSettings(),
        show_progress=False,
    )
    assert result.summary["final_loss"] < result.summary["first_loss"] / 2
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "loss_curve.png"} <= files
    assert (tmp_path / "adapter" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    base = load_base_model(base_model)
    model = PeftModel.from_pretrained(base.model, str(tmp_path / "adapter"))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)


def test_same_seed_gives_the_same_adapter(tmp_path):
    rows = [{"prompt": f"q{i}", "target": f"a{i % 3}"} for i in range(24)]
    data = _formatted(tmp_path, rows)
    settings = TrainingSettings(steps=10, batch_size=8, seed=3)
    for name in ("one", "two"):
        tune_adapter(
            data,
            tmp_path / name,
            "builtin:tiny-gpt2",
            settings,
            LoraSettings(),
            show_progress=False,
        )
    one = load_file(tmp_path / "one" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_unknown_target_modules_are_a_user_error(tmp_path):
    data = _formatted(tmp_path, [{"prompt": "q", "target": "a"}])
    with pytest.raises(UserError, match="LoRA settings do not fit"):
        tune_adapter(
            data,
            tmp_path / "a",
            "builtin:tiny-gpt2",
            TrainingSettings(steps=1),
            LoraSettings(target_modules=("no_such_module",)),
            show_progress=False,
        )
