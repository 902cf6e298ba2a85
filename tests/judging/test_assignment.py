"""Randomisation of trials: balanced, recorded, reproducible."""

import collections

import pytest

from judging.assignment import AssignmentError, QuestionInfo, plan_trials
from judging.models import Trial
from judging.services import LaunchError, experiment_launch

QUESTIONS = [QuestionInfo(id=i, n_choices=4, correct_index=i % 4) for i in range(1, 401)]


def test_it_balances_honest_side_and_first_speaker_over_many_trials():
    plans = plan_trials(QUESTIONS, [1, 2, 3, 4], num_questions=400, judgments_per_question=1, seed=7)
    honest = collections.Counter(p.honest_side for p in plans)
    first = collections.Counter(p.first_speaker for p in plans)
    assert honest == {"A": 200, "B": 200}
    assert first == {"A": 200, "B": 200}
    # Not a fixed alternation: the sides are shuffled.
    assert [p.honest_side for p in plans[:20]] != ["A", "B"] * 10
    # The correct answer sits at the honest side, the incorrect one at the other.
    for p in plans:
        q = QUESTIONS[p.question_id - 1]
        assert (p.answer_a_index if p.honest_side == "A" else p.answer_b_index) == q.correct_index
        assert (p.answer_b_index if p.honest_side == "A" else p.answer_a_index) != q.correct_index


def test_it_draws_every_incorrect_answer_and_spreads_load_evenly():
    plans = plan_trials(QUESTIONS, [1, 2, 3], num_questions=300, judgments_per_question=2, seed=3)
    wrong = collections.Counter(
        (p.answer_b_index if p.honest_side == "A" else p.answer_a_index) - QUESTIONS[p.question_id - 1].correct_index
        for p in plans
    )
    assert len(wrong) >= 3  # several different offsets: the wrong answer is drawn, not fixed
    load = collections.Counter(p.judge_id for p in plans)
    assert max(load.values()) - min(load.values()) <= 1
    per_question = collections.defaultdict(set)
    for p in plans:
        assert p.judge_id not in per_question[p.question_id]  # never the same judge twice on a question
        per_question[p.question_id].add(p.judge_id)
    for judge in (1, 2, 3):
        positions = sorted(p.queue_position for p in plans if p.judge_id == judge)
        assert positions == list(range(load[judge]))


def test_it_is_reproducible_from_the_seed():
    a = plan_trials(QUESTIONS, [1, 2], num_questions=50, judgments_per_question=1, seed=99)
    b = plan_trials(QUESTIONS, [1, 2], num_questions=50, judgments_per_question=1, seed=99)
    c = plan_trials(QUESTIONS, [1, 2], num_questions=50, judgments_per_question=1, seed=100)
    assert a == b and a != c


@pytest.mark.parametrize(
    "judges,n,k,match",
    [([], 10, 1, "no judges"), ([1], 10, 2, "at least that many"), ([1], 1000, 1, "has 400 questions")],
)
def test_it_refuses_impossible_assignments(judges, n, k, match):
    with pytest.raises(AssignmentError, match=match):
        plan_trials(QUESTIONS, judges, num_questions=n, judgments_per_question=k, seed=1)


def test_launch_records_the_randomisation_on_each_trial(make_model_config, make_experiment, judge, other_judge):
    experiment = make_experiment(
        make_model_config("m"), judges=[judge, other_judge], num_questions=10, judgments_per_question=2
    )
    assert experiment_launch(experiment=experiment) == 20
    trials = list(Trial.objects.filter(experiment=experiment))
    assert collections.Counter(t.honest_side for t in trials) == {"A": 10, "B": 10}
    for t in trials:
        correct = t.question.correct_index
        assert (t.answer_a_index if t.honest_side == "A" else t.answer_b_index) == correct
        assert t.turns.count() == 4  # 2 rounds x 2 debaters, all pending
    experiment.refresh_from_db()
    assert experiment.status == "launched"
    with pytest.raises(LaunchError, match="already been launched"):
        experiment_launch(experiment=experiment)
    assert Trial.objects.filter(experiment=experiment).count() == 20


