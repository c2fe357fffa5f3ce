import json
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import write_jsonl

from adaptune.base_models import load_base_model
from adaptune.errors import UserError
from adaptune.evaluation import compared_models
from adaptune.evaluation.compared_models import ProductionModel
from adaptune.evaluation.evaluate import EvaluationPaths, evaluate_models
from adaptune.evaluation.generation import generate
from adaptune.evaluation.loss import LOSS_METRICS, perplexity, reference_loss
from adaptune.evaluation.metrics import METRICS, score, sentence_chrf
from adaptune.evaluation.report import Comparison
from adaptune.evaluation.settings import EvaluationSettings
from adaptune.tuning.adapter import tune_adapter
from adaptune.tuning.loading import apply_method, save_adapter
from adaptune.tuning.loop import trainable_state
from adaptune.tuning.methods import LoraMethod, method_from_dict
from adaptune.tuning.settings import TrainingSettings


def test_metrics_on_known_strings():
    perfect = score(["billing", "the cat sat"], ["billing", "the cat sat"])
    assert perfect == pytest.approx({"exact_match": 1.0, "rouge_l": 1.0, "bleu": 1.0, "chrf": 1.0})
    half = score(["billing", "sales"], ["billing", "account"])
    assert half["exact_match"] == 0.5
    assert half["rouge_l"] == pytest.approx(0.5)
    assert score(["a  b"], ["a b"])["exact_match"] == 1.0


def test_evaluate_scores_base_and_tuned_and_writes_predictions(trained_adapter, tmp_path):
    result = evaluate_models(
        trained_adapter["formatted"] / "eval.jsonl",
        trained_adapter["adapter"],
        "builtin:tiny-gpt2",
        EvaluationPaths(predictions=tmp_path / "predictions.jsonl"),
        show_progress=False,
    )
    assert result.examples == 80
    assert result.tuned["exact_match"] > result.base["exact_match"]
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 80
    assert set(rows[0]) == {"prompt", "reference", "base", "tuned"}
    tuned_em = sum(r["tuned"] == r["reference"] for r in rows) / len(rows)
    assert tuned_em == pytest.approx(result.tuned["exact_match"])


# --- metrics, loss and perplexity ------------------------------------------------------------


def test_chrf_is_a_corpus_score_and_per_example_scores_rank_answers():
    assert score(["billing"], ["billing"])["chrf"] == pytest.approx(1.0)
    partial = score(["bill", "billing"], ["billing", "billing"])["chrf"]
    assert 0.0 < partial < 1.0
    per_example = sentence_chrf(["billing", "bill", "zzz"], ["billing"] * 3)
    assert per_example[0] == pytest.approx(1.0)
    assert 0.0 < per_example[1] < 1.0
    assert per_example[2] == 0.0


def test_perplexity_is_exp_of_the_loss_and_never_overflows():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(300)) == pytest.approx(300)
    assert perplexity(1e6) == math.inf


def test_a_uniform_model_has_the_vocabulary_size_as_perplexity():
    base = load_base_model("builtin:tiny-gpt2")
    with torch.no_grad():
        base.model.get_output_embeddings().weight.zero_()  # every logit 0: a uniform guess
    pairs = [
        {"prompt": f"Ticket {i}: help\nTeam:", "target": "billing" * (i % 3 + 1)} for i in range(10)
    ]
    losses = reference_loss(base.model, base.tokenizer, pairs, "causal", 256, batch_size=4)
    vocab = base.model.get_output_embeddings().weight.shape[0]
    assert losses["eval_loss"] == pytest.approx(math.log(vocab), rel=1e-5)
    assert losses["perplexity"] == pytest.approx(vocab, rel=1e-4)


