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


def test_the_outcome_table_covers_the_slider_as_displayed():
    table = scoring.outcome_table("quadratic", rounds=2, penalty=0.05)
    assert len(table) == 51 and table["0.75"] == ["+0.775", "-0.225"]  # 1 - 2(0.25)² - 0.1, 1 - 2(0.75)² - 0.1
    assert scoring.outcome_table("log")["1.00"] == ["0.000", "-6.908"]


@pytest.mark.parametrize(
    "value,shown", [(0.99514, "+0.995"), (-6.9077, "-6.908"), (0.0, "0.000"), (-0.0, "0.000"), (-0.0004, "0.000")]
)
def test_scores_are_shown_signed_to_three_decimals(value, shown):
    assert scoring.display(value) == shown


def test_three_decimals_keep_the_incentive_near_certainty_visible():
    # With two decimals the spherical score if right read 1.00 from p = 0.91 on.
    assert scoring.outcome_table("spherical")["0.91"][0] == "+0.995"
    steps = [f"{step / 100:.2f}" for step in range(50, 101)]
    for rule in scoring.RULES:
        table = scoring.outcome_table(rule)
        if_right = [table[p][0] for p in steps if p <= "0.95"]
        assert len(set(if_right)) == len(if_right), rule  # every step up to 0.95 scores differently if right
        if_wrong = [table[p][1] for p in steps]
        assert len(set(if_wrong)) == len(if_wrong), rule  # and every step differently if wrong


def test_the_verdict_stores_its_score(ready_trial, judge):
    experiment = ready_trial.experiment
    experiment.scoring_rule, experiment.round_penalty = "spherical", 0.05
    experiment.save()
    wrong = "B" if ready_trial.honest_side == "A" else "A"
    trial_open(trial=ready_trial)
    verdict = verdict_submit(trial_id=ready_trial.pk, judge=judge, chosen=wrong, probability=0.9, rationale="r")
    assert verdict.score == pytest.approx(scoring.score("spherical", 0.1) - 0.05 * 2)
