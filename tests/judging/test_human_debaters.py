"""Human debaters: line-ups naming people, trials and turns that record them, speeches written through
services.speech_submit, never generated, and judges who cannot tell a person from a model."""

import json

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from generation.selection import ready_turns, trials_with_pending_turns
from judging import debater_selectors, exports, selectors
from judging.assignment import QuestionInfo, plan_trials
from judging.lineups import Cell, LineupError, Member, arm_cells
from judging.models import DEBATERS_GROUP, LineupMember, Trial, Turn
from judging.services import (
    LaunchError,
    SpeechRefused,
    experiment_close,
    experiment_launch,
    live_move,
    speech_submit,
    trial_open,
    turns_due,
)
from judging.signals import turns_pending

# ---- Line-ups and the planner (pure) -------------------------------------------------------------------------


def sides(cells):
    return [(c.honest, c.honest_person, c.adversary, c.adversary_person) for c in cells]


def test_a_person_pairs_with_models_and_other_people_but_never_with_themselves():
    alice, bob = Member(None, person=7), Member(None, person=8)
    model = Member(1)
    assert sides(arm_cells("debate", [alice, model], "round-robin", 9)) == [
        (None, 7, 1, None),
        (1, None, None, 7),
        (1, None, 1, None),  # the model against itself stays, as before
    ]
    assert sides(arm_cells("debate", [alice, bob], "cross-play", 9)) == [(None, 7, None, 8), (None, 8, None, 7)]
    assert sides(arm_cells("debate", [Member(None, "honest", person=7), model], "cross-play", 9)) == [
        (None, 7, 1, None)
    ]
    # A person consults like a model: one cell, the person on whichever side the trial's condition gives.
    assert sides(arm_cells("consultancy", [alice], "self-play", 9)) == [(None, 7, None, 7)]


def test_a_configuration_only_line_up_makes_the_same_cells_as_before():
    assert arm_cells("debate", [Member(1), Member(2)], "cross-play", 9) == [Cell("debate", 1, 2), Cell("debate", 2, 1)]


@pytest.mark.parametrize(
    "arm, members, pairing, message",
    [
        ("debate", [Member(None, person=7), Member(1)], "self-play", "cannot debate themselves"),
        ("assisted-honest", [Member(None, person=7)], "self-play", "people do not speak in the assisted-honest arm"),
        ("debate", [Member(None, person=7), Member(None, "honest", person=7)], "cross-play", "twice"),
        ("debate", [Member(1, person=7)], "cross-play", "a configuration or a person"),
        ("debate", [Member(None)], "cross-play", "a configuration or a person"),
        ("debate", [Member(None, person=7)], "round-robin", "gives no pairing"),
    ],
)
def test_line_ups_people_cannot_take_are_refused(arm, members, pairing, message):
    with pytest.raises(LineupError, match=message):
        arm_cells(arm, members, pairing, 9)


QUESTIONS = [QuestionInfo(id=i, n_choices=3, correct_index=i % 3) for i in range(1, 41)]


def test_the_planner_gives_each_trial_the_people_of_its_cell_and_a_consultant_only_its_own_side():
    cells = [Cell("debate", None, 1, 7, None), Cell("debate", 1, None, None, 7), Cell("consultancy", None, None, 8, 8)]
    plans = plan_trials(
        QUESTIONS,
        [1, 2],
        num_questions=24,
        judgments_per_question=2,
        seed=3,
        arms=["debate", "consultancy"],
        cells=cells,
    )
    debates = [
        (p.honest_config, p.honest_person, p.adversary_config, p.adversary_person)
        for p in plans
        if p.protocol == "debate"
    ]
    assert set(debates) == {(None, 7, 1, None), (1, None, None, 7)}
    for p in plans:
        if p.protocol == "consultancy":
            honest = p.condition == "honest consultant"
            assert (p.honest_person, p.adversary_person) == ((8, None) if honest else (None, 8))
            assert p.honest_config is None and p.adversary_config is None


# ---- Launch, turns and generation ----------------------------------------------------------------------------


@pytest.fixture
def debater(django_user_model):
    return make_debater(django_user_model, "dana")