def test_small_experiments_are_balanced_within_each_judge_and_arm_for_any_seed():
    questions = [QuestionInfo(id=i, n_choices=3, correct_index=i % 3) for i in range(1, 21)]
    for seed in range(300):
        plans = plan_trials(
            questions, [1, 2], num_questions=20, judgments_per_question=1, seed=seed, arms=["debate", "consultancy"]
        )
        for judge in (1, 2):
            for protocol in ("debate", "consultancy"):
                group = [p for p in plans if p.judge_id == judge and p.protocol == protocol]
                honest_a = sum(p.honest_side == "A" for p in group)
                first_a = sum(p.first_speaker == "A" for p in group)
                assert abs(2 * honest_a - len(group)) <= 2, (seed, judge, protocol)
                if protocol == "debate":
                    assert abs(2 * first_a - len(group)) <= 2, (seed, judge)
                    # honest side and first speaker are not confounded: both orders occur for each side
                    assert {(p.honest_side, p.first_speaker) for p in group} == {
                        ("A", "A"),
                        ("A", "B"),
                        ("B", "A"),
                        ("B", "B"),
                    }
                else:
                    honest = sum(p.speaker_side == p.honest_side for p in group)
                    assert abs(2 * honest - len(group)) <= 1, (seed, judge)


DESIGNS = [(60, 3, 6), (40, 2, 4), (30, 3, 9), (40, 1, 5), (12, 3, 3), (24, 4, 8)]
ARM_SETS = [
    ["debate", "consultancy", "naive"],
    ["naive", "assisted-honest", "assisted-misleading"],
    ["debate", "consultancy"],
]


@pytest.mark.unit
@pytest.mark.parametrize("arms", ARM_SETS, ids=lambda a: "+".join(a))
@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: "x".join(map(str, d)))
def test_arms_are_balanced_per_judge_and_per_question_over_many_seeds(arms, design):
    from judging.balance import balance_report
    from judging.protocols.registry import ARM_OF_CONDITION
    from tests.judging.test_balance import as_trials

    n_questions, judgments, n_judges = design
    for seed in range(8):
        plans = plan_trials(
            QUESTIONS,
            list(range(1, n_judges + 1)),
            num_questions=n_questions,
            judgments_per_question=judgments,
            seed=seed,
            arms=arms,
        )
        load = collections.Counter(p.judge_id for p in plans)
        assert max(load.values()) - min(load.values()) <= 1
        by_question = collections.defaultdict(list)
        for p in plans:
            by_question[p.question_id].append(ARM_OF_CONDITION[p.condition])
        for question_arms in by_question.values():
            # Distinct arms on a question; every arm when there are enough judgments.
            assert len(set(question_arms)) == min(len(question_arms), len(arms))
        unbalanced = [line for line in balance_report(as_trials(plans), arms) if not line.balanced]
        assert not [line for line in unbalanced if "impossible" not in line.achieved], (seed, unbalanced)


@pytest.mark.unit
def test_a_consultants_honesty_and_side_are_blocked_together():
    plans = plan_trials(QUESTIONS, [1, 2], num_questions=16, judgments_per_question=1, seed=4, arms=["consultancy"])
    for judge in (1, 2):
        mine = [p for p in plans if p.judge_id == judge]
        cells = collections.Counter((p.condition, p.speaker_side) for p in mine)
        # 8 trials: honest/dishonest x consultant at A/B, twice each.
        assert sorted(cells.values()) == [2, 2, 2, 2], cells


@pytest.mark.unit
def test_nobody_meets_a_question_they_have_seen():
    seen = {1: {q.id for q in QUESTIONS[:200]}, 2: {q.id for q in QUESTIONS[100:300]}}
    plans = plan_trials(QUESTIONS, [1, 2, 3], num_questions=150, judgments_per_question=1, seed=2, seen=seen)
    assert all(p.question_id not in seen.get(p.judge_id, set()) for p in plans)
    with pytest.raises(AssignmentError, match="only 399 questions of the set have 2 judge"):
        plan_trials(QUESTIONS, [1, 2], num_questions=400, judgments_per_question=2, seed=2, seen={1: {QUESTIONS[0].id}})
