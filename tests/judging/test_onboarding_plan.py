"""Planning practice trials and attention checks at launch (docs/onboarding.md)."""

import collections

import pytest
from django.core.exceptions import ValidationError

from judging.assignment import (
    AssignmentError,
    QuestionInfo,
    attention_count,
    plan_onboarding_trials,
    plan_trials,
)
from judging.models import Experiment, Trial
from judging.services import LaunchError, experiment_launch
from tests.judging.onboarding import easy_set

STUDY = [QuestionInfo(id=i, n_choices=3, correct_index=i % 3) for i in range(1, 61)]
EASY = [QuestionInfo(id=i, n_choices=2, correct_index=i % 2) for i in range(1001, 1041)]
JUDGES = [1, 2, 3]


def planned(seed=5, practice=2, rate=0.25, arms=("debate", "consultancy"), questions=STUDY):
    study = plan_trials(questions, JUDGES, num_questions=24, judgments_per_question=1, seed=seed, arms=list(arms))
    plans = plan_onboarding_trials(
        study,
        JUDGES,
        practice_per_judge=practice,
        practice_questions=questions,
        attention_rate=rate,
        attention_questions=EASY,
        seed=seed,
    )
    return study, plans


@pytest.mark.unit
def test_each_judge_gets_practice_first_and_attention_checks_among_the_study_trials():
    study, plans = planned()
    for judge in JUDGES:
        own_study = sorted((p for p in study if p.judge_id == judge), key=lambda p: p.queue_position)
        mine = sorted((p for p in plans if p.judge_id == judge), key=lambda p: p.queue_position)
        roles = [p.role for p in mine]
        assert roles[:2] == ["practice", "practice"] and "practice" not in roles[2:]
        assert roles.count("attention") == attention_count(0.25, len(own_study)) == 2  # 8 study trials each
        assert [p.queue_position for p in mine] == list(range(len(mine)))  # one position each, no gaps
        # The study trials keep the order plan_trials gave them, and everything else they were planned with.
        after = [p for p in mine if p.role == "study"]
        assert [p.question_id for p in after] == [p.question_id for p in own_study]
        assert [(p.honest_side, p.condition, p.answer_a_index) for p in after] == [
            (p.honest_side, p.condition, p.answer_a_index) for p in own_study
        ]
        # Each attention check looks like the study trial after it (the one before, at the end).
        for i, p in enumerate(mine):
            if p.role == "attention":
                neighbour = next((q for q in mine[i + 1 :] if q.role == "study"), None) or next(
                    q for q in reversed(mine[:i]) if q.role == "study"
                )
                assert (p.protocol, p.condition) == (neighbour.protocol, neighbour.condition)
                assert p.question_id in {q.id for q in EASY}
        # Practice: the judge's designs in the order they meet them (here debate and consultancy in some order).
        first_designs = list(dict.fromkeys((p.protocol, p.condition) for p in own_study))
        assert [(p.protocol, p.condition) for p in mine[:2]] == first_designs[:2]
        # Questions: practice never on a study question; nobody meets a question twice.
        study_questions = {p.question_id for p in study}
        assert not {p.question_id for p in mine if p.role == "practice"} & study_questions
        assert len({p.question_id for p in mine}) == len(mine)
    # The correct answer sits on the honest side; a consultant's side follows its honesty.
    for p in plans:
        info = {q.id: q for q in STUDY + EASY}[p.question_id]
        assert (p.answer_a_index if p.honest_side == "A" else p.answer_b_index) == info.correct_index
        if p.protocol == "consultancy":
            assert (p.speaker_side == p.honest_side) == (p.condition == "honest consultant")
            assert p.first_speaker == p.speaker_side


@pytest.mark.unit
def test_attention_checks_land_anywhere_among_the_study_trials():
    """Over seeds, a check is as likely in any slot after the practice: its position gives nothing away."""
    slots = collections.Counter()
    for seed in range(200):
        _, plans = planned(seed=seed, practice=1, rate=0.25, arms=("debate",))
        slots.update(p.queue_position for p in plans if p.role == "attention")
    # 3 judges x 2 checks x 200 seeds over positions 1..10: about 120 each.
    assert set(slots) == set(range(1, 11))
    assert min(slots.values()) > 60 and max(slots.values()) < 190, slots


@pytest.mark.unit
def test_the_plan_is_reproducible_and_leaves_the_study_as_it_was_without_practice_or_checks():
    assert planned(seed=9) == planned(seed=9)
    assert planned(seed=9)[1] != planned(seed=10)[1]
    study, plans = planned(practice=0, rate=0)
    assert plans == study
    assert attention_count(0.1, 5) == 1 and attention_count(0.1, 4) == 0 and attention_count(0.5, 3) == 2


@pytest.mark.unit
def test_too_few_questions_are_refused():
    with pytest.raises(AssignmentError, match="practice questions: judge 1 needs 2 question"):
        # 24 study questions of 25: one left to practise on.
        planned(questions=STUDY[:25])
    study = plan_trials(STUDY, JUDGES, num_questions=24, judgments_per_question=1, seed=1)
    with pytest.raises(AssignmentError, match="attention-check questions: judge 1 needs 2 question"):
        plan_onboarding_trials(
            study,
            JUDGES,
            practice_per_judge=0,
            practice_questions=STUDY,
            attention_rate=0.25,
            attention_questions=EASY[:1],
            seed=1,
        )


