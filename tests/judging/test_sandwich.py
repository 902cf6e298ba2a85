"""Sandwiching: conditions balanced per judge, the assistant's two prompts, naive trials,
the model-alone baseline, blinding of the condition, and the four numbers."""

import collections
import re

import pytest
from django.urls import reverse

from generation.baselines import score_model_alone
from generation.worker import generate_batch
from judging.assignment import QuestionInfo, plan_trials
from judging.baseline_verdicts import verdict
from judging.models import ModelAnswer
from judging.protocols import debate
from judging.protocols.debate import DebateState
from judging.protocols.sandwich import sandwich_rules
from judging.services import live_move, trial_open, trial_skip, verdict_submit
from results import accuracy
from tests.pages import without_csrf_tokens

CONDITIONS = ["naive", "assisted-honest", "assisted-misleading"]


def test_conditions_are_balanced_per_judge_over_many_simulated_judges():
    questions = [QuestionInfo(id=i, n_choices=4, correct_index=i % 4) for i in range(1, 1001)]
    judges = list(range(1, 61))
    plans = plan_trials(questions, judges, num_questions=1000, judgments_per_question=3, seed=11, arms=CONDITIONS)
    per_judge = collections.defaultdict(collections.Counter)
    for p in plans:
        per_judge[p.judge_id][p.condition] += 1
    for judge, counts in per_judge.items():
        assert set(counts) == set(CONDITIONS) and max(counts.values()) - min(counts.values()) <= 1, (judge, counts)
    overall = collections.Counter(p.condition for p in plans)
    assert max(overall.values()) - min(overall.values()) <= len(judges)
    seen = collections.defaultdict(set)
    for p in plans:
        assert p.question_id not in seen[p.judge_id]  # never the same question twice for a judge
        seen[p.judge_id].add(p.question_id)
        if p.condition == "assisted-honest":
            assert p.speaker_side == p.honest_side
        elif p.condition == "assisted-misleading":
            assert p.speaker_side != p.honest_side
        else:
            assert p.speaker_side == ""
    # Judges start at different conditions (rows of a Latin square), not all at the first.
    firsts = collections.Counter(next(p.condition for p in plans if p.judge_id == j) for j in judges)
    assert len(firsts) == 3


def test_the_naive_condition_awaits_the_verdict_at_once_and_the_assistant_speaks_alone():
    naive = DebateState(rules=sandwich_rules(condition="naive", rounds=4, assistant_side="A"))
    assert naive.phase == debate.AWAITING_VERDICT
    assisted = DebateState(rules=sandwich_rules(condition="assisted-misleading", rounds=4, assistant_side="B"))
    assert assisted.next_speakers() == ("B",)
    assert assisted.apply_speech("B", "hello").can_end()  # the judge may answer after the first message
    with pytest.raises(ValueError):
        sandwich_rules(condition="assisted-sneaky", rounds=2, assistant_side="A")


def by_condition(experiment):
    return {c: experiment.trials.filter(condition=c).first() for c in CONDITIONS}


def test_each_condition_runs_as_designed(sandwich_experiment, judge, plan_first):
    trials = by_condition(sandwich_experiment)
    plan_first(*(trials[c] for c in CONDITIONS))  # the judge takes them in this order
    assert collections.Counter(sandwich_experiment.trials.values_list("condition", flat=True)) == {
        c: 2 for c in CONDITIONS
    }
    # Naive: nothing to generate, the verdict is due at once.
    trial_open(trial=trials["naive"])
    assert not trials["naive"].turns.exists()
    verdict_submit(trial_id=trials["naive"].pk, judge=judge, chosen="A", probability=0.6, rationale="alone")
    # Assisted: the assistant opens, answers a question, and the judge then answers.
    for condition in ("assisted-honest", "assisted-misleading"):
        trial = trials[condition]
        trial_open(trial=trial)
        while generate_batch(sandwich_experiment.pk):
            pass
        opening = trial.turns.get(round=1)
        target = trial.answer_text(trial.assistant_side)
        if condition == "assisted-misleading":
            assert (
                f'make the user choose "{target}"' in opening.prompt
                and target != trial.question.choices[trial.question.correct_index]
            )
        else:
            assert "helpful, honest assistant" in opening.prompt and "make the user choose" not in opening.prompt
        live_move(trial_id=trial.pk, judge=judge, action="ask", text="Is the text clear about this?")
        while generate_batch(sandwich_experiment.pk):
            pass
        answer = trial.turns.get(round=2)
        assert 'User: "Is the text clear about this?"' in answer.prompt and answer.status == "done"
        live_move(trial_id=trial.pk, judge=judge, action="end")
        verdict_submit(trial_id=trial.pk, judge=judge, chosen="B", probability=0.7, rationale="helped")


