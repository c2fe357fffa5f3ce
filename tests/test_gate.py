import itertools

import pytest

from adaptune.errors import UserError
from adaptune.evaluation.gate import GateSettings, passes_gate

GATE = GateSettings(threshold=0.6, min_improvement=0.1, tolerance=0.05)


@pytest.mark.parametrize(
    ("clears_threshold", "beats_base", "has_production", "keeps_up"),
    list(itertools.product([True, False], repeat=4)),
)
def test_truth_table(clears_threshold, beats_base, has_production, keeps_up):
    tuned = 0.8 if clears_threshold else 0.5
    base = tuned - (0.2 if beats_base else 0.05)
    production = None
    if has_production:
        production = tuned + (0.03 if keeps_up else 0.08)  # within / beyond the 0.05 tolerance
    decision = passes_gate(tuned, base, GATE, production, "router@v3")
    expected = clears_threshold and beats_base and (keeps_up or not has_production)
    assert decision.passed is expected
    assert decision.reason.startswith("passed: " if expected else "failed: ")
    assert ("< threshold" in decision.reason) is (not clears_threshold)
    assert ("< min_improvement" in decision.reason) is (not beats_base)
    assert ("< router@v3" in decision.reason) is (has_production and not keeps_up)
    if expected:
        assert ("no production version" in decision.reason) is (not has_production)


def test_boundaries_are_inclusive():
    gate = GateSettings(threshold=0.5, min_improvement=0.25, tolerance=0.25)
    assert passes_gate(0.5, 0.25, gate, production=0.75).passed
    # not exactly representable: 0.7 - 0.6 is 0.0999..., 0.8 - 0.1 is 0.7000...1
    inexact = GateSettings(threshold=0.7, min_improvement=0.1, tolerance=0.1)
    assert passes_gate(0.7, 0.6, inexact, production=0.8).passed
    assert not passes_gate(0.7, 0.6001, inexact, production=0.8).passed


def test_reason_names_every_number():
    decision = passes_gate(0.7, 0.2, GATE, production=0.9, production_ref="router@v3")
    assert decision.reason == ("failed: tuned 0.7000 < router@v3 0.9000 - tolerance 0.0500")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"metric": "accuracy"}, r"gate\.metric"),
        ({"tolerance": -0.1}, r"gate\.tolerance must be a finite number from 0 to 1"),
        ({"threshold": "high"}, r"gate\.threshold must be a finite number"),
        ({"treshold": 0.5}, "unknown gate setting"),
    ],
)
def test_settings_are_validated(values, message):
    with pytest.raises(UserError, match=message):
        GateSettings.from_dict(values)
