"""Accuracy levels, differences and declared tests: hand-checkable cases and data that cannot support them."""

import math

import numpy as np
import pytest

from results import accuracy
from results.simulation import Design, Truth, simulate_study

pytestmark = pytest.mark.unit


def row(correct, *, condition="debate", protocol="debate", judge="j1", question="q1", honest="A", first="A"):
    return {
        "verdict": honest if correct else ("B" if honest == "A" else "A"),
        "correct": correct,
        "probability": 0.8,
        "judge": judge,
        "question_id": question,
        "honest_side": honest,
        "first_speaker": first,
        "turn_style": "sequential",
        "protocol": protocol,
        "condition": condition,
        "model_settings": {"config_name": "cfg"},
    }


def test_levels_by_arm_and_condition_and_their_differences():
    rows = [row(c, judge=f"j{k % 3}", question=f"q{k}") for k, c in enumerate([1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0])] + [
        row(c, condition=cond, protocol="consultancy", judge=f"j{k % 3}", question=f"q{k}")
        for k, (c, cond) in enumerate([(1, "honest consultant"), (0, "dishonest consultant")] * 6)
    ]
    data = accuracy.Judged(rows + [{"verdict": None, "protocol": "debate"}])
    assert len(data) == 24
    levels = accuracy.by_arm(data)
    assert list(levels) == ["debate", "consultancy"]
    assert levels["debate"].value == pytest.approx(9 / 12) and levels["consultancy"].value == 0.5
    conditions = accuracy.by_condition(data)
    assert conditions["consultancy: honest consultant"].value == 1.0
    assert conditions["consultancy: dishonest consultant"].value == 0.0
    ((label, difference),) = accuracy.arm_differences(data).items()
    assert label == "debate − consultancy" and difference.value == pytest.approx(0.25)
    assert difference.low < 0.25 < difference.high


def test_debate_splits_compare_positions_and_speaking_orders():
    rows = [row(1, honest="A", question=f"a{k}", judge=f"j{k % 4}") for k in range(8)]
    rows += [row(k % 2, honest="B", first="A", question=f"b{k}", judge=f"j{k % 4}") for k in range(8)]
    splits = {s.title: s for s in accuracy.debate_splits(accuracy.Judged(rows))}
    position = splits["Honest debater's answer position"]
    assert position.levels["honest at A"].value == 1.0 and position.levels["honest at B"].value == 0.5
    assert position.differences["honest at B − honest at A"].value == pytest.approx(-0.5)
    order = splits["Speaking order (sequential debates)"]
    assert set(order.levels) == {"honest speaks first", "honest speaks second"}
    assert not any(title.startswith("Debater pairing") for title in splits)  # one configuration: nothing to compare


def test_debates_split_by_the_pairing_of_configurations_in_a_line_up():
    rows = []
    for k in range(16):
        honest, adversarial = ("strong", "weak") if k % 2 else ("weak", "strong")
        r = row(1 if honest == "strong" else k % 4 == 0, question=f"q{k}", judge=f"j{k % 4}")
        rows.append(r | {"honest_config": honest, "adversarial_config": adversarial})
    [pairing] = [s for s in accuracy.debate_splits(accuracy.Judged(rows)) if s.title.startswith("Debater pairing")]
    assert pairing.levels["strong (honest) against weak"].value == 1.0
    assert pairing.levels["weak (honest) against strong"].value == 0.5


def test_a_primary_family_is_holm_adjusted_and_waits_for_the_planned_size():
    design = Design(arms=("debate", "consultancy"), num_questions=60, judgments_per_question=2, judges=4)
    truth = Truth(accuracy={"debate": 0.85, "honest consultant": 0.8, "dishonest consultant": 0.4})
    data = accuracy.Judged(simulate_study(design, truth, seed=3)[0])
    keys = ["above-chance:debate", "difference:debate:consultancy"]
    plan = accuracy.Plan("e", tuple(keys), alpha=0.05, margin=0.05, planned_judgments=len(data))
    chance, difference = accuracy.primary_results(data, plan)
    assert chance.outcome == "supported" and chance.p < 0.01
    assert difference.p_adjusted == pytest.approx(min(1, max(2 * min(chance.p, difference.p), difference.p)))
    early = accuracy.primary_results(data, plan.__class__(**{**plan.__dict__, "planned_judgments": len(data) + 1}))
    assert {d.outcome for d in early} == {"not enough data"}
    assert early[0].reason == f"{len(data)} of {len(data) + 1} planned verdicts"