def make_debater(user_model, username):
    user = user_model.objects.create_user(username=username, password="debater-pass-123")
    user.groups.add(Group.objects.get_or_create(name=DEBATERS_GROUP)[0])
    return user


@pytest.fixture
def model(make_model_config):
    return make_model_config("SECRET-MODEL-NAME")


def human_vs_model(make_experiment, model, debater, **fields):
    """A launched debate experiment: the person argues against the model, each on both sides (cross-play)."""
    experiment = make_experiment(model, pairing="cross-play", **fields)
    LineupMember.objects.create(experiment=experiment, arm="debate", person=debater)
    LineupMember.objects.create(experiment=experiment, arm="debate", model_config=model)
    experiment_launch(experiment=experiment)
    experiment.refresh_from_db()
    return experiment


def test_a_launch_records_the_person_on_their_side_and_their_turns_are_theirs(make_experiment, model, debater):
    experiment = human_vs_model(make_experiment, model, debater)
    trials = list(experiment.trials.all())
    assert {(t.honest_person_id, t.adversary_config_id) for t in trials if t.honest_person_id} == {
        (debater.pk, model.pk)
    }
    assert any(t.adversary_person_id == debater.pk for t in trials) and any(t.honest_person_id for t in trials)
    for trial in trials:
        person_side = "A" if (trial.honest_side == "A") == (trial.honest_person_id is not None) else "B"
        for turn in trial.turns.all():
            if turn.speaker == person_side:
                assert (turn.author_id, turn.model_config_id) == (debater.pk, None)
            else:
                assert (turn.author_id, turn.model_config_id) == (None, model.pk)
    lineup = experiment.provenance["lineup"]
    assert {"arm": "debate", "config_id": None, "role": "both", "person": "dana"} in lineup
    # Researchers' exports name the person on each side (judges never see exports).
    rows = {row["trial_id"]: row for row in exports.trial_rows([experiment.pk])}
    for trial in trials:
        row = rows[trial.pk]
        person_honest = trial.honest_person_id is not None
        assert (row["honest_person"], row["adversarial_person"]) == (
            ("dana", None) if person_honest else (None, "dana")
        )
        assert (row["honest_config"] is None) == person_honest


def test_a_persons_turns_are_never_picked_for_generation(make_experiment, model, debater):
    experiment = human_vs_model(make_experiment, model, debater, turn_style="simultaneous")
    picked = ready_turns(limit=100) + ready_turns(limit=100, queue=model.queue)
    assert picked and all(t.author_id is None and t.model_config_id == model.pk for t in picked)
    # Once the model has spoken in round 1, every trial waits on the person: nothing is ready to generate.
    Turn.objects.filter(trial__experiment=experiment, author__isnull=True, round=1).update(status="done", text="M.")
    assert ready_turns(limit=100) == [] and ready_turns(limit=100, queue=model.queue) == []


def test_a_trial_waiting_only_on_a_person_is_not_sent_to_the_workers(make_experiment, model, debater):
    experiment = human_vs_model(make_experiment, model, debater)
    Turn.objects.filter(trial__experiment=experiment, author__isnull=True).update(status="done", text="M.")
    assert not trials_with_pending_turns(experiment.pk).exists()
    assert Turn.objects.filter(trial__experiment=experiment, author=debater, status="pending").exists()


def test_a_person_who_judges_the_experiment_cannot_also_debate_in_it(make_experiment, model, debater, judge):
    experiment = make_experiment(model, pairing="cross-play", judges=[judge, debater])
    LineupMember.objects.create(experiment=experiment, arm="debate", person=debater)
    LineupMember.objects.create(experiment=experiment, arm="debate", model_config=model)
    with pytest.raises(LaunchError, match="dana would both judge and debate"):
        experiment_launch(experiment=experiment)
    assert not Trial.objects.exists()


def test_a_judge_never_gets_a_question_they_argued_as_a_debater(make_experiment, model, debater, judge, question_set):
    first = human_vs_model(make_experiment, model, debater, num_questions=6)
    argued = set(first.trials.values_list("question_id", flat=True))
    later = make_experiment(model, name="Later", judges=[debater], num_questions=6)  # 12 questions in the set
    experiment_launch(experiment=later)
    assert not argued & set(later.trials.values_list("question_id", flat=True))