def test_eval_loss_is_the_loss_tuning_reports(tmp_path):
    rows = [
        {
            "prompt": f"Ticket {i}: {'refund my order' if i % 2 else 'the app crashes'}\nTeam:",
            "target": "billing" if i % 2 else "technical",
        }
        for i in range(32)
    ]
    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    write_jsonl(train, rows)
    write_jsonl(evaluation, rows[:12])
    tuned = tune_adapter(
        train,
        tmp_path / "adapter",
        "builtin:tiny-gpt2",
        TrainingSettings(steps=12, batch_size=8, eval_every=0),
        LoraMethod(),
        eval_file=evaluation,
        show_progress=False,
    )
    result = evaluate_models(
        evaluation,
        tmp_path / "adapter",
        "builtin:tiny-gpt2",
        tmp_path / "out",
        settings=EvaluationSettings(batch_size=5),
        show_progress=False,
    )
    assert result.tuned["eval_loss"] == pytest.approx(tuned.summary["eval_loss"], rel=1e-4)
    for scores in result.scores.values():
        assert scores["perplexity"] == pytest.approx(math.exp(scores["eval_loss"]))
    assert result.tuned["eval_loss"] < result.base["eval_loss"]


# --- three models ----------------------------------------------------------------------------


def _random_model(base_model: str, adapter: dict, seed: int, scale: float = 0.05):
    """A model with seeded random adapter weights (no training): it answers unlike its base."""
    base = load_base_model(base_model)
    method = method_from_dict(adapter)
    torch.manual_seed(seed)
    model = apply_method(base.model, method, base.family)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in trainable_state(model).values():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return model, base, method


def _random_adapter(directory: Path, base_model: str, adapter: dict, seed: int) -> Path:
    model, _, method = _random_model(base_model, adapter, seed)
    directory.mkdir()
    save_adapter(model, method, base_model, directory)
    return directory


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


GPT2 = "builtin:tiny-gpt2"
T5 = "builtin:tiny-t5"


@pytest.fixture(scope="module")
def small_eval(trained_adapter, tmp_path_factory) -> Path:
    """The first 16 formatted eval pairs of the sample."""
    lines = (trained_adapter["formatted"] / "eval.jsonl").read_text().splitlines(True)[:16]
    path = tmp_path_factory.mktemp("eval") / "eval.jsonl"
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def two_models(trained_adapter, small_eval, tmp_path_factory):
    """Base and tuned only: the reference every other route must agree with."""
    out = tmp_path_factory.mktemp("two")
    result = evaluate_models(
        small_eval, trained_adapter["adapter"], "builtin:tiny-gpt2", out, show_progress=False
    )
    return result


@pytest.fixture
def base_loads(monkeypatch):
    """Counts the base models loaded while comparing models."""
    loaded: list[str] = []

    def counting(name, dtype=None, **kwargs):
        loaded.append(name)
        return load_base_model(name, dtype, **kwargs)

    monkeypatch.setattr(compared_models, "load_base_model", counting)
    return loaded


def test_without_production_only_base_and_tuned_are_scored(two_models):
    assert list(two_models.scores) == ["base", "tuned"]
    assert two_models.production is None
    for scores in two_models.scores.values():
        assert set(scores) == set(METRICS) | set(LOSS_METRICS)
    rows = _rows(two_models.paths.predictions)
    assert len(rows) == two_models.examples == 16
    assert set(rows[0]) == {"prompt", "reference", "base", "tuned"}
    page = two_models.paths.report_html.read_text(encoding="utf-8")
    assert "<tr><th>metric</th><th>base</th><th>tuned</th></tr>" in page
    assert "# Evaluation" in two_models.paths.report_markdown.read_text(encoding="utf-8")


def _evaluate(eval_file: Path, adapter: Path, out: Path, base_model: str = GPT2, **kwargs):
    return evaluate_models(eval_file, adapter, base_model, out, show_progress=False, **kwargs)


