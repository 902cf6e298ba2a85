"""Calibration: hand-checked figures, the documented pandas recomputation, and the debiased ECE² on
simulated judges whose calibration is known."""

import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from judging.assignment import QuestionInfo, plan_trials
from judging.scoring import LOG_FLOOR, score
from results import analysis
from results.calibration import calibration, calibration_by_judge, debiased_ece2
from results.inference import TwoWayBootstrap

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"
# Bin midpoints. The simulated judges state probabilities uniformly on [0.5, 1], so each bin holds a
# fifth of them and its mean stated probability is its midpoint.
MIDPOINTS = np.array([0.55, 0.65, 0.75, 0.85, 0.95])


def row(correct, p, judge="j1", question="q1"):
    return {"verdict": "A", "correct": correct, "probability": p, "judge": judge, "question_id": question}


def test_figures_match_a_hand_computed_case():
    # Stated 0.6 (right), 0.9 (right), 0.9 (wrong), 1.0 (wrong): bins [0.6, 0.7) and [0.9, 1.0].
    c = calibration(
        [row(True, 0.6, question="a"), row(True, 0.9, question="b"), row(False, 0.9, question="c")]
        + [
            row(False, 1.0, question="d"),
            {"verdict": None, "probability": None, "correct": None, "judge": "", "question_id": "e"},
        ]
    )
    assert c["n"] == 4 and [b["n"] for b in c["bins"]] == [1, 3]
    # The probability given to the correct answer: 0.6, 0.9, 0.1, 0.0; two-class Brier is 2 (1 - q)^2.
    assert c["brier"].value == pytest.approx(2 * (0.4**2 + 0.1**2 + 0.9**2 + 1.0**2) / 4)
    # The floor judges are scored with: a certain mistake scores ln(0.001), as on the judge's page.
    assert c["log_score"].value == pytest.approx((math.log(0.6) + math.log(0.9) + math.log(0.1) + math.log(0.001)) / 4)
    assert score("log", 0.0) == pytest.approx(math.log(LOG_FLOOR)) and c["log_floor"] == LOG_FLOOR
    # ECE²: the one-verdict bin counts 0; the other has acc 1/3, conf 2.8/3, noise (1/3)(2/3)/2.
    assert c["ece2"].value == pytest.approx(3 / 4 * ((1 / 3 - 2.8 / 3) ** 2 - (1 / 3) * (2 / 3) / 2))
    assert c["high_confidence_accuracy"].value == 0.0 and c["high_confidence_accuracy"].n == 1
    for b in c["bins"]:
        assert b["accuracy_low"] <= b["accuracy"] <= b["accuracy_high"]
    assert calibration([]) == {"n": 0}
    # Always wrong at 0.55 to 0.95, one verdict per bin: formerly an ECE² of exactly 0.
    spread = calibration([row(False, p) for p in (0.55, 0.65, 0.75, 0.85, 0.95)])
    assert not spread["ece2"].estimable and spread["brier"].value > 1
    assert analysis.calibration is calibration and analysis.calibration_by_judge is calibration_by_judge


def test_one_verdict_gets_figures_but_no_interval():
    c = calibration([row(True, 0.8)])
    # No bin holds two verdicts: no ECE² at all, rather than a 0 that reads as perfect calibration.
    assert not c["ece2"].estimable and c["ece2"].method == "no probability bin holds two verdicts"
    assert c["brier"].value == pytest.approx(2 * 0.2**2) and c["log_score"].value == pytest.approx(math.log(0.8))


def test_scores_get_an_interval_only_from_five_of_the_rarer_outcome():
    right = [row(True, 0.6 + 0.03 * k, question=f"r{k}") for k in range(12)]
    wrong = [row(False, 0.6 + 0.05 * k, question=f"w{k}") for k in range(5)]
    # Four wrong verdicts: the spread of a score rests on them, too few to estimate it.
    few = calibration(right + wrong[:4])
    for name in ("brier", "log_score"):
        assert (
            few[name].estimable and not few[name].has_interval and few[name].method == "no interval: 4 wrong verdicts"
        )
        assert calibration(right + wrong)[name].has_interval
    # Mostly wrong: the right verdicts are the rarer outcome.
    mostly_wrong = calibration([dict(r, correct=not r["correct"]) for r in right + wrong[:1]])
    assert mostly_wrong["brier"].method == "no interval: 1 right verdict"


