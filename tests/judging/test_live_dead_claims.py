"""A live turn whose worker died (its claim no longer refreshed by the worker's heartbeat) is released by the
judge's own polling within seconds (services.dead_live_claims_release), counted as a lost attempt, announced
for generation again, and the judge's page says that the speaker is being restarted, hiding the lost text."""

import json

import pytest
from django.urls import reverse

from judging.models import Trial, Turn
from judging.services import dead_live_claims_release, experiment_launch, stale_claims_release
from judging.signals import turns_pending
from tests.judging.pages import open_trial
from tests.judging.test_judge_pages import QUERY_BUDGET

NOTICE = "stopped unexpectedly; restarting its speech…"


@pytest.fixture
def announced():
    """The experiments for which generation was announced (judging.signals.turns_pending), in order."""
    sent = []

    def record(sender, experiment_id, **kwargs):
        sent.append(experiment_id)

    turns_pending.connect(record, dispatch_uid="test-live-dead-claims")
    yield sent
    turns_pending.disconnect(dispatch_uid="test-live-dead-claims")


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def opened_live_trial(client, make_model_config, make_experiment, **fields):
    experiment = make_experiment(
        make_model_config("SECRET-MODEL-NAME"), name="live", mode="live", rounds=2, num_questions=1, **fields
    )
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    open_trial(client, trial)  # round 1's turns are created pending
    return trial


def being_written(turn, worker="celery@SECRET-WORKER-NAME", text="The sky is blue, as the passage says"):
    """A worker claims ``turn`` and has written ``text`` of it so far."""
    token = Turn.objects.filter(pk=turn.pk).claim(claimed_by=worker)
    Turn.objects.filter(pk=turn.pk).held(token).update(partial_text=text)
    return token


