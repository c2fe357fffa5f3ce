"""Memory without changing the result: gradient checkpointing, chunked cross-entropy over target
positions, eval loss and generation that never hold [batch × length × vocabulary] logits."""

from __future__ import annotations

import copy
import inspect
import json
import platform
import threading

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import SAMPLE
from safetensors.torch import load_file, save_file
from test_cli import captured_run  # noqa: F401  (fixture)
from transformers import LlamaConfig, LlamaForCausalLM

from adaptune.base_models import load_base_model
from adaptune.cli import main
from adaptune.compute.host_memory import TRIM_THREAD
from adaptune.compute.loss import LossFunction, chunk_positions, chunked_cross_entropy
from adaptune.data.encoding import collate, encode_example
from adaptune.tuning.fit import plan_of_model, tokens_per_pass
from adaptune.tuning.gradient_checkpointing import checkpointed, wants_checkpointing
from adaptune.tuning.loading import apply_method
from adaptune.tuning.loop import train
from adaptune.tuning.methods import LastLayersMethod, LoraMethod
from adaptune.tuning.settings import TrainingSettings

VOCAB = 6000  # large enough that logits dominate a tiny model's memory
ROWS = [
    (f"ticket {i}: " + "word " * (3 + i % 7), "billing team" if i % 2 else "tech") for i in range(8)
]


def _tiny_llama(vocab: int = VOCAB) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def _batch(vocab: int = VOCAB, rows: int = 6, width: int = 24, prompt: int = 6):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (rows, width), generator=generator)
    labels = ids.clone()
    labels[:, :prompt] = -100
    labels[-1, width - 5 :] = -100  # a shorter row: its padding is ignored
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _loss_and_grads(model, loss_fn, batch):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


def _assert_same(first, second, atol=1e-6):
    assert first[0] == pytest.approx(second[0], rel=1e-6, abs=1e-7)
    assert first[1].keys() == second[1].keys() and first[1]
    assert any(g.abs().sum() > 0 for g in first[1].values())
    for name, grad in first[1].items():
        torch.testing.assert_close(grad, second[1][name], atol=atol, rtol=1e-5, msg=name)


# --- chunked cross-entropy -----------------------------------------------------------------------


def test_chunk_positions_bound_the_bytes_of_every_copy_of_the_logits():
    assert chunk_positions(151_936) == 110 and chunk_positions(32_768) == 512
    assert chunk_positions(151_936) * 151_936 * 16 <= 256 * 2**20
    assert chunk_positions(10**12) == 1