@pytest.mark.parametrize(
    "rows,expected",
    [
        ([], "no observations"),
        ([row(1), row(0), row(1)] * 20, "no observations"),  # one judge, one question, no consultancy
        ([row(1, judge=f"j{k}", question=f"q{k}") for k in range(6)], "no observations"),  # no consultancy arm
    ],
    ids=["nothing judged", "one judge and one question", "a missing arm"],
)
def test_data_that_cannot_support_a_test_get_a_reason_never_nan_or_a_pass(rows, expected):
    data = accuracy.Judged(rows)
    decisions = accuracy.decide(
        ["difference:debate:consultancy", "sandwich-robust"], data, alpha=0.05, margin=0.05, planned=0
    )
    if len({r["question_id"] for r in rows}) == 1:
        # Sixty verdicts on one question show debaters winning there, not that they win in general.
        (one_question,) = accuracy.decide(["above-chance:debate"], data, alpha=0.05, margin=0.05, planned=0)
        assert one_question.outcome == "cannot be tested" and one_question.reason == "all verdicts are on one question"
    for decision in decisions:
        assert decision.outcome == "cannot be tested" and not decision.supported
        assert decision.p is None and decision.p_adjusted is None
    assert expected in decisions[0].reason
    for estimate in accuracy.by_arm(data).values():
        assert math.isfinite(estimate.value) and math.isfinite(estimate.low) and math.isfinite(estimate.high)
    assert accuracy.sandwich(data, alpha=0.05, margin=0.05) is None


def test_the_model_alone_is_clustered_by_question_only():
    model = [{"question_id": f"q{k}", "correct": k % 3 != 0} for k in range(30)]
    data = accuracy.Judged([], model)
    estimate = data.share(data.model_alone())
    assert estimate.value == pytest.approx(20 / 30) and estimate.n == 30
    assert estimate.low < 20 / 30 < estimate.high
    # One answer per question: no clustering, only the small-sample factor 30 / 29 of 30 clusters.
    assert np.isclose(estimate.n_effective, 29)


def test_primary_decisions_use_the_first_planned_verdicts_only():
    design = Design(num_questions=40, judgments_per_question=2, judges=4)
    rows = simulate_study(design, Truth(accuracy={"debate": 0.8}), seed=8)[0]
    for k, r in enumerate(rows):
        r["verdict_at"] = f"2026-11-26T10:{k // 60:02d}:{k % 60:02d}"
    # Later verdicts, all wrong, must not move a decision taken at the planned size.
    late = [dict(r, verdict_at="2026-11-27T00:00:00", correct=False, trial_id=-k) for k, r in enumerate(rows)]
    plan = accuracy.Plan("e", ("above-chance:debate",), alpha=0.05, margin=0.05, planned_judgments=len(rows))
    (on_time,) = accuracy.primary_results(accuracy.Judged(rows), plan)
    (with_late,) = accuracy.primary_results(accuracy.Judged(late + rows), plan)
    assert on_time.outcome == with_late.outcome == "supported" and on_time.p == with_late.p


def test_an_all_correct_cell_counts_its_questions_not_its_verdicts():
    rows = [row(1, judge=f"j{k}", question=f"q{k % 3}") for k in range(30)]  # 3 questions x 10 judges
    share = accuracy.Judged(rows).share(np.ones(30, bool))
    assert share.value == 1.0 and share.n_effective == 3 and share.low < 0.6
    (test,) = accuracy.decide(["above-chance:debate"], accuracy.Judged(rows), alpha=0.05, margin=0.05, planned=30)
    assert test.outcome == "not supported"


