"""Proper scoring rules: values, properness, storage, and what the verdict form shows."""

import math

import numpy as np
import pytest

from judging import scoring
from judging.services import trial_open, verdict_submit


def test_rule_values_match_hand_computation():
    assert scoring.score("log", 0.8) == pytest.approx(math.log(0.8))
    assert scoring.score("log", 0.0) == pytest.approx(math.log(0.001))
    assert scoring.score("quadratic", 0.8) == pytest.approx(1 - 2 * 0.04)
    assert scoring.score("spherical", 0.8) == pytest.approx(0.8 / math.sqrt(0.68))
    assert scoring.verdict_score("quadratic", 0.9, False) == pytest.approx(1 - 2 * 0.81)
    assert scoring.score("log", 1.0, rounds=3, penalty=0.1) == pytest.approx(-0.3)
    with pytest.raises(ValueError, match="unknown scoring rule"):
        scoring.score("linear", 0.5)


@pytest.mark.parametrize("rule", scoring.RULES)
@pytest.mark.parametrize("belief", [0.55, 0.7, 0.9])
def test_every_rule_is_proper_reporting_the_belief_maximises_the_expected_score(rule, belief):
    reports = np.linspace(0.5, 0.999, 500)
    expected = [belief * scoring.score(rule, r) + (1 - belief) * scoring.score(rule, 1 - r) for r in reports]
    assert reports[int(np.argmax(expected))] == pytest.approx(belief, abs=0.002)


def test_the_outcome_table_covers_the_slider():
    table = scoring.outcome_table("quadratic", rounds=2, penalty=0.05)
    assert len(table) == 51 and table["0.75"] == [round(1 - 2 * 0.0625 - 0.1, 3), round(1 - 2 * 0.5625 - 0.1, 3)]


def test_the_verdict_stores_its_score(ready_trial, judge):
    experiment = ready_trial.experiment
    experiment.scoring_rule, experiment.round_penalty = "spherical", 0.05
    experiment.save()
    wrong = "B" if ready_trial.honest_side == "A" else "A"
    trial_open(trial=ready_trial)
    verdict = verdict_submit(trial_id=ready_trial.pk, judge=judge, chosen=wrong, probability=0.9, rationale="r")
    assert verdict.score == pytest.approx(scoring.score("spherical", 0.1) - 0.05 * 2)