def test_chunked_cross_entropy_equals_the_whole_one_with_gradients():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, VOCAB, bias=False)
    hidden = torch.randn(50, 16, requires_grad=True)
    labels = torch.randint(0, VOCAB, (50,))
    results = []
    for chunk in (10**6, 7):  # one chunk, then 8 chunks (the last one short)
        head.zero_grad()
        hidden.grad = None
        loss = chunked_cross_entropy(head, hidden, labels, chunk)
        loss.backward()
        results.append((loss.item(), hidden.grad.clone(), head.weight.grad.clone()))
    reference = F.cross_entropy(head(hidden).float(), labels)
    assert results[0][0] == pytest.approx(reference.item(), rel=1e-6)
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(results[1][2], results[0][2], atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(
    "method", [LoraMethod(r=4), LastLayersMethod(num_layers=1)], ids=["lora", "last_layers"]
)
def test_the_training_loss_in_chunks_equals_the_unchunked_loss(method):
    model = apply_method(_tiny_llama(), method, "causal")
    model.train()
    batch = _batch()
    whole = _loss_and_grads(model, LossFunction(model, "causal", chunk=10**6), batch)
    chunked = _loss_and_grads(model, LossFunction(model, "causal", chunk=5), batch)
    model.eval()
    with torch.no_grad():
        own = model(**batch, use_cache=False).loss.item()  # the model's own loss (full logits)
    assert whole[0] == pytest.approx(own, rel=1e-5)
    _assert_same(whole, chunked)


def _observed(model, loss_fn, batch):
    """Rows of every head output, and the vocabulary-wide tensors kept for backward."""
    head = model.get_output_embeddings()
    rows: list[int] = []
    kept: list[tuple[int, ...]] = []
    hook = head.register_forward_hook(
        lambda m, i, out: rows.append(out.reshape(-1, VOCAB).shape[0])
    )

    def pack(tensor):
        if tensor.shape and tensor.shape[-1] == VOCAB:
            kept.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(batch)
    forward_kept = list(kept)
    loss.backward()
    hook.remove()
    return rows, forward_kept


def test_the_chunked_loss_never_holds_more_than_a_chunk_of_logits():
    model = apply_method(_tiny_llama(), LoraMethod(r=4), "causal")
    model.train()
    batch = _batch(rows=8, width=40)
    targets = int((batch["labels"][:, 1:] != -100).sum())
    chunk = 32
    assert targets > 4 * chunk
    loss_fn = LossFunction(model, "causal", chunk=chunk)
    rows, _ = _observed(model, loss_fn, batch)  # the first call checks the shortcut once
    longest_row = int((batch["labels"][:, 1:] != -100).sum(dim=1).max())
    assert max(rows) <= max(chunk, longest_row)  # the check runs the model one row at a time
    rows, kept = _observed(model, loss_fn, batch)
    assert max(rows) <= chunk  # the head never sees more than one chunk, forward or backward
    assert sum(rows) == 2 * targets  # each chunk once forward, once recomputed in backward
    assert kept == []  # the forward pass keeps no logits for the backward pass
    # The unchunked loss, for contrast, keeps [targets × vocabulary] logits until backward.
    whole = LossFunction(model, "causal", chunk=10**6)
    whole.checked = True
    rows, kept = _observed(model, whole, batch)
    assert rows == [targets] and (targets, VOCAB) in kept


# --- gradient checkpointing ----------------------------------------------------------------------


def _block_calls(model) -> list[int]:
    """Forward calls of each block's MLP (inside the block, so a recompute counts too)."""
    calls = []
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    for index, layer in enumerate(hf.model.layers):
        calls.append(0)

        def count(module, args, index=index):
            calls[index] += 1

        layer.mlp.register_forward_pre_hook(count)
    return calls


@pytest.mark.parametrize(
    ("method", "recomputed_blocks"),
    [(LoraMethod(r=4, dropout=0.0), [1, 1]), (LastLayersMethod(num_layers=1), [0, 1])],
    ids=["lora", "last_layers"],
)
def test_checkpointing_on_and_off_give_the_same_gradients(method, recomputed_blocks):
    model = apply_method(_tiny_llama(), method, "causal")
    model.train()
    batch = _batch()
    calls = _block_calls(model)
    loss_fn = LossFunction(model, "causal")
    loss_fn.checked = True  # compare the training path itself
    plain = _loss_and_grads(model, loss_fn, batch)
    assert calls == [1, 1]
    calls[:] = [0, 0]
    with checkpointed(model, True) as on:
        assert on
        recomputed = _loss_and_grads(model, loss_fn, batch)
    # LoRA: every block runs again in the backward pass (adapters in each, inputs need grad);
    # last layers: only the trained block, no gradient flows into the frozen one below it.
    assert calls == [1 + n for n in recomputed_blocks]
    _assert_same(plain, recomputed)
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    assert not any(getattr(m, "gradient_checkpointing", False) for m in hf.modules())
    assert not getattr(hf, "_require_grads_hooks", None)  # the input hook is gone too
    calls[:] = [0, 0]
    _loss_and_grads(model, loss_fn, batch)
    assert calls == [1, 1]  # off again after the block


def _trim_thread_alive() -> bool:
    return any(t.name == TRIM_THREAD for t in threading.enumerate())


def test_training_with_checkpointing_follows_the_same_path():
    base = load_base_model("builtin:tiny-gpt2")
    examples = [encode_example(base.tokenizer, p, t, "causal", 64) for p, t in ROWS]
    histories, flags, trimming = [], [], []
    for choice in (False, True):
        torch.manual_seed(0)  # the same adapter init
        model = apply_method(copy.deepcopy(base.model), LoraMethod(), "causal")
        settings = TrainingSettings(
            steps=3, batch_size=4, eval_every=0, checkpoint_every=0, gradient_checkpointing=choice
        )

        def seen(state, model=model):
            flags.append(model.get_base_model().transformer.gradient_checkpointing)
            trimming.append(_trim_thread_alive())

        result = train(
            model,
            examples,
            [],
            settings,
            base.tokenizer.pad_token_id,
            "causal",
            show_progress=False,
            on_step=seen,
        )
        histories.append(result.state.losses)
        assert not model.get_base_model().transformer.gradient_checkpointing  # off afterwards
        assert model.config.use_cache is not False  # the config as it was
        assert not _trim_thread_alive()  # stopped with the loop
    assert flags == [False] * 3 + [True] * 3
    # on CPU, checkpointing also gives the heap's free pages back while it trains (glibc only)
    assert trimming == [False] * 3 + [platform.libc_ver()[0] == "glibc"] * 3
    assert histories[0] == pytest.approx(histories[1], rel=1e-5)


def _meta_llama_8b_with_lora() -> torch.nn.Module:
    from peft import get_peft_model

    config = LlamaConfig(  # Llama-3-8B's shape
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128_256,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
        return get_peft_model(model, LoraMethod(r=16).peft_config("causal"))


def test_auto_checkpoints_on_a_gpu_only_when_the_fit_estimate_needs_it():
    model = _meta_llama_8b_with_lora()
    settings = TrainingSettings(batch_size=16, max_length=256, max_batch_tokens=4096)
    assert tokens_per_pass(settings) == 4096
    assert tokens_per_pass(TrainingSettings(batch_size=2, max_length=256)) == 512
    unchunked = TrainingSettings(batch_size=64, max_length=256, max_batch_tokens=0)
    assert tokens_per_pass(unchunked) == 16384
    gpu = torch.device("cuda", 0)
    plan = plan_of_model(model, settings, gpu)
    assert plan.weight_bytes == 2 and plan.new_parameters == plan.trainable > 0
    without = plan.estimate(False)  # bf16 weights ~16 GB + ~20 GB of activations
    assert 15 * 2**30 < without.weights < 16 * 2**30
    assert without.activations > 18 * 2**30
    assert wants_checkpointing(settings, model, gpu, device_memory_bytes=24 * 2**30)  # one L4
    assert not wants_checkpointing(settings, model, gpu, device_memory_bytes=141 * 2**30)  # H200
    assert not wants_checkpointing(settings, model, torch.device("cpu"))  # CPU: only slower
    set_memory = TrainingSettings(batch_size=16, max_length=256, device_memory_gib=141)
    assert not wants_checkpointing(set_memory, model, gpu, device_memory_bytes=24 * 2**30)
    forced = TrainingSettings(gradient_checkpointing=True)
    assert wants_checkpointing(forced, model, torch.device("cpu"))
    never = TrainingSettings(gradient_checkpointing=False)
    assert not wants_checkpointing(never, model, gpu, device_memory_bytes=10**9)


def test_packed_passes_are_rows_of_max_batch_tokens():
    packed = TrainingSettings(batch_size=16, max_length=512, max_batch_tokens=4000, packing=True)
    assert tokens_per_pass(packed) == 4000  # padded rows: 7 × 512 = 3584
    assert tokens_per_pass(TrainingSettings(**{**packed.to_dict(), "packing": False})) == 3584
    long = TrainingSettings(batch_size=4, max_length=2048, max_batch_tokens=1024, packing=True)
    assert tokens_per_pass(long) == 2048  # a long example gets a row of its own
    small = TrainingSettings(batch_size=2, max_length=256, max_batch_tokens=4096, packing=True)
    assert tokens_per_pass(small) == 512  # never more than the whole batch


def _run(tmp_path, value: str):
    return CliRunner().invoke(
        main,
        [
            "run",
            "--train-data",
            str(SAMPLE / "train.jsonl"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--set",
            f"training.gradient_checkpointing={value}",
        ],
    )


def test_the_setting_is_refused_in_one_line_unless_auto_true_or_false(captured_run, tmp_path):  # noqa: F811
    result = _run(tmp_path, "maybe")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert "training.gradient_checkpointing must be 'auto', true or false, got 'maybe'" in line
    assert captured_run == [] and not (tmp_path / "runs").exists()
    for value, expected in (("true", True), ("false", False), ("auto", "auto")):
        assert _run(tmp_path, value).exit_code == 0
        assert captured_run[-1]["params"]["training"]["gradient_checkpointing"] == expected


# --- evaluation: eval loss at target positions in chunks; generation keeps the last position ----


def _eval_model():
    base = load_base_model("builtin:tiny-gpt2")
    torch.manual_seed(0)
    model = apply_method(base.model, LoraMethod(), "causal")
    with torch.no_grad():  # a LoRA that is not a no-op, so the adapter counts in the loss
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    return base, model.eval()


def _head_rows(model, shapes, dense: list[bool] | None = None):
    """Record the shape of each head output (and whether its input was row-major)."""
    from adaptune.compute.head_input import row_major

    head = model.get_base_model().get_output_embeddings()

    def seen(module, inputs, out):
        shapes.append(tuple(out.shape))
        if dense is not None:
            dense.append(row_major(inputs[0]))

    return head.register_forward_hook(seen)


def test_eval_loss_is_the_models_own_loss_from_chunks_of_target_positions(monkeypatch):
    from adaptune.compute import loss as loss_module
    from adaptune.evaluation.loss import reference_loss

    base, model = _eval_model()
    pairs = [{"prompt": p, "target": t} for p, t in ROWS]
    examples = [encode_example(base.tokenizer, p, t, "causal", 64) for p, t in ROWS]
    with torch.no_grad():  # the model's own loss, one example at a time: full logits
        own = [
            model(**collate([e], base.tokenizer.pad_token_id, "causal")).loss.item()
            for e in examples
        ]
    targets = [e.target_tokens for e in examples]
    expected = sum(o * n for o, n in zip(own, targets, strict=True)) / sum(targets)
    vocab = model.get_base_model().config.vocab_size
    monkeypatch.setattr(loss_module, "LOGITS_CHUNK_BYTES", 16 * vocab * 5)  # 5 positions a chunk
    shapes: list[tuple[int, ...]] = []
    hook = _head_rows(model, shapes)
    result = reference_loss(model, base.tokenizer, pairs, "causal", 64, batch_size=4)
    hook.remove()
    assert result["eval_loss"] == pytest.approx(expected, rel=1e-5)
    assert sum(targets) > 4 * 5 and len(shapes) > sum(targets) // 5
    # The first batch's shortcut check runs the model one row at a time at its target positions;
    # every other head call is one chunk of target positions: never [batch × length × vocab].
    assert all(s[-1] == vocab for s in shapes)
    assert all(len(s) == 3 and s[0] == 1 and s[1] <= max(targets) for s in shapes[:2])
    assert all(len(s) == 2 and s[0] <= 5 for s in shapes[2:])


def _prefill_without_logits_to_keep(model):
    """A model whose forward has no ``logits_to_keep`` (as some hub architectures)."""
    hf = model.get_base_model()
    original = hf.forward
    signature = inspect.signature(original)

    def forward(*args, **kwargs):
        assert "logits_to_keep" not in kwargs
        return original(*args, **kwargs)

    forward.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "logits_to_keep"]
    )
    hf.forward = forward


def test_generation_computes_only_the_last_positions_logits():
    from adaptune.evaluation.generation import generate

    base, model = _eval_model()
    prompts = [p for p, _ in ROWS]
    width = max(len(base.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    answers, shapes, dense = [], [], []
    for patched, batch_size in ((False, 8), (True, 8), (False, 1)):
        if patched:
            _prefill_without_logits_to_keep(model)
        seen: list[tuple[int, ...]] = []
        hook = _head_rows(model, seen, dense)
        answers.append(
            generate(
                model,
                base.tokenizer,
                prompts,
                "causal",
                max_new_tokens=4,
                batch_size=batch_size,
                show_progress=False,
            )
        )
        hook.remove()
        shapes.append(seen)
    assert answers[0] == answers[1] == answers[2] and any(answers[0])
    for seen in shapes:  # prefill and every step: one position per row
        assert seen and all(s[1] == 1 for s in seen)
    # ... from a row-major input: on a strided [rows × 1 × hidden] view of the prompt's hidden
    # states, torch's CPU bf16 linear copies the head's weight once per row (8 GB at 0.5B),
    # and a view of one row is "contiguous" without being row-major.
    assert dense and all(dense)
    # Without the cut, that model's prefill would have computed every prompt position's logits.
    seen = []
    hook = _head_rows(model, seen)
    ids = base.tokenizer(prompts[-1:], return_tensors="pt", add_special_tokens=False)["input_ids"]
    model.generate(input_ids=ids, max_new_tokens=1, pad_token_id=base.tokenizer.pad_token_id)
    hook.remove()
    assert seen[0][1] == ids.shape[1] > 1 and width > 1


# --- the sanity check ----------------------------------------------------------------------------


def test_the_sanity_probe_is_the_last_positions_of_the_full_logits():
    from adaptune.tuning.sanity import PROBE_POSITIONS, PROBE_SIZE, probe_logits

    base, model = _eval_model()
    pad = base.tokenizer.pad_token_id
    examples = [encode_example(base.tokenizer, p, t, "causal", 64) for p, t in ROWS]
    assert all(len(e.input_ids) > PROBE_POSITIONS for e in examples)
    with torch.no_grad():  # each example alone, every position through the head
        full = [
            model(**collate([e], pad, "causal")).logits[0, -PROBE_POSITIONS:]
            for e in examples[:PROBE_SIZE]
        ]
    vocabulary = full[0].shape[-1]
    probes = []
    for patched in (False, True):
        if patched:  # a model without logits_to_keep: its logits are cut after the head
            _prefill_without_logits_to_keep(model)
        seen: list[tuple[int, ...]] = []
        dense: list[bool] = []
        hook = _head_rows(model, seen, dense)
        probes.append(probe_logits(model, examples, pad, "causal"))
        hook.remove()
        assert dense and all(dense)  # the kept positions are copied out of their strided view
        if not patched:  # one example at a time, only its last positions through the head
            assert seen == [(1, PROBE_POSITIONS, vocabulary)] * PROBE_SIZE
    for probe in probes:
        assert probe.dtype == torch.float32
        torch.testing.assert_close(probe, torch.cat(full))


@pytest.mark.slow
def test_the_sanity_check_still_catches_a_saved_adapter_that_differs(tmp_path, monkeypatch):
    from adaptune.tuning import adapter as tuning_adapter
    from adaptune.tuning.sanity import PROBE_POSITIONS, AdapterSanityError

    rows = [{"prompt": p, "target": t} for p, t in ROWS]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    saved = tuning_adapter.save_adapter
    probed: list[tuple[int, ...]] = []
    probe = tuning_adapter.probe_logits

    def probe_watching_the_head(model, *args):
        hook = _head_rows(model, probed)
        try:
            return probe(model, *args)
        finally:
            hook.remove()

    def save_another(model, method, base_model, directory):  # what a broken save would write
        saved(model, method, base_model, directory)
        weights = directory / "adapter_model.safetensors"
        tensors = load_file(weights)
        save_file({k: v * 2 if "lora_B" in k else v for k, v in tensors.items()}, weights)

    monkeypatch.setattr(tuning_adapter, "probe_logits", probe_watching_the_head)
    settings = TrainingSettings(steps=3, batch_size=4, learning_rate=3e-2, eval_every=0)
    tuning_adapter.tune_adapter(
        train_file,
        tmp_path / "good",
        "builtin:tiny-gpt2",
        settings,
        LoraMethod(),
        show_progress=False,
    )
    assert probed and all(shape[:2] == (1, PROBE_POSITIONS) for shape in probed)
    monkeypatch.setattr(tuning_adapter, "save_adapter", save_another)
    with pytest.raises(AdapterSanityError, match="does not reproduce the trained model"):
        tuning_adapter.tune_adapter(
            train_file,
            tmp_path / "bad",
            "builtin:tiny-gpt2",
            settings,
            LoraMethod(),
            show_progress=False,
        )
    assert not (tmp_path / "bad").exists()


def test_eval_loss_runs_long_batches_in_chunks_of_max_tokens_with_the_same_loss():
    from adaptune.compute.loss import eval_loss

    base, model = _eval_model()
    pad = base.tokenizer.pad_token_id
    examples = [encode_example(base.tokenizer, p, t, "causal", 64) for p, t in ROWS]
    fn = LossFunction(model, "causal")
    fn.checked = True  # the one-time check against the model's own loss runs rows alone
    passes: list[tuple[int, ...]] = []
    embed = model.get_base_model().get_input_embeddings()
    hook = embed.register_forward_hook(lambda m, i, o: passes.append(tuple(i[0].shape)))
    whole = eval_loss(model, examples, pad, "causal", torch.device("cpu"), fn, max_tokens=0)
    whole_passes, passes[:] = list(passes), []
    width = max(len(e.input_ids) for e in examples)
    chunked = eval_loss(model, examples, pad, "causal", torch.device("cpu"), fn, max_tokens=width)
    hook.remove()
    assert chunked == pytest.approx(whole, rel=1e-6)
    assert len(whole_passes) == 1 and len(passes) == len(examples)  # one row a pass
    assert all(rows * length <= width for rows, length in passes)
