"""training.packing: padding-free rows give the same loss and gradients as padded batches,
attention never crosses examples, and a model or method that cannot pack is refused."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SAMPLE
from hostile import invoke, one_line_error, tree
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from adaptune.compute.loss import LossFunction
from adaptune.compute.packing import packed_rows, packed_tensors, segments
from adaptune.data.encoding import IGNORE_INDEX, Encoded
from adaptune.errors import UserError
from adaptune.tuning.loop import backward_batch, train_steps
from adaptune.tuning.settings import TrainingSettings

VOCABULARY = 61
PAD = 0
LENGTHS = [(4, 3), (9, 5), (2, 11), (6, 2), (3, 4)]  # (prompt, target) tokens


def tiny_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCABULARY,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config)
    lora = LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, init_lora_weights=False
    )
    return get_peft_model(model, lora)


def examples(seed: int = 1) -> list[Encoded]:
    generator = torch.Generator().manual_seed(seed)
    made = []
    for prompt, target in LENGTHS:
        ids = torch.randint(1, VOCABULARY, (prompt + target,), generator=generator).tolist()
        made.append(Encoded(ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return made


def loss_and_gradients(
    model: torch.nn.Module, batch: list[Encoded], packing: bool, max_tokens: int
) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = backward_batch(
        LossFunction(model, "causal"),
        batch,
        PAD,
        "causal",
        torch.device("cpu"),
        max_tokens,
        1.0,
        packing=packing,
    )
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss, grads


def test_rows_hold_every_example_once_within_the_budget():
    batch = examples()
    rows = packed_rows(batch, 20)
    assert sorted(id(e) for row in rows for e in row) == sorted(id(e) for e in batch)
    assert all(sum(len(e.input_ids) for e in row) <= 20 for row in rows)
    assert len(rows) < len(batch)  # several examples share a row
    tensors = packed_tensors(rows[0])
    spans = segments(tensors["position_ids"])
    assert [end - start for start, end in spans] == [len(e.input_ids) for e in rows[0]]
    assert all(tensors["position_ids"][0, start] == 0 for start, _ in spans)
    assert all(tensors["labels"][0, start] == IGNORE_INDEX for start, _ in spans)


@pytest.mark.parametrize("max_tokens", [20, 32, 0])
def test_packed_and_padded_give_the_same_loss_and_gradients(max_tokens):
    model = tiny_llama()
    model.train()
    batch = examples()
    padded, padded_grads = loss_and_gradients(model, batch, packing=False, max_tokens=0)
    packed, packed_grads = loss_and_gradients(model, batch, packing=True, max_tokens=max_tokens)
    assert abs(packed - padded) < 1e-5, (packed, padded)
    assert padded_grads.keys() == packed_grads.keys() and padded_grads
    for name, grad in padded_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_training_packed_and_padded_follows_the_same_losses():
    batch = examples()
    curves = []
    for packing in (False, True):
        model = tiny_llama()
        settings = TrainingSettings(
            steps=3,
            batch_size=5,
            learning_rate=1e-2,
            max_batch_tokens=24,
            packing=packing,
            eval_every=0,
            checkpoint_every=0,
        )
        result = train_steps(model, batch, [], settings, PAD, "causal", show_progress=False)
        curves.append(result.state.losses)
    assert len(curves[0]) == 3
    torch.testing.assert_close(torch.tensor(curves[1]), torch.tensor(curves[0]), atol=1e-5, rtol=0)


@torch.no_grad()
def test_attention_does_not_cross_examples_in_a_row():
    model = tiny_llama().eval()
    first, second = examples()[:2]
    body = model.get_base_model().model

    def second_hidden(head: Encoded) -> torch.Tensor:
        tensors = packed_tensors([head, second])
        out = body(
            input_ids=tensors["input_ids"],
            position_ids=tensors["position_ids"],
            attention_mask=None,
            use_cache=False,
        )
        return out.last_hidden_state[0, len(head.input_ids) :]

    changed = Encoded([(t + 7) % (VOCABULARY - 1) + 1 for t in first.input_ids], first.labels)
    before, after = second_hidden(first), second_hidden(changed)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    alone = body(input_ids=torch.tensor([second.input_ids]), use_cache=False)
    torch.testing.assert_close(before, alone.last_hidden_state[0], rtol=1e-5, atol=1e-5)
    # the same perturbation with restarts removed does reach the second example
    crossed = [
        body(
            input_ids=packed_tensors([head, second])["input_ids"], use_cache=False
        ).last_hidden_state[0, len(head.input_ids) :]
        for head in (first, changed)
    ]
    assert not torch.allclose(crossed[0], crossed[1], atol=1e-4)


def test_a_model_whose_attention_crosses_examples_is_refused_by_name():
    model = tiny_llama()
    body = model.get_base_model().model
    original = body.forward

    def ignoring_positions(*args, position_ids=None, **kwargs):  # attention sees the whole row
        return original(*args, **kwargs)

    body.forward = ignoring_positions
    with pytest.raises(UserError, match=r"^training\.packing=true: LlamaForCausalLM lets"):
        loss_and_gradients(model, examples(), packing=True, max_tokens=0)


@pytest.mark.parametrize(
    ("base_model", "adapter", "named"),
    [
        ("builtin:tiny-t5", {"method": "lora", "r": 4}, "is seq2seq"),
        ("builtin:tiny-gpt2", {"method": "prompt_tuning", "num_virtual_tokens": 4}, "virtual"),
    ],
)
def test_packing_a_model_or_method_that_cannot_pack_is_refused_before_running(
    tmp_path, monkeypatch, base_model, adapter, named
):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--train-data", SAMPLE / "train.jsonl", "--base-model", base_model]
    args += ["--adapter", json.dumps(adapter), "--training", json.dumps({"packing": True})]
    before = tree(tmp_path)
    line = one_line_error(invoke(*args))
    assert line.startswith("adaptune: error: training.packing=true packs causal models"), line
    assert named in line and "set training.packing to false" in line, line
    assert tree(tmp_path) == before