def test_a_person_may_not_argue_a_question_they_still_have_to_judge_elsewhere(make_experiment, model, debater, judge):
    judging = make_experiment(model, name="Judged by dana", judges=[debater], num_questions=12)  # every question
    experiment_launch(experiment=judging)
    arguing = make_experiment(model, name="Argued by dana", pairing="cross-play", judges=[judge], num_questions=6)
    LineupMember.objects.create(experiment=arguing, arm="debate", person=debater)
    LineupMember.objects.create(experiment=arguing, arm="debate", model_config=model)
    with pytest.raises(LaunchError, match=r"dana would argue \d+ question\(s\) they still have to judge \(in 'Judged"):
        experiment_launch(experiment=arguing)
    assert not arguing.trials.exists()
    # Once those trials can no longer be judged (here: their experiment closed), the passage can no longer help.
    experiment_close(experiment=judging)
    assert experiment_launch(experiment=arguing) > 0


def test_a_question_argued_in_one_set_is_never_a_practice_trial_from_that_set(
    make_experiment, model, debater, judge, question_set
):
    from judging.services import questions_to_avoid

    argued = set(
        human_vs_model(make_experiment, model, debater, num_questions=6).trials.values_list("question_id", flat=True)
    )
    # Another experiment whose own set is different still avoids them (its practice set may be this one).
    other_set = question_set.__class__.objects.create(name="Another set")
    later = make_experiment(model, name="Later", judges=[debater], question_set=other_set)
    assert questions_to_avoid(later, [debater.pk])[debater.pk] >= argued


# ---- Writing a speech ------------------------------------------------------------------------------------------


def persons_turn(experiment, debater, **filters):
    return Turn.objects.filter(trial__experiment=experiment, author=debater, **filters).order_by("trial_id", "index")


def test_a_speech_is_recorded_once_within_its_limit_and_then_generation_goes_on(
    make_experiment, model, debater, other_judge, django_capture_on_commit_callbacks
):
    experiment = human_vs_model(make_experiment, model, debater, turn_style="simultaneous", char_limit=100)
    turn = persons_turn(experiment, debater, round=1).first()
    with pytest.raises(SpeechRefused) as refused:
        speech_submit(turn_id=turn.pk, person=other_judge, text="Not mine.")
    assert refused.value.status == 404
    with pytest.raises(SpeechRefused, match="your speech has 101 characters; the limit is 100") as refused:
        speech_submit(turn_id=turn.pk, person=debater, text="x" * 101)
    assert refused.value.status == 400
    with pytest.raises(SpeechRefused, match="write your speech"):
        speech_submit(turn_id=turn.pk, person=debater, text="  \x00 ")
    turn.refresh_from_db()
    assert (turn.status, turn.text) == ("pending", "")

    announced = []
    turns_pending.connect(lambda sender, **kw: announced.append(kw["experiment_id"]), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            # Line ends count once each, as the browser's counter counts them.
            done = speech_submit(turn_id=turn.pk, person=debater, text="  Line one.\r\nLine two.  ")
    finally:
        turns_pending.disconnect(dispatch_uid="t")
    assert (done.status, done.text, done.model_config_id, done.author_id) == (
        "done",
        "Line one.\nLine two.",
        None,
        debater.pk,
    )
    assert announced == [experiment.pk]  # the model's turns now due go to the workers
    with pytest.raises(SpeechRefused, match="already submitted") as refused:
        speech_submit(turn_id=turn.pk, person=debater, text="Again.")
    assert refused.value.status == 409


def test_a_sequential_speech_waits_for_its_turn_and_the_trial_is_ready_when_all_are_done(
    make_experiment, model, debater
):
    experiment = human_vs_model(make_experiment, model, debater, turn_style="sequential", rounds=1)
    # A trial where the model opens: the person's speech is not due until the model has spoken.
    trial = next(t for t in experiment.trials.all() if t.config_for(t.first_speaker) is not None)
    mine = trial.turns.get(author=debater)
    with pytest.raises(SpeechRefused, match="not your turn") as refused:
        speech_submit(turn_id=mine.pk, person=debater, text="Too early.")
    assert refused.value.status == 409
    assert [t.pk for t in ready_turns(limit=100) if t.trial_id == trial.pk] == [trial.turns.get(author=None).pk]
    trial.turns.filter(author=None).update(status="done", text="The model spoke.")
    assert [t.pk for t in turns_due(trial)] == [mine.pk]
    speech_submit(turn_id=mine.pk, person=debater, text="My <quote>sky is blue</quote> reply.")
    trial.refresh_from_db()
    assert trial.status == Trial.Status.READY


def test_a_live_debate_with_a_person_goes_round_by_round_with_the_judges_question(
    make_experiment, model, debater, judge, client
):
    experiment = human_vs_model(make_experiment, model, debater, mode="live", turn_style="simultaneous", rounds=2)
    trial = experiment.trials.order_by("queue_position").first()
    assert debater_selectors.debater_speeches(debater)["due"] == []  # nothing until the judge opens it
    trial_open(trial=trial)
    mine = trial.turns.get(author=debater)
    assert [s["turn_id"] for s in debater_selectors.debater_speeches(debater)["due"]] == [mine.pk]
    trial.turns.filter(author=None).update(status="done", text="Model speech one.", finished_at=timezone.now())
    speech_submit(turn_id=mine.pk, person=debater, text="Person speech one.")
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="Where does it say so?", addressed_to=("A", "B"))
    second = trial.turns.get(author=debater, round=2)
    view = debater_selectors.debater_view_of_turn(second)
    assert "The judge asked Debater A and Debater B" in [e["label"] for e in view["transcript"]]
    assert view["passage"].startswith("PASSAGE-SECRET") and view["due"]
    trial.turns.filter(author=None, round=2).update(status="done", text="Model speech two.", finished_at=timezone.now())
    client.force_login(debater)  # through the page, which records the judge's response delay
    response = client.post(reverse("judging:debater_write", args=[second.pk]), {"text": "Person speech two."})
    assert response.status_code == 302
    question = trial.turns.get(speaker="judge")
    assert question.response_delay_seconds is not None
    assert selectors.judge_live_state(trial, list(trial.turns.all()))["phase"] == "awaiting_verdict"


