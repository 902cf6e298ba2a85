"""Two-way clustered intervals and tests, against reference implementations and simulated truth."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from results import inference
from results.inference import TwoWayBootstrap, greater_than, holm, wilson

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("successes,n", [(7, 10), (10, 10), (0, 5), (93, 180)])
def test_wilson_matches_statsmodels(successes, n):
    ours = wilson(successes, n, quantile=1.959963984540054)
    assert ours == pytest.approx(proportion_confint(successes, n, method="wilson"))


def test_holm_matches_statsmodels():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": None}
    adjusted = holm(p)
    reference = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    assert [adjusted[k] for k in "abc"] == pytest.approx(list(reference))
    assert adjusted["d"] is None


def test_a_small_cell_of_all_correct_does_not_collapse_to_one():
    boot = TwoWayBootstrap([f"q{i}" for i in range(10)], ["j1", "j2"] * 5)
    estimate = boot.proportion(np.ones(10))
    assert estimate.value == 1.0 and estimate.high == 1.0
    assert 0.6 < estimate.low < 0.8  # a percentile bootstrap gives [1, 1] here


def test_clustering_by_judge_widens_the_interval_of_a_share():
    rng = np.random.default_rng(3)
    questions = [f"q{i}" for i in range(60) for _ in range(3)]
    judges = [f"j{k}" for k in rng.integers(0, 6, 180)]
    # Every verdict of the first three judges right, every verdict of the others wrong:
    # all the variation is between judges, so 180 verdicts carry about as much as 6.
    clustered = np.array([1.0 if j in ("j0", "j1", "j2") else 0.0 for j in judges])
    scattered = rng.permutation(clustered)
    by_judge = TwoWayBootstrap(questions, judges).proportion(clustered)
    independent = TwoWayBootstrap(questions, judges).proportion(scattered)
    assert by_judge.n_effective < 20 < 120 < independent.n_effective
    assert (by_judge.high - by_judge.low) > 2 * (independent.high - independent.low)


def test_observations_without_a_judge_are_resampled_by_question_only():
    boot = TwoWayBootstrap(["q1", "q2", "q3", "q4"], [None, None, None, None])
    assert boot.units("judge") == 0 and boot.units("question") == 4
    estimate = boot.proportion(np.array([1.0, 0.0, 1.0, 1.0]))
    assert estimate.low < 0.75 < estimate.high


def test_a_paired_difference_is_narrower_than_the_same_groups_unpaired():
    rng = np.random.default_rng(5)
    questions = [f"q{i}" for i in range(80) for _ in range(2)]
    judges = ["j"] * 160
    difficulty = np.repeat(rng.normal(0, 2, 80), 2)
    arm_b = np.tile([False, True], 80)
    outcome = (rng.normal(0, 1, 160) + 0.3 * arm_b > difficulty).astype(float)
    paired = TwoWayBootstrap(questions, judges).difference(outcome, arm_b, ~arm_b)
    # The same outcomes with the B trials on questions of their own.
    unpaired_questions = [q + ("b" if b else "") for q, b in zip(questions, arm_b)]
    unpaired = TwoWayBootstrap(unpaired_questions, judges).difference(outcome, arm_b, ~arm_b)
    assert paired.value == unpaired.value
    assert (paired.high - paired.low) < 0.8 * (unpaired.high - unpaired.low)


def test_a_ratio_of_means_is_not_a_mean_of_ratios():
    words, seconds = np.array([100.0, 1000.0]), np.array([10.0, 400.0])
    estimate = TwoWayBootstrap(["q1", "q2"], ["a", "b"]).ratio(words, seconds)
    assert estimate.value == pytest.approx(1100 / 410)
    assert estimate.value != pytest.approx(np.mean(words / seconds))


def test_one_sided_tests_are_none_with_a_reason_when_nothing_varies():
    boot = TwoWayBootstrap(["q1", "q2", "q3"], ["a", "a", "a"])
    same = boot.difference(np.ones(3), np.array([True, True, False]), np.array([False, False, True]))
    test = greater_than("x", same, 0.0)
    assert test.p is None and "no variation" in test.reason and not test.rejects(0.05)
    empty = greater_than("y", inference.unknown(0, "no observations"), 0.5)
    assert empty.p is None and "no observations" in empty.reason


def test_a_share_above_chance_uses_the_score_test_at_the_effective_size():
    boot = TwoWayBootstrap([f"q{i}" for i in range(100)], [None] * 100)
    share = boot.proportion(np.array([1.0] * 62 + [0.0] * 38))
    test = greater_than("above chance", share, 0.5)
    z = (0.62 - 0.5) / np.sqrt(0.25 / share.n_effective)
    assert share.n_effective == pytest.approx(100, rel=0.2)
    assert test.p == pytest.approx(float(__import__("scipy").stats.t.sf(z, share.df)))
    assert test.rejects(0.05)