@pytest.mark.parametrize(
    ("tuned_method", "production_base", "production_method", "loads"),
    [
        ("lora", GPT2, "lora", [GPT2]),  # one base model: both adapters on it, set_adapter
        ("lora", T5, "lora", [GPT2, T5]),  # another base model (and family and tokenizer)
        ("last_layers", GPT2, "lora", [GPT2]),  # overwritten blocks put back from a copy
        ("lora", GPT2, "ia3", [GPT2]),  # another PEFT method: onto the base, lora taken out
        ("prompt_tuning", GPT2, "lora", [GPT2]),  # prompt learning left no layers behind
        ("lora", GPT2, "last_layers", [GPT2]),  # overwrites the base once it is no longer needed
    ],
    ids=[
        "same-base-shared",
        "other-base",
        "last-layers-tuned",
        "other-method",
        "prompt-tuned",
        "last-layers-production",
    ],
)
def test_production_scores_as_if_evaluated_alone(
    tuned_method,
    production_base,
    production_method,
    loads,
    trained_adapter,
    small_eval,
    two_models,
    tmp_path,
    base_loads,
):
    if tuned_method == "lora":
        tuned = trained_adapter["adapter"]
    else:
        tuned = _random_adapter(tmp_path / "tuned", GPT2, {"method": tuned_method}, 3)
    production = _random_adapter(
        tmp_path / "production", production_base, {"method": production_method}, 1
    )
    result = _evaluate(
        small_eval,
        tuned,
        tmp_path / "three",
        production=ProductionModel(production, production_base),
    )
    assert base_loads == loads
    alone = _evaluate(small_eval, production, tmp_path / "alone", production_base)
    assert list(result.scores) == ["base", "tuned", "production"]
    assert result.production == pytest.approx(alone.tuned)
    assert result.base == pytest.approx(two_models.base)
    if tuned_method == "lora":
        assert result.tuned == pytest.approx(two_models.tuned)
    rows = _rows(result.paths.predictions)
    assert [r["production"] for r in rows] == [r["tuned"] for r in _rows(alone.paths.predictions)]
    assert any(r["production"] != r["tuned"] for r in rows)
    assert any(r["tuned"] != r["base"] for r in rows)
    assert "<th>production</th>" in result.paths.report_html.read_text(encoding="utf-8")


def test_a_missing_adapter_fails_before_any_model_is_loaded(
    trained_adapter, small_eval, tmp_path, base_loads
):
    with pytest.raises(UserError, match="holds no adapter"):
        evaluate_models(
            small_eval,
            trained_adapter["adapter"],
            "builtin:tiny-gpt2",
            tmp_path,
            production=ProductionModel(tmp_path / "nothing", "builtin:tiny-gpt2"),
            show_progress=False,
        )
    assert base_loads == []


# --- generation ------------------------------------------------------------------------------

PROMPTS = [f"{'Hello, ' * (i % 5)}ticket {i}: my order is late\n### Response:\n" for i in range(10)]