def test_in_a_simultaneous_round_the_person_does_not_see_the_opponents_speech(make_experiment, model, debater):
    experiment = human_vs_model(make_experiment, model, debater, turn_style="simultaneous")
    turn = persons_turn(experiment, debater, round=1).first()
    Turn.objects.filter(trial=turn.trial, author=None, round=1).update(status="done", text="HIDDEN-MODEL-SPEECH")
    view = debater_selectors.debater_view_of_turn(turn)
    assert view["transcript"] == [] and view["due"]


def test_the_quote_tool_counts_characters_and_checks_quotes_against_the_passage(make_experiment, model, debater):
    experiment = human_vs_model(make_experiment, model, debater, char_limit=60, quote_limit=10)
    turn = persons_turn(experiment, debater, round=1).first()
    check = debater_selectors.speech_check(turn, "See <quote>sky is blue</quote> and <quote>sky is green</quote>.")
    assert [q["kind"] for q in check["quotes"]] == ["over_budget", "unverified"]  # "sky is blue" is 11 > 10
    assert (check["chars"], check["char_limit"], check["over"], check["quote_used"]) == (63, 60, True, 0)
    check = debater_selectors.speech_check(turn, "<quote>clear days</quote>")
    assert (check["quotes"], check["quote_used"], check["over"]) == (
        [{"kind": "verified", "text": "clear days"}],
        10,
        False,
    )


# ---- What the judge sees --------------------------------------------------------------------------------------


def test_the_judges_view_of_a_human_debate_names_nobody_and_streams_no_model_text(
    make_experiment, model, debater, judge, client
):
    experiment = human_vs_model(make_experiment, model, debater, mode="live", turn_style="sequential", rounds=1)
    trial = experiment.trials.order_by("queue_position").first()
    trial_open(trial=trial)
    model_turn = trial.turns.get(author=None)
    Turn.objects.filter(pk=model_turn.pk).update(status="running", claim_token="t", partial_text="Model is writi")
    view = selectors.judge_view_of_trial(trial)
    assert view["transcript"] == []  # no streaming where a person debates: a person's speech appears whole
    trial.turns.all().update(status="done", text="A speech.", claim_token="")
    client.force_login(judge)
    pages = [
        client.get(reverse("judging:trial", args=[trial.pk])).content.decode(),
        client.get(reverse("judging:trial_state", args=[trial.pk])).content.decode(),
        client.get(reverse("judging:trial_live", args=[trial.pk])).content.decode(),
        json.dumps(selectors.judge_view_of_trial(trial)),
    ]
    for page in pages:
        assert "A speech." in page
        for secret in ("dana", "PASSAGE-SECRET", "SECRET-MODEL-NAME", "human", "Human", "person", "author"):
            assert secret not in page, secret