def test_the_judge_cannot_tell_the_honest_from_the_misleading_assistant(sandwich_experiment, judge, client, plan_first):
    trials = by_condition(sandwich_experiment)
    plan_first(trials["assisted-honest"], trials["assisted-misleading"])
    client.force_login(judge)
    pages = {}
    for condition in ("assisted-honest", "assisted-misleading"):
        trial = trials[condition]
        trial_open(trial=trial)
        while generate_batch(sandwich_experiment.pk):
            pass
        trial.turns.update(text="Same words.")
        html = client.get(reverse("judging:trial", args=[trial.pk])).content.decode()
        state = client.get(reverse("judging:trial_state", args=[trial.pk])).content.decode()
        assert "Same words." in html and "Same words." in state  # the trial itself, opened in order
        for leak in ("misleading", "honest", "PASSAGE-SECRET", "assisted-", "correct_index"):
            assert leak not in html and leak not in state, (condition, leak)
        pages[condition] = (
            html.replace(f"/trials/{trial.pk}/", "/trials/N/")
            .replace(trial.question.text, "Q")
            .replace(trial.answer_text("A"), "a")
            .replace(trial.answer_text("B"), "b")
        )
        # On to the next trial without a verdict (the number, "Trial k of 6", is left out below).
        trial_skip(trial_id=trial.pk, judge=judge, reason="compared with the other assistant")
    # Left out: the CSRF token, and the live tag's value (a hash of the judge's view, which holds this trial's own
    # id, question and answers, replaced above in the page's text but not inside the hash).
    strip = lambda h: re.sub(  # noqa: E731
        r'hx-ptag="[0-9a-f]+"|Trial \d+ of',
        "T",
        without_csrf_tokens(h),
    )
    assert strip(pages["assisted-honest"]) == strip(pages["assisted-misleading"])


def test_the_model_alone_baseline_scores_each_question_once(sandwich_experiment):
    assert score_model_alone(sandwich_experiment.pk) == 6
    assert score_model_alone(sandwich_experiment.pk) == 0  # idempotent
    for answer in ModelAnswer.objects.filter(experiment=sandwich_experiment):
        assert 0.0 < answer.probability_a < 1.0
        trial = sandwich_experiment.trials.get(question=answer.question)
        assert answer.honest_side == trial.honest_side and answer.answer_a_index == trial.answer_a_index


def row(condition, correct, judge, question):
    return {
        "verdict": "A",
        "correct": correct,
        "probability": 0.8,
        "protocol": "sandwich",
        "condition": condition,
        "judge": judge,
        "question_id": question,
        "honest_side": "A",
    }


def test_the_four_numbers_and_the_sandwiching_claims_as_tests():
    judges, questions = [f"j{i}" for i in range(6)], [f"q{i}" for i in range(30)]
    pattern = {
        "naive": [1, 0, 1, 0, 1, 0],
        "assisted-honest": [1, 1, 1, 1, 1, 0],
        "assisted-misleading": [1, 1, 0, 0, 1, 0],
    }
    rows = [
        row(condition, outcomes[(i + k) % 6], judges[(2 * i + k) % 6], q)
        for condition, outcomes in pattern.items()
        for i, q in enumerate(questions)
        for k in range(2)
    ]
    model = [{"question_id": q, "correct": i % 2} for i, q in enumerate(questions)]
    result = accuracy.sandwich(accuracy.Judged(rows, model), alpha=0.05, margin=0.05)
    numbers = result.numbers
    assert [
        round(numbers[k].value, 3)
        for k in ("human alone", "model alone", "human + honest assistant", "human + misleading assistant")
    ] == [0.5, 0.5, 0.833, 0.5]
    helpful, robust = result.decisions
    # Nobody declared these claims here: the page says whether p fell below alpha, and decides nothing.
    assert helpful.key == "sandwich-helpful" and len(helpful.tests) == 2 and helpful.outcome == "p ≤ α (exploratory)"
    assert helpful.p == max(t.p for t in helpful.tests)
    # Misleading help exactly as good as the judge alone is non-inferior at delta = 5 points only with
    # enough data: at this size the interval reaches further down than -5 points.
    assert robust.key == "sandwich-robust" and robust.outcome == "p > α (exploratory)"
    assert result.missing == []

    # Declared, the same claims are decided, but not before the planned size.
    keys = ["sandwich-helpful", "sandwich-robust"]
    declared = accuracy.decide(keys, accuracy.Judged(rows, model), alpha=0.05, margin=0.05, planned=len(rows))
    assert [d.outcome for d in declared] == ["supported", "not supported"]
    early = accuracy.decide(keys, accuracy.Judged(rows, model), alpha=0.05, margin=0.05, planned=len(rows) + 1)
    assert {d.outcome for d in early} == {"not enough data"} and early[0].p is not None

    without_model = accuracy.sandwich(accuracy.Judged(rows, []), alpha=0.05, margin=0.05)
    assert without_model.missing == ["model alone"]
    assert [d.key for d in without_model.decisions] == ["sandwich-robust"]

    # Identical outcomes in two arms, trial for trial: no variation, so no test rather than a false "pass".
    same = [r | {"condition": "assisted-misleading"} for r in rows if r["condition"] == "naive"]
    twins = [r for r in rows if r["condition"] != "assisted-misleading"] + same
    tied = accuracy.sandwich(accuracy.Judged(twins, model), alpha=0.05, margin=0.05)
    assert tied.decisions[1].outcome == "cannot be tested" and "no variation" in tied.decisions[1].reason


def test_the_model_alone_baseline_is_exported(sandwich_experiment, tmp_path):
    import pyarrow.parquet as pq

    from judging import exports

    score_model_alone(sandwich_experiment.pk)
    exports.write_export("model_answers", "parquet", [sandwich_experiment.pk], tmp_path / "m.parquet")
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.num_rows == 6 and table.column_names == list(exports.MODEL_ANSWER_COLUMNS)
    rows = table.to_pylist()
    # Both answer orders, the verdict from their average (empty for a tie: then correct is empty too).
    assert all(r["orders_scored"] == 2 and r["probability_a_swapped"] is not None for r in rows)
    assert all(r["verdict"] == (verdict(r["probability_a"], r["probability_a_swapped"]) or None) for r in rows)
    assert all(r["correct"] == (r["verdict"] == r["honest_side"] if r["verdict"] else None) for r in rows)