def simulated_rows(seed, *, questions=60, judgments=3, judges=6, slopes=(0.4, 0.9), question_effect=0.05):
    """A study laid out by the platform's planner, judged by judges with known calibration.

    A judge states p ~ U(0.5, 1) and is right with probability 0.5 + slope_judge (p - 0.5) + effect_question:
    slope 1 is calibrated, below 1 overconfident; questions are easier or harder by ±``question_effect``.
    """
    rng = np.random.default_rng(seed)
    plans = plan_trials(
        [QuestionInfo(id=q, n_choices=2, correct_index=0) for q in range(questions)],
        list(range(judges)),
        num_questions=questions,
        judgments_per_question=judgments,
        seed=seed,
    )
    slope = rng.uniform(*slopes, judges)
    effect = rng.choice([-question_effect, question_effect], questions)
    rows = []
    for plan in plans:
        stated = rng.uniform(0.5, 1.0)
        chance = 0.5 + slope[plan.judge_id] * (stated - 0.5) + effect[plan.question_id]
        rows.append(row(bool(rng.random() < chance), stated, f"judge{plan.judge_id}", f"q{plan.question_id}"))
    return rows


def true_ece2(mean_slope):
    """Population ECE² over the bins: in each, accuracy - stated = (slope - 1)(midpoint - 0.5) on average."""
    return float(np.mean(((1 - mean_slope) * (MIDPOINTS - 0.5)) ** 2))


def ece2_of(rows, resamples):
    stated = [r["probability"] for r in rows]
    correct = [1.0 if r["correct"] else 0.0 for r in rows]
    bootstrap = TwoWayBootstrap.of_rows(rows, resamples=resamples)
    return debiased_ece2(stated, correct, bootstrap)


def test_a_perfectly_calibrated_judge_averages_zero_at_20_verdicts():
    rng = np.random.default_rng(20)
    values = []
    for _ in range(1000):
        stated = rng.uniform(0.5, 1.0, 20)
        correct = (rng.random(20) < stated).astype(float)
        values.append(debiased_ece2(stated, correct, TwoWayBootstrap(range(20), ["j"] * 20, resamples=10)).value)
    # Monte Carlo standard error about 0.001; the plug-in ECE of these judges averages about 0.15 (ECE² ~ 0.03).
    assert abs(np.mean(values)) < 0.003


@pytest.mark.parametrize(
    "design,slopes",
    [
        ({"questions": 60, "judgments": 1, "judges": 1, "question_effect": 0.0}, (0.6, 0.6)),  # one judge
        ({"questions": 60, "judgments": 3, "judges": 6}, (0.4, 0.9)),  # judges differ, questions differ
        ({"questions": 60, "judgments": 3, "judges": 6, "question_effect": 0.0}, (1.0, 1.0)),  # calibrated
    ],
)
def test_the_interval_covers_the_true_ece2(design, slopes):
    truth = true_ece2(np.mean(slopes))
    covered, values = [], []
    for seed in range(200):
        estimate = ece2_of(simulated_rows(seed, slopes=slopes, **design), resamples=300)
        covered.append(estimate.low <= truth <= estimate.high)
        values.append(estimate.value)
    assert np.mean(covered) >= 0.93
    # Unbiased: the average estimate within 3 Monte Carlo standard errors of the truth.
    assert abs(np.mean(values) - truth) < 3 * np.std(values) / math.sqrt(len(values)) + 1e-4


def documented_recomputation():
    """The python block of the Calibration paragraph of docs/analysis.md."""
    text = DOCS.read_text()
    paragraph = text[text.index("**Calibration**") :]
    return re.search(r"```python\n(.*?)```", paragraph, re.S).group(1)


def test_the_documented_pandas_recomputation_gives_the_pages_numbers():
    rows = simulated_rows(3, questions=30, judges=4)
    rows[0]["probability"], rows[0]["correct"] = 1.0, False  # a certain mistake: the log floor matters
    csv = io.StringIO()
    pd.DataFrame(rows).to_csv(csv, index=False)
    j = pd.read_csv(io.StringIO(csv.getvalue()))
    j["correct"] = j["correct"].astype(str).eq("True").astype(float)  # as the top of docs/analysis.md reads it
    namespace = {"j": j, "np": np, "pd": pd}
    exec(documented_recomputation(), namespace)

    def assert_same(documented, page):
        assert documented["n"] == page["n"]
        assert documented["ece2_debiased"] == pytest.approx(page["ece2"].value, abs=1e-12)
        assert documented["brier_two_class"] == pytest.approx(page["brier"].value)
        assert documented["log_score"] == pytest.approx(page["log_score"].value)
        high = page["high_confidence_accuracy"]
        assert (math.isnan(documented["accuracy_at_95"]) and high is None) or documented["accuracy_at_95"] == high.value

    assert_same(namespace["all_judges"], calibration(rows))
    by_judge = calibration_by_judge(rows)
    assert sorted(namespace["per_judge"].index) == sorted(by_judge)
    for judge, page in by_judge.items():
        assert_same(namespace["per_judge"].loc[judge], page)
