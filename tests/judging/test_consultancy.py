"""Consultancy: one consultant, honest in half of the trials; same rules engine as debate."""

import collections
import csv
import io

import pytest
from django.core.management import call_command

from generation.worker import generate_batch
from judging.assignment import QuestionInfo, plan_trials
from judging.protocols.consultancy import consultancy_rules
from judging.protocols.debate import DebateState, IllegalMove
from judging.services import experiment_launch, live_move, trial_open
from tests.judging.pages import open_trial


def test_the_consultant_is_the_only_speaker_and_one_speech_completes_a_round():
    state = DebateState(rules=consultancy_rules(rounds=2, consultant_side="B"))
    assert state.next_speakers() == ("B",)
    with pytest.raises(IllegalMove, match="does not speak"):
        state.apply_speech("A", "I am not here")
    state = state.apply_speech("B", "b1")
    assert state.completed_rounds == 1 and state.between_rounds()
    with pytest.raises(IllegalMove, match="addressed to B"):
        state.apply_judge_question("Debater A?", ("A",))
    assert state.apply_judge_question("Why?").transcript[-1].addressed_to == ("B",)


def test_the_consultant_is_honest_in_exactly_half_of_the_trials():
    questions = [QuestionInfo(id=i, n_choices=3, correct_index=i % 3) for i in range(1, 201)]
    plans = plan_trials(questions, [1, 2], num_questions=200, judgments_per_question=1, seed=5, arms=["consultancy"])
    honest = collections.Counter(p.speaker_side == p.honest_side for p in plans)
    assert honest == {True: 100, False: 100}
    sides = collections.Counter(p.speaker_side for p in plans)
    assert 70 <= sides["A"] <= 130  # which answer it argues for follows the randomised positions
    assert all(p.first_speaker == p.speaker_side for p in plans)


@pytest.fixture
def consultancy(make_model_config, make_experiment, tiny_model_dir):
    experiment = make_experiment(
        make_model_config(tiny_model_dir), conditions=["consultancy"], num_questions=4, rounds=2, char_limit=200
    )
    experiment_launch(experiment=experiment)
    return experiment


def test_consultancy_trials_are_generated_with_the_consultant_prompt_and_double_budget(consultancy):
    while generate_batch(consultancy.pk):
        pass
    for trial in consultancy.trials.all():
        turns = list(trial.turns.order_by("index"))
        assert [(t.round, t.speaker, t.status) for t in turns] == [
            (1, trial.consultant_side, "done"),
            (2, trial.consultant_side, "done"),
        ]
        assert "You are a consultant" in turns[0].prompt and "at most 400 characters" in turns[0].prompt
        assert trial.answer_text(trial.consultant_side) in turns[0].prompt
        assert 'You in round 1: "' in turns[1].prompt  # the consultant reads its own earlier speech
    assert {t.status for t in consultancy.trials.all()} == {"ready"}


def test_the_judge_sees_the_consultant_and_its_answer_but_not_whether_it_is_honest(consultancy, judge, client):
    while generate_batch(consultancy.pk):
        pass
    trial = consultancy.trials.first()
    client.force_login(judge)
    page = open_trial(client, trial).content.decode()
    assert f"Consultant (for answer {trial.consultant_side})" in page
    assert f"A consultant argues for answer {trial.consultant_side}" in page
    for leak in ("honest", "dishonest", "PASSAGE-SECRET", "correct_index"):
        assert leak not in page.replace("Exactly one answer is correct", "")
    out = io.StringIO()
    call_command("export_results", str(consultancy.pk), stdout=out)
    conditions = collections.Counter(r["condition"] for r in csv.DictReader(io.StringIO(out.getvalue())))
    assert conditions == {"honest consultant": 2, "dishonest consultant": 2}


def test_a_live_consultant_is_asked_and_answers(make_model_config, make_experiment, tiny_model_dir, judge):
    experiment = make_experiment(
        make_model_config(tiny_model_dir),
        conditions=["consultancy"],
        mode="live",
        num_questions=1,
        rounds=3,
        min_rounds=1,
    )
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    trial_open(trial=trial)
    while generate_batch(experiment.pk):
        pass
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="What is your best quote?", addressed_to=("A", "B"))
    question = trial.turns.get(speaker="judge")
    assert question.addressed_to == [trial.consultant_side]
    while generate_batch(experiment.pk):
        pass
    answer = trial.turns.get(round=2)
    assert (
        answer.speaker == trial.consultant_side and 'The judge asked you: "What is your best quote?"' in answer.prompt
    )
