import json

import pytest

from adaptune.errors import UserError
from adaptune.evaluation.evaluate import evaluate_adapter
from adaptune.evaluation.gate import GateSettings, should_deploy
from adaptune.evaluation.metrics import score


def test_metrics_on_known_strings():
    perfect = score(["billing", "the cat sat"], ["billing", "the cat sat"])
    assert perfect == pytest.approx({"exact_match": 1.0, "rouge_l": 1.0, "bleu": 1.0})
    half = score(["billing", "sales"], ["billing", "account"])
    assert half["exact_match"] == 0.5
    assert half["rouge_l"] == pytest.approx(0.5)
    assert score(["a  b"], ["a b"])["exact_match"] == 1.0


def test_gate_deploys_only_when_both_conditions_hold():
    gate = GateSettings(threshold=0.6, min_improvement=0.1)
    yes = should_deploy(0.8, 0.1, gate)
    assert yes.deploy and "0.8000 >= threshold 0.6000" in yes.reason
    low = should_deploy(0.5, 0.0, gate)
    assert not low.deploy and "0.5000 < threshold 0.6000" in low.reason
    flat = should_deploy(0.9, 0.85, gate)
    assert not flat.deploy and "+0.0500 < min_improvement 0.1000" in flat.reason


def test_gate_settings_are_validated():
    with pytest.raises(UserError, match=r"gate\.metric"):
        GateSettings.from_dict({"metric": "accuracy"})
    with pytest.raises(UserError, match="unknown gate setting"):
        GateSettings.from_dict({"treshold": 0.5})


def test_evaluate_scores_base_and_tuned_and_writes_predictions(trained_adapter, tmp_path):
    result = evaluate_adapter(
        trained_adapter["formatted"] / "eval.jsonl",
        trained_adapter["adapter"],
        "builtin:tiny-gpt2",
        tmp_path / "predictions.jsonl",
        show_progress=False,
    )
    assert result.examples == 80
    assert result.tuned["exact_match"] > result.base["exact_match"]
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 80
    assert set(rows[0]) == {"prompt", "reference", "base", "tuned"}
    tuned_em = sum(r["tuned"] == r["reference"] for r in rows) / len(rows)
    assert tuned_em == pytest.approx(result.tuned["exact_match"])
