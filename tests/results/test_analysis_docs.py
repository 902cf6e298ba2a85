"""docs/analysis.md recomputes the page's accuracy figures and tests from the exports: checked here."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from results import accuracy
from results.simulation import SANDWICH_DESIGN, Design, Truth, simulate_study

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"


def documented_code() -> str:
    text = DOCS.read_text()
    section = text[text.index("## The unit of analysis is clustered") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_documented(tmp_path, monkeypatch, rows, model_rows) -> dict:
    pd.DataFrame(rows).to_csv(tmp_path / "trials.csv", index=False)
    pd.DataFrame(model_rows, columns=["question_id", "correct"]).to_csv(tmp_path / "model_answers.csv", index=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(documented_code(), namespace)
    return namespace


def same_share(documented, page):
    p, low, high, n, n_eff, df = documented
    assert (p, n) == (pytest.approx(page.value), page.n)
    assert (low, high, n_eff, df) == (
        pytest.approx(page.low, abs=1e-9),
        pytest.approx(page.high, abs=1e-9),
        pytest.approx(page.n_effective, rel=1e-9),
        pytest.approx(page.df, rel=1e-9),
    )


def same_difference(documented, page):
    value, low, high, _, df = documented
    assert (value, low, high, df) == (
        pytest.approx(page.value, abs=1e-12),
        pytest.approx(page.low, abs=1e-9),
        pytest.approx(page.high, abs=1e-9),
        pytest.approx(page.df, rel=1e-9),
    )


def test_sandwiching_figures_and_tests_recomputed_from_the_exports(tmp_path, monkeypatch):
    truth = Truth(accuracy={"naive": 0.6, "assisted-honest": 0.75, "assisted-misleading": 0.55}, model_accuracy=0.6)
    rows, model_rows = simulate_study(SANDWICH_DESIGN, truth, seed=11)
    rows[3]["verdict"] = ""  # an unjudged trial is not in the analysis
    ns = run_documented(tmp_path, monkeypatch, rows, model_rows)
    data = accuracy.Judged(rows, model_rows)
    arm = ns["arm"]
    for name, estimate in accuracy.by_arm(data).items():
        same_share(ns["share"](arm == name), estimate)
    same_share(ns["share"](arm == "model alone"), data.share(data.model_alone()))
    for label, estimate in accuracy.arm_differences(data).items():
        a, b = label.split(" − ")
        same_difference(ns["difference"](arm == a, arm == b), estimate)

    helpful, robust = accuracy.sandwich(data, alpha=0.05, margin=0.05).decisions
    documented_helpful = max(
        ns["p_difference_above"](arm == "assisted-honest", arm == "naive"),
        ns["p_difference_above"](arm == "assisted-honest", arm == "model alone"),
    )
    assert documented_helpful == pytest.approx(helpful.p, rel=1e-9)
    documented_robust = ns["p_difference_above"](arm == "assisted-misleading", arm == "naive", -0.05)
    assert documented_robust == pytest.approx(robust.p, rel=1e-9)


def test_debate_and_consultancy_figures_recomputed_from_the_exports(tmp_path, monkeypatch):
    design = Design(arms=("debate", "consultancy"), num_questions=30, judgments_per_question=2, judges=4)
    truth = Truth(accuracy={"debate": 0.7, "honest consultant": 0.8, "dishonest consultant": 0.45})
    rows, _ = simulate_study(design, truth, seed=5)
    ns = run_documented(tmp_path, monkeypatch, rows, [])
    data = accuracy.Judged(rows)
    arm, condition, side = ns["arm"], ns["condition"], ns["side"]
    for label, estimate in accuracy.by_condition(data).items():
        same_share(ns["share"](condition == label.split(": ")[1]), estimate)
    test = accuracy.honest_wins_test(data)
    assert ns["p_share_above"](arm == "debate") == pytest.approx(test.p, rel=1e-9)
    position = next(s for s in accuracy.debate_splits(data) if s.title.startswith("Honest debater's answer"))
    debate = arm == "debate"
    same_share(ns["share"](debate & (side == "A")), position.levels["honest at A"])
    same_difference(ns["difference"](debate & (side == "B"), debate & (side == "A")), *position.differences.values())

    # The primary family: Holm across the declared comparisons, as the documented statsmodels call does.
    from statsmodels.stats.multitest import multipletests

    keys = ["above-chance:debate", "difference:debate:consultancy"]
    decisions = accuracy.decide(keys, data, alpha=0.05, margin=0.05, planned=len(data))
    documented = [ns["p_share_above"](debate), ns["p_difference_above"](debate, arm == "consultancy")]
    assert [d.p for d in decisions] == pytest.approx(documented, rel=1e-9)
    assert [d.p_adjusted for d in decisions] == pytest.approx(list(multipletests(documented, method="holm")[1]))
    assert np.isfinite(documented).all()


def test_model_alone_ties_count_as_half_right_in_the_documented_code(tmp_path, monkeypatch):
    truth = Truth(accuracy={"naive": 0.6, "assisted-honest": 0.75, "assisted-misleading": 0.55}, model_accuracy=0.6)
    rows, model_rows = simulate_study(SANDWICH_DESIGN, truth, seed=12)
    for m in model_rows[::3]:
        m["correct"] = None  # a tie: both answer orders averaged to 50% (an empty cell in the export)
    ns = run_documented(tmp_path, monkeypatch, rows, model_rows)
    data = accuracy.Judged(rows, model_rows)
    arm = ns["arm"]
    same_share(ns["share"](arm == "model alone"), data.share(data.model_alone()))
    helpful = accuracy.sandwich(data, alpha=0.05, margin=0.05).decisions[0]
    documented = ns["p_difference_above"](arm == "assisted-honest", arm == "model alone")
    assert documented == pytest.approx(helpful.tests[1].p, rel=1e-9)


def test_the_ladders_self_play_accuracy_recomputed_from_the_exports(tmp_path, monkeypatch):
    from results.analysis import debater_ratings
    from results.simulation import LADDER_SCENARIOS

    scenario = LADDER_SCENARIOS[0]  # a round-robin of four debaters: self-play cells and cross-play
    rows, _ = simulate_study(scenario.design, scenario.truth, seed=7)
    ns = run_documented(tmp_path, monkeypatch, rows, [])
    debate, honest, adversarial = ns["arm"] == "debate", ns["honest_config"], ns["adversarial_config"]
    ladder = debater_ratings(rows, resamples=100)["ladder"]
    assert len(ladder) == 4
    for rung in ladder:
        same_share(ns["share"](debate & (honest == rung.name) & (adversarial == rung.name)), rung.self_play)
        assert rung.debates == int((debate & ((honest == rung.name) | (adversarial == rung.name))).sum())