def poll(client, trial) -> str:
    response = client.get(reverse("judging:trial_live", args=[trial.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_fresh_claim_is_left_alone_and_a_dead_one_is_released_by_the_judges_poll(
    judge_client,
    make_model_config,
    make_experiment,
    server_clock,
    settings,
    announced,
    django_capture_on_commit_callbacks,
):
    settings.CLAIM_HEARTBEAT_SECONDS, settings.LIVE_DEAD_CLAIM_SECONDS = 2, 15
    trial = opened_live_trial(judge_client, make_model_config, make_experiment, turn_style="sequential")
    first = trial.turns.order_by("index").first()
    token = being_written(first)
    server_clock.advance(14)  # the worker's heartbeat is late, but not by LIVE_DEAD_CLAIM_SECONDS
    page = poll(judge_client, trial)
    assert "The sky is blue, as the passage says" in page and "(writing…)" in page and NOTICE not in page
    assert Turn.objects.get(pk=first.pk).claim_token == token and announced == []

    server_clock.advance(2)  # no beat for 16 s: the worker is dead
    with django_capture_on_commit_callbacks(execute=True):
        page = poll(judge_client, trial)
    first.refresh_from_db()
    assert (first.status, first.attempts, first.partial_text, first.claim_token) == ("pending", 1, "", "")
    assert announced == [trial.experiment_id]  # its generation is asked for again, at once
    assert f"Debater {first.speaker} {NOTICE}" in page
    assert "The sky is blue" not in page and "(writing…)" not in page  # the lost text is gone, not frozen
    assert Turn.objects.filter(pk=first.pk).held(token).update(text="late") == 0  # the dead claim writes nothing

    # Claimed again by another worker: still restarting until its first words arrive, then writing as before.
    with django_capture_on_commit_callbacks(execute=True) as later:
        again = Turn.objects.filter(pk=first.pk).claim(claimed_by="celery@other")
        assert f"Debater {first.speaker} {NOTICE}" in poll(judge_client, trial)
        Turn.objects.filter(pk=first.pk).held(again).update(partial_text="The sky is blue, as")
        page = poll(judge_client, trial)
    assert NOTICE not in page and "The sky is blue, as" in page and "(writing…)" in page
    assert later == [] and Turn.objects.get(pk=first.pk).claim_token == again  # polls finding none dead: no write


def test_simultaneous_speeches_show_the_notice_for_the_speaker_that_stopped(
    judge_client, make_model_config, make_experiment, server_clock
):
    trial = opened_live_trial(judge_client, make_model_config, make_experiment, turn_style="simultaneous")
    first, second = trial.turns.order_by("index")
    being_written(first)
    server_clock.advance(60)
    being_written(second)  # claimed later: its worker lives
    state = json.loads(judge_client.get(reverse("judging:trial_state", args=[trial.pk])).content)
    speakers = {s["label"]: s["status"] for s in state["state"]["progress"]["speakers"]}
    assert speakers == {f"Debater {first.speaker}": "restarting", f"Debater {second.speaker}": "writing"}
    assert Turn.objects.get(pk=second.pk).status == "running"


def test_two_polls_that_both_saw_a_dead_claim_release_it_once(
    judge_client, make_model_config, make_experiment, server_clock, announced, django_capture_on_commit_callbacks
):
    trial = opened_live_trial(judge_client, make_model_config, make_experiment)
    first = trial.turns.order_by("index").first()
    being_written(first)
    server_clock.advance(60)
    # Both polls loaded the trial's turns (as the view does) before either wrote.
    one, other = (Trial.objects.prefetch_related("turns").get(pk=trial.pk) for _ in range(2))
    with django_capture_on_commit_callbacks(execute=True):
        assert dead_live_claims_release(one) == 1
        assert dead_live_claims_release(other) == 0
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("pending", 1)  # one lost attempt, not two
    assert announced == [trial.experiment_id]


def test_a_claim_released_and_taken_again_meanwhile_is_not_released_by_a_poll_that_saw_the_old_one(
    judge_client, make_model_config, make_experiment, server_clock
):
    trial = opened_live_trial(judge_client, make_model_config, make_experiment)
    first = trial.turns.order_by("index").first()
    being_written(first)
    server_clock.advance(60)
    late = Trial.objects.prefetch_related("turns").get(pk=trial.pk)  # saw the dead claim
    assert stale_claims_release() == 1  # the reconciler released it first...
    fresh = Turn.objects.filter(pk=first.pk).claim(claimed_by="celery@other")  # ...and a worker took it again
    assert dead_live_claims_release(late) == 0
    assert Turn.objects.get(pk=first.pk).claim_token == fresh


def test_pregenerated_turns_are_not_released_by_the_live_rule(make_model_config, make_experiment, server_clock):
    experiment = make_experiment(make_model_config("m"), num_questions=1)
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    turn = trial.turns.order_by("index").first()
    Turn.objects.filter(pk=turn.pk).claim(claimed_by="celery@gpu0")
    server_clock.advance(600)  # long past the live rule, within STALE_CLAIM_SECONDS (a model may load for minutes)
    assert dead_live_claims_release(Trial.objects.prefetch_related("turns").get(pk=trial.pk)) == 0
    assert stale_claims_release() == 0
    assert Turn.objects.get(pk=turn.pk).status == "running"


def test_the_reconciler_releases_dead_live_claims_too(judge_client, make_model_config, make_experiment, server_clock):
    trial = opened_live_trial(judge_client, make_model_config, make_experiment)
    first, second = trial.turns.order_by("index")
    being_written(first)
    server_clock.advance(60)
    being_written(second)
    assert stale_claims_release() == 1  # no judge polls (the page was closed): beat's reconciler finds it
    assert list(trial.turns.order_by("index").values_list("status", flat=True)) == ["pending", "running"]


def test_a_speech_that_stopped_too_often_fails_and_the_page_says_so_without_internals(
    judge_client, make_model_config, make_experiment, server_clock
):
    trial = opened_live_trial(judge_client, make_model_config, make_experiment)
    first = trial.turns.order_by("index").first()
    Turn.objects.filter(pk=first.pk).update(attempts=2)
    being_written(first)
    server_clock.advance(60)
    page = poll(judge_client, trial)
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("failed", 3)
    assert "No answer could be generated" in page and NOTICE not in page
    for hidden in ("SECRET-MODEL-NAME", "SECRET-WORKER-NAME", first.error, "worker"):
        assert hidden not in page


def test_a_poll_finding_no_dead_claim_stays_within_the_query_budget(
    judge_client, make_model_config, make_experiment, django_assert_max_num_queries
):
    trial = opened_live_trial(judge_client, make_model_config, make_experiment)
    for turn in trial.turns.all():
        being_written(turn)
    with django_assert_max_num_queries(QUERY_BUDGET["trial_live"]):
        page = poll(judge_client, trial)
    assert NOTICE not in page