def test_launch_creates_practice_and_attention_trials_with_their_roles(
    make_model_config, make_experiment, judge, other_judge, question_set
):
    easy = easy_set()
    experiment = make_experiment(
        make_model_config("m"),
        judges=[judge, other_judge],
        num_questions=8,
        practice_trials=2,
        attention_rate=0.25,
        attention_question_set=easy,
    )
    assert experiment_launch(experiment=experiment) == 8 + 2 * 2 + 2 * 1  # 4 study trials each: 1 check each
    trials = Trial.objects.filter(experiment=experiment)
    assert collections.Counter(trials.values_list("role", flat=True)) == {"study": 8, "practice": 4, "attention": 2}
    assert trials.study().count() == 8
    for who in (judge, other_judge):
        mine = list(trials.filter(judge=who).order_by("queue_position"))
        assert [t.role for t in mine[:2]] == ["practice", "practice"]
        assert [t.queue_position for t in mine] == list(range(7))
        # Practice from the experiment's own set, never a study question; checks from the easy set.
        assert all(t.question.question_set_id == question_set.pk for t in mine if t.role != "attention")
        assert all(t.question.question_set_id == easy.pk for t in mine if t.role == "attention")
        assert all(t.turns.count() == 4 for t in mine)  # generated like any trial
    assert not set(trials.filter(role="practice").values_list("question_id", flat=True)) & set(
        trials.study().values_list("question_id", flat=True)
    )
    experiment.refresh_from_db()
    assert experiment.provenance["design"]["practice_trials"] == 2
    assert experiment.provenance["design"]["attention_question_set_id"] == easy.pk


def test_launch_is_refused_without_an_attention_set_or_enough_practice_questions(
    make_model_config, make_experiment, question_set
):
    experiment = make_experiment(make_model_config("m"), num_questions=4, attention_rate=0.25)
    with pytest.raises(LaunchError, match="attention checks need their own question set"):
        experiment_launch(experiment=experiment)
    # 12 questions, 11 for the study: one left, two needed.
    experiment = make_experiment(make_model_config("m2"), name="too few", num_questions=11, practice_trials=2)
    with pytest.raises(LaunchError, match="practice questions: judge .* needs 2 question"):
        experiment_launch(experiment=experiment)
    assert not Trial.objects.exists()
    assert set(Experiment.objects.values_list("status", flat=True)) == {"draft"}


def test_the_form_refuses_settings_that_cannot_work(make_model_config, make_experiment, question_set):
    experiment = make_experiment(make_model_config("m"), num_questions=10)
    for fields, field, message in [
        ({"qualification_accuracy": 0.8}, "qualification_accuracy", "at least one practice trial"),
        ({"qualification_accuracy": 1.5, "practice_trials": 2}, "qualification_accuracy", "at most 1"),
        ({"attention_rate": 0.6, "attention_question_set": easy_set("a1")}, "attention_rate", "from 0 to 0.5"),
        ({"attention_rate": 0.2}, "attention_question_set", "set of easy questions"),
        ({"practice_trials": 3, "practice_question_set": question_set}, "practice_trials", "has 2 question"),
        ({"practice_trials": 3}, "practice_trials", "has 2 question"),  # the experiment's own set, less the study
    ]:
        for name, value in fields.items():
            setattr(experiment, name, value)
        with pytest.raises(ValidationError) as error:
            experiment.full_clean()
        assert message in " ".join(error.value.message_dict[field]), (fields, error.value.message_dict)
        experiment.refresh_from_db()
        experiment.practice_question_set = experiment.attention_question_set = None
    experiment.practice_trials, experiment.qualification_accuracy = 2, 0.5
    experiment.attention_rate, experiment.attention_question_set = 0.5, easy_set("a2")
    experiment.full_clean()


def test_the_admin_form_has_the_onboarding_fields_and_refuses_what_cannot_work(
    admin_client, make_model_config, question_set
):
    from tests.judging.admin_form import experiment_form

    page = admin_client.get("/admin/judging/experiment/add/").content.decode()
    assert "Onboarding and quality control" in page and 'name="attention_question_set"' in page
    data = experiment_form(question_set, make_model_config("m"), attention_rate="0.2", practice_trials="2")
    response = admin_client.post("/admin/judging/experiment/add/", data)
    assert response.status_code == 200 and "attention checks need a set of easy questions" in response.content.decode()
    assert not Experiment.objects.exists()
    easy = easy_set()
    data |= {"attention_question_set": easy.pk, "qualification_accuracy": "0.5", "instructions": "Read <b>all</b>."}
    assert admin_client.post("/admin/judging/experiment/add/", data).status_code == 302
    experiment = Experiment.objects.get()
    assert (experiment.practice_trials, experiment.attention_question_set, experiment.feedback) == (
        2,
        easy,
        "after_close",
    )


@pytest.mark.unit
def test_practice_and_attention_sides_are_drawn_each_on_its_own():
    """Shown the truth after each practice trial, a judge must not be able to tell the last one's answer from
    the others': with as many A as B, two practice trials would always have opposite sides."""
    pairs = collections.Counter()
    sides = collections.Counter()
    for seed in range(60):
        _, plans = planned(seed=seed)
        for judge in JUDGES:
            mine = sorted((p for p in plans if p.judge_id == judge), key=lambda p: p.queue_position)
            practice = [p.honest_side for p in mine if p.role == "practice"]
            checks = [p.honest_side for p in mine if p.role == "attention"]
            pairs["same" if practice[0] == practice[1] else "opposite"] += 1
            pairs["checks same" if checks[0] == checks[1] else "checks opposite"] += 1
            sides.update(practice + checks)
    # 180 pairs of fair draws each: about half alike (far from none: balanced sides gave 0 of 180).
    assert 60 < pairs["same"] < 120 and 60 < pairs["checks same"] < 120
    assert 0.4 < sides["A"] / (sides["A"] + sides["B"]) < 0.6
