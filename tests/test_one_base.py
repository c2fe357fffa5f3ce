"""One base model in memory at a time, through tuning (sanity check included) and evaluation.

Every binding of ``load_base_model`` is wrapped to count the base models still alive (weak
references, after a garbage collection) each time another one is loaded.
"""

from __future__ import annotations

import gc
import json
import sys
import weakref
from pathlib import Path

import pytest

from adaptune.base_models import loading
from adaptune.evaluation import compared_models  # noqa: F401  (its binding is wrapped too)
from adaptune.evaluation.compared_models import ProductionModel
from adaptune.evaluation.evaluate import evaluate_models
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.tuning import adapter as tuning_adapter
from adaptune.tuning.methods import method_from_dict
from adaptune.tuning.settings import TrainingSettings

GPT2 = "builtin:tiny-gpt2"
T5 = "builtin:tiny-t5"
ROWS = [
    {"prompt": f"ticket {i}: where is order {i}?\n", "target": f" label {i % 3}"} for i in range(24)
]


@pytest.fixture
def alive_at_load(monkeypatch) -> list[int]:
    """For each base model loaded, how many base models were alive with it (itself included)."""
    original = loading.load_base_model
    live: list[weakref.ref] = []
    counts: list[int] = []

    def counting(name: str, *args, **kwargs):
        gc.collect()
        before = sum(ref() is not None for ref in live)
        base = original(name, *args, **kwargs)
        live.append(weakref.ref(base.model))
        counts.append(before + 1)
        return base

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("adaptune") and (
            getattr(module, "load_base_model", None) is original
        ):
            monkeypatch.setattr(module, "load_base_model", counting)
    return counts


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _tune(tmp_path: Path, name: str, base_model: str, adapter: dict) -> Path:
    train = _jsonl(tmp_path / f"{name}-train.jsonl", ROWS)
    evals = _jsonl(tmp_path / f"{name}-eval.jsonl", ROWS[:6])
    out = tmp_path / name
    settings = TrainingSettings(steps=4, batch_size=8, learning_rate=3e-2, eval_every=0)
    tuning_adapter.tune_adapter(
        train, out, base_model, settings, method_from_dict(adapter), evals, show_progress=False
    )
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "adapter",
    [
        {"method": "lora"},
        {"method": "prompt_tuning", "num_virtual_tokens": 4},
        {"method": "ia3"},
        {"method": "last_layers"},
    ],
    ids=["lora", "prompt_tuning", "ia3", "last_layers"],
)
def test_tuning_and_its_sanity_check_load_the_base_once(tmp_path, alive_at_load, adapter):
    out = _tune(tmp_path, "adapter", GPT2, adapter)
    assert alive_at_load == [1]  # one load: the saved adapter was reloaded onto the same base
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_evaluation_holds_one_base_at_a_time(tmp_path, alive_at_load):
    lora = _tune(tmp_path, "lora", GPT2, {"method": "lora"})
    last = _tune(tmp_path, "last", GPT2, {"method": "last_layers"})
    ia3 = _tune(tmp_path, "ia3", GPT2, {"method": "ia3"})
    on_t5 = _tune(tmp_path, "t5", T5, {"method": "lora"})
    assert alive_at_load == [1, 1, 1, 1]
    alive_at_load.clear()
    evals = _jsonl(tmp_path / "eval.jsonl", ROWS[:3])
    settings = EvaluationSettings(max_new_tokens=4)
    cases = [
        (lora, ProductionModel(last, GPT2), [1]),  # last_layers onto the base, lora taken out
        (last, ProductionModel(ia3, GPT2), [1]),  # base from a copy of the trained blocks only
        (ia3, ProductionModel(lora, GPT2), [1]),
        (lora, ProductionModel(on_t5, T5), [1, 1]),  # another base: loaded after GPT-2 went
        (last, None, [1]),
    ]
    for index, (tuned, production, loads) in enumerate(cases):
        result = evaluate_models(
            evals,
            tuned,
            GPT2,
            tmp_path / f"eval-{index}",
            production=production,
            settings=settings,
            show_progress=False,
        )
        assert alive_at_load == loads, (tuned.name, production)
        assert set(result.scores) == {"base", "tuned"} | ({"production"} if production else set())
        alive_at_load.clear()