@pytest.mark.parametrize("name", ["builtin:tiny-gpt2", "builtin:tiny-t5"])
def test_batched_answers_equal_answers_one_at_a_time(name):
    # random LoRA weights large enough that both models say something varied
    model, base, _ = _random_model(name, {"method": "lora"}, seed=5, scale=0.2)
    lengths = {len(base.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS}
    assert len(lengths) == 5  # batches mix prompt lengths, so rows are padded

    def answers(prompts, batch_size):
        return generate(
            model,
            base.tokenizer,
            prompts,
            base.family,
            12,
            batch_size=batch_size,
            show_progress=False,
        )

    batched = answers(PROMPTS, 8)
    assert batched == [answers([p], 1)[0] for p in PROMPTS]
    assert len(set(batched)) > 1


def test_sampling_is_reproducible_with_the_same_seed():
    base = load_base_model("builtin:tiny-gpt2")
    state = torch.get_rng_state()

    def answers(temperature, seed):
        return generate(
            base.model,
            base.tokenizer,
            PROMPTS,
            "causal",
            8,
            batch_size=4,
            temperature=temperature,
            seed=seed,
            show_progress=False,
        )

    first = answers(1.0, seed=0)
    assert answers(1.0, seed=0) == first
    assert answers(1.0, seed=1) != first
    greedy = answers(0.0, seed=0)
    assert answers(0.0, seed=1) == greedy != first
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched


def test_evaluation_samples_reproducibly(trained_adapter, small_eval, two_models, tmp_path):
    settings = EvaluationSettings(temperature=1.5, seed=7, report_examples=3)
    runs = [
        evaluate_models(
            small_eval,
            trained_adapter["adapter"],
            "builtin:tiny-gpt2",
            tmp_path / name,
            settings=settings,
            show_progress=False,
        )
        for name in ("one", "two")
    ]
    assert runs[0].paths.predictions.read_bytes() == runs[1].paths.predictions.read_bytes()
    assert runs[0].scores == runs[1].scores
    assert runs[0].paths.predictions.read_bytes() != two_models.paths.predictions.read_bytes()
    assert len(runs[0].highlighted) <= 3


# --- report ----------------------------------------------------------------------------------


def _comparison() -> Comparison:
    references = ["<script>alert(1)</script>", "a", "billing"]
    outputs = {"base": ["<script>", "a", "bill"], "tuned": [references[0], "a", "billing"]}
    return Comparison(
        prompts=["<b>bold</b> & co", "same", "x"],
        references=references,
        outputs=outputs,
        scores={
            m: score(o, references) | {"eval_loss": 1.0, "perplexity": math.e}
            for m, o in outputs.items()
        },
        facts={"adapter": "<dir>"},
    )


def test_report_is_self_contained_and_escapes_every_text():
    page = _comparison().to_html(20)
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    assert "&lt;dir&gt;" in page
    assert not re.search(r"\b(src|href)\s*=|https?://|<link|@import", page)
    assert "<tr><th>metric</th><th>base</th><th>tuned</th></tr>" in page
    for metric in (*METRICS, *LOSS_METRICS):
        assert f"<tr><th>{metric}</th>" in page
    assert "<td class='num best'>1.0000</td>" in page  # tuned's exact match, the best


def test_report_shows_the_examples_where_models_differ_most():
    comparison = _comparison()
    assert comparison.most_different(20) == [0, 2]  # example 1: every model said the same
    assert comparison.most_different(1) == [0]
    page = comparison.to_html(1)
    assert "Example 1 " in page and "Example 3 " not in page
    markdown = comparison.to_markdown(20)
    assert "| exact_match | 0.3333 | **1.0000** |" in markdown
    assert "### Example 3" in markdown and "### Example 2" not in markdown


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"temperature": -0.5}, r"evaluation\.temperature must be a finite number >= 0"),
        ({"temperature": "hot"}, r"evaluation\.temperature must be a finite number >= 0"),
        ({"temperature": float("nan")}, r"evaluation\.temperature must be a finite number >= 0"),
        ({"batch_size": 0}, r"evaluation\.batch_size must be an integer >= 1"),
        ({"max_new_tokens": -1}, r"evaluation\.max_new_tokens must be an integer >= 0"),
        ({"report_examples": 2.5}, r"evaluation\.report_examples must be an integer >= 0"),
        ({"seed": True}, r"evaluation\.seed must be an integer from 0 to 4294967295"),
        ({"max_length": 4}, r"evaluation\.max_length must be an integer >= 8"),
        ({"temprature": 1.0}, r"unknown evaluation setting\(s\) \['temprature'\]"),
    ],
)
def test_evaluation_settings_reject_bad_values(values, message):
    with pytest.raises(UserError, match=message):
        EvaluationSettings.from_dict(values)


def test_evaluation_settings_accept_pipeline_floats_and_round_trip():
    assert EvaluationSettings.from_dict(None).to_dict() == {
        "max_new_tokens": 0,
        "temperature": 0.0,
        "batch_size": 32,
        "seed": 0,
        "report_examples": 20,
        "max_length": 256,
        "precision": "auto",
        "attention": "auto",
    }
    settings = EvaluationSettings.from_dict(
        {"batch_size": 8.0, "max_new_tokens": 16.0, "temperature": 1}
    )
    assert settings.batch_size == 8 and isinstance(settings.batch_size, int)
    assert settings.max_new_tokens == 16 and not settings.greedy
    assert EvaluationSettings.from_dict(settings.to_dict()) == settings