def test_a_comparison_that_cannot_be_tested_still_counts_in_the_holm_family():
    design = Design(arms=("debate", "consultancy"), num_questions=40, judgments_per_question=2, judges=4)
    truth = Truth(accuracy={"debate": 0.8, "honest consultant": 0.8, "dishonest consultant": 0.5})
    data = accuracy.Judged(simulate_study(design, truth, seed=4)[0])
    keys = ["above-chance:debate", "sandwich-helpful"]  # no sandwiching here
    chance, helpful = accuracy.decide(keys, data, alpha=0.05, margin=0.05, planned=len(data))
    assert helpful.outcome == "cannot be tested" and helpful.p_adjusted is None
    assert chance.p_adjusted == pytest.approx(min(1.0, 2 * chance.p))


def test_two_or_three_judges_decide_nothing():
    design = Design(num_questions=60, judgments_per_question=3, judges=3)
    data = accuracy.Judged(simulate_study(design, Truth(accuracy={"debate": 0.9}), seed=2)[0])
    (decision,) = accuracy.decide(["above-chance:debate"], data, alpha=0.05, margin=0.05, planned=len(data))
    assert decision.outcome == "cannot be tested" and "only 3 judges" in decision.reason
    assert decision.p is not None  # the figure is still shown
    # The page's exploratory "honest debaters win more than half" is gated alike: no p-value, the reason.
    wins = accuracy.honest_wins_test(data)
    assert wins.p is None and "only 3 judges" in wins.reason and wins.estimate.value > 0.5


def test_each_tests_shown_bound_is_the_one_sided_bound_it_inverts():
    """A two-sided 95% interval can hold the null while a one-sided test at 5% rejects it; the bound shown beside
    a decision is one-sided at 1 - α, so it is above the null exactly when that test's own p is at most α."""
    from judging.analysis_plan import available_comparisons

    arms = ("debate", "consultancy", "naive", "assisted-honest", "assisted-misleading")
    keys = [c.key for c in available_comparisons(arms)]
    truth = Truth(
        accuracy={
            "debate": 0.72,
            "honest consultant": 0.7,
            "dishonest consultant": 0.5,
            "naive": 0.62,
            "assisted-honest": 0.7,
            "assisted-misleading": 0.6,
        },
        model_accuracy=0.62,
    )
    tested, two_sided_disagreed = 0, 0
    for seed in range(6):
        rows, model_rows = simulate_study(Design(arms=arms, num_questions=30, judges=10), truth, seed=seed)
        data = accuracy.Judged(rows, model_rows)
        for alpha in (0.05, 0.2):
            for decision in accuracy.decide(keys, data, alpha=alpha, margin=0.05, planned=0):
                if decision.supported:
                    assert all(bound > test.null for test, bound in decision.rows)
                for test, bound in decision.rows:
                    if test.p is None:
                        assert bound is None
                        continue
                    tested += 1
                    assert (bound > test.null) == (test.p < alpha), (test.name, test.p, bound, test.null)
                    two_sided_disagreed += (test.estimate.low <= test.null) == (test.p < alpha)
    assert tested > 100
    assert two_sided_disagreed > 0  # the 95% interval would have contradicted some of these tests


def test_the_judge_and_question_gates_count_the_verdicts_each_comparison_rests_on():
    debate = [row(k % 4 != 0, judge=f"j{k % 8}", question=f"q{k % 20}") for k in range(80)]
    # Consultancy judged by two of the eight judges only: its own test generalises to no other judge.
    consultancy = [
        row(k % 3 != 0, condition="honest consultant", protocol="consultancy", judge=f"j{k % 2}", question=f"q{k}")
        for k in range(40)
    ]
    data = accuracy.Judged(debate + consultancy)
    by_debate, by_consultancy = accuracy.decide(
        ["above-chance:debate", "above-chance:consultancy"], data, alpha=0.05, margin=0.05, planned=0
    )
    assert by_debate.outcome in ("supported", "not supported") and by_debate.p is not None  # eight judges: tested
    assert by_consultancy.outcome == "cannot be tested" and by_consultancy.reason.startswith("only 2 judges")
    # Judged by one of them: tested, as a one-judge experiment is, and saying what it generalises over.
    alone = [r | {"judge": "j0"} for r in consultancy]
    (by_one,) = accuracy.decide(
        ["above-chance:consultancy"], accuracy.Judged(debate + alone), alpha=0.05, margin=0.05, planned=0
    )
    assert by_one.p is not None and by_one.reason == accuracy.ONE_JUDGE