# ---- The debater's pages --------------------------------------------------------------------------------------


def test_only_the_author_reaches_a_speech_and_a_judge_never_does(
    make_experiment, model, debater, judge, client, django_user_model
):
    experiment = human_vs_model(make_experiment, model, debater)
    turn = persons_turn(experiment, debater, round=1).first()
    other = make_debater(django_user_model, "other-debater")
    urls = [reverse("judging:debater_write", args=[turn.pk]), reverse("judging:debater_speeches")]
    client.force_login(judge)
    assert [client.get(url).status_code for url in urls] == [404, 404]
    assert client.post(urls[0], {"text": "Judge writes."}).status_code == 404
    client.force_login(other)
    assert client.get(urls[0]).status_code == 404
    assert client.post(reverse("judging:debater_check", args=[turn.pk]), {"text": "x"}).status_code == 404
    assert client.post(urls[0], {"text": "Someone else."}).status_code == 404
    turn.refresh_from_db()
    assert turn.status == "pending"


def test_the_writing_page_keeps_a_refused_speech_and_a_second_submission_is_a_conflict(
    make_experiment, model, debater, client
):
    experiment = human_vs_model(make_experiment, model, debater, turn_style="simultaneous", char_limit=50)
    turn = persons_turn(experiment, debater, round=1).first()
    client.force_login(debater)
    assert client.get(reverse("judging:queue")).url == reverse("judging:debater_speeches")
    queue = client.get(reverse("judging:debater_speeches")).content.decode()
    assert reverse("judging:debater_write", args=[turn.pk]) in queue
    url = reverse("judging:debater_write", args=[turn.pk])
    page = client.get(url).content.decode()
    assert "PASSAGE-SECRET" in page and "argue for answer" in page
    long = "A long speech. " * 5
    response = client.post(url, {"text": long})
    assert response.status_code == 400
    assert "the limit is 50" in response.content.decode() and long.strip() in response.content.decode()
    check = client.post(reverse("judging:debater_check", args=[turn.pk]), {"text": "<quote>The sky is blue</quote>"})
    assert 'data-kind="verified"' in check.content.decode()
    response = client.post(url, {"text": "Short and sure."})
    assert response.status_code == 302 and response.url == reverse("judging:debater_speeches")
    again = client.post(url, {"text": "Short and sure."})
    assert again.status_code == 409 and "already submitted" in again.content.decode()
    turn.refresh_from_db()
    assert turn.text == "Short and sure."


@pytest.mark.django_db
def test_the_debater_role_is_a_group_the_migration_makes_and_line_up_members_are_a_configuration_or_a_person(
    model, debater, make_experiment
):
    from django.db import IntegrityError, transaction

    assert Group.objects.filter(name=DEBATERS_GROUP).exists()
    assert debater_selectors.is_debater(debater)
    experiment = make_experiment(model)
    for fields in ({}, {"model_config": model, "person": debater}):
        with pytest.raises(IntegrityError), transaction.atomic():
            LineupMember.objects.create(experiment=experiment, arm="debate", **fields)
    LineupMember.objects.create(experiment=experiment, arm="debate", person=debater)
    with pytest.raises(IntegrityError), transaction.atomic():
        LineupMember.objects.create(experiment=experiment, arm="debate", person=debater)
    # A person's turn is never generated: the database refuses one with a configuration or running.
    trial = human_vs_model(make_experiment, model, debater, name="Launched").trials.first()
    turn = trial.turns.filter(author=debater).first()
    for fields in ({"model_config": model}, {"status": "running", "claim_token": "x"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Turn.objects.filter(pk=turn.pk).update(**fields)
