"""Active time counted on the server from the trial page's heartbeats (services.active_time_beat), on a frozen
server clock that only the test moves: accumulation, bounds, duplicates, refusals, and the verdict's copy."""

import pytest
from django.urls import reverse

from judging.models import ActiveTime, Trial, Verdict
from judging.services import (
    BEAT_SLACK_SECONDS,
    BeatRefused,
    VerdictRefused,
    active_time_beat,
    experiment_launch,
    live_move,
    trial_open,
    trial_skip,
    verdict_submit,
)
from tests.judging.test_trial_partials import finish_round, first_trial

BEAT = 15  # settings.JUDGE_BEAT_SECONDS
CAP = BEAT + BEAT_SLACK_SECONDS


@pytest.fixture
def opened(ready_trial):
    trial_open(trial=ready_trial)
    return ready_trial


def beat(trial, judge, page="page1", seq=1, fresh=False):
    return active_time_beat(trial_id=trial.pk, judge=judge, page=page, seq=seq, fresh=fresh)


def seconds(trial):
    return ActiveTime.objects.get(trial=trial).seconds


def submit(trial, judge):
    return verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability="0.8", rationale="r")


def test_beats_add_the_server_time_between_them_and_a_fresh_beat_only_starts_the_count(opened, judge, server_clock):
    beat(opened, judge, seq=1, fresh=True)
    assert seconds(opened) == 0
    for seq in (2, 3, 4):
        server_clock.advance(BEAT)
        beat(opened, judge, seq=seq)
    assert seconds(opened) == 45
    server_clock.advance(4)
    beat(opened, judge, seq=5, fresh=True)  # back from a pause (hidden tab, idle): the 4 s are not counted
    server_clock.advance(BEAT)
    beat(opened, judge, seq=6)
    clock = ActiveTime.objects.get(trial=opened)
    assert clock.seconds == 60 and clock.seconds_by_round == {"2": 60}  # a pre-generated trial shows every round


def test_a_gap_longer_than_the_interval_plus_slack_adds_nothing(opened, judge, server_clock):
    beat(opened, judge, seq=1, fresh=True)
    server_clock.advance(CAP)
    beat(opened, judge, seq=2)  # a slow beat, at the bound: counted
    assert seconds(opened) == CAP
    server_clock.advance(CAP + 0.001)
    beat(opened, judge, seq=3)  # the page had stopped beating (closed, hidden, asleep): nothing is known active
    assert seconds(opened) == CAP
    server_clock.advance(BEAT)
    beat(opened, judge, seq=4)  # counting from the late beat on
    assert seconds(opened) == CAP + BEAT
    server_clock.advance(-60)  # the server's clock set back: a negative gap adds nothing
    beat(opened, judge, seq=5)
    assert seconds(opened) == CAP + BEAT


def test_duplicate_and_out_of_order_beats_add_nothing(opened, judge, server_clock):
    beat(opened, judge, seq=1, fresh=True)
    server_clock.advance(BEAT)
    beat(opened, judge, seq=2)
    server_clock.advance(10)
    beat(opened, judge, seq=2)  # the same beat again (a retried request)
    beat(opened, judge, seq=1)  # an older one arriving late
    clock = ActiveTime.objects.get(trial=opened)
    assert (clock.seconds, clock.beat_seq) == (BEAT, 2)
    beat(opened, judge, seq=3)  # the next one counts from the last accepted beat, which they did not move
    assert seconds(opened) == BEAT + 10


def test_time_survives_a_reload_and_two_tabs_count_the_time_once(opened, judge, server_clock):
    beat(opened, judge, page="first", seq=1, fresh=True)
    server_clock.advance(BEAT)
    beat(opened, judge, page="first", seq=2)
    server_clock.advance(1)
    beat(opened, judge, page="reloaded", seq=1, fresh=True)  # the reload: a new page load starts again
    for _ in range(2):  # the same trial open in two tabs, both beating: every second counts once
        server_clock.advance(7)
        beat(opened, judge, page="reloaded", seq=_ + 2)
        server_clock.advance(8)
        beat(opened, judge, page="first", seq=_ + 3)
    assert seconds(opened) == BEAT + 30


@pytest.mark.parametrize(
    "page,seq",
    [("", 1), ("x" * 33, 1), ("not an id", 1), ("pagé", 1), ("page", 0), ("page", -3), ("page", "two"), ("page", None)]
    + [("page", 2**31), ("page", "1e3"), ("page", "\uff12"), ("page", "\u0663")],
)
def test_malformed_beats_are_refused(opened, judge, page, seq):
    with pytest.raises(BeatRefused) as refused:
        beat(opened, judge, page=page, seq=seq)
    assert refused.value.status == 400
    assert not ActiveTime.objects.exists()


def test_beats_on_another_judges_or_an_unopened_or_skipped_trial_are_refused(
    ready_trial, judge, other_judge, server_clock
):
    with pytest.raises(BeatRefused) as refused:
        beat(ready_trial, judge)  # not opened yet
    assert refused.value.status == 409
    trial_open(trial=ready_trial)
    with pytest.raises(BeatRefused) as refused:
        beat(ready_trial, other_judge)
    assert refused.value.status == 404  # as for a trial that does not exist: ids leak nothing
    assert not ActiveTime.objects.exists()
    later = Trial.objects.filter(judge=judge).exclude(pk=ready_trial.pk).first()
    with pytest.raises(BeatRefused):
        beat(later, judge)  # not the next trial: never opened
    beat(ready_trial, judge, seq=1, fresh=True)
    trial_skip(trial_id=ready_trial.pk, judge=judge, reason="unreadable")
    server_clock.advance(BEAT)
    with pytest.raises(BeatRefused) as refused:
        beat(ready_trial, judge, seq=2)
    assert refused.value.status == 409 and seconds(ready_trial) == 0


def test_the_verdict_takes_the_trials_time_and_no_beat_adds_to_it_afterwards(opened, judge, server_clock):
    beat(opened, judge, seq=1, fresh=True)
    server_clock.advance(BEAT)
    beat(opened, judge, seq=2)
    server_clock.advance(6)
    verdict = submit(opened, judge)  # the submission is the page's last beat: its 6 s count
    assert (verdict.active_seconds, verdict.active_seconds_by_round) == (BEAT + 6, {"2": BEAT + 6})
    assert verdict.active_time_source == "server"
    server_clock.advance(BEAT)
    with pytest.raises(BeatRefused) as refused:
        beat(opened, judge, seq=3)  # a beat that arrives after the verdict (the page was slow to unload)
    assert refused.value.status == 409
    assert seconds(opened) == BEAT + 6
    assert Verdict.objects.get(trial=opened).active_seconds == BEAT + 6


def test_zero_active_seconds_are_zero_and_a_page_that_never_beat_has_no_time(
    opened, judge, server_clock, make_model_config, make_experiment
):
    beat(opened, judge, seq=1, fresh=True)
    server_clock.advance(CAP + 1)  # the judge left the page idle, then came back and answered
    assert submit(opened, judge).active_seconds == 0.0
    experiment = make_experiment(make_model_config("other"), name="no script")
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    finish_round(trial)
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.READY)
    trial_open(trial=trial)
    server_clock.advance(100)  # JavaScript off: no beat ever came
    verdict = submit(trial, judge)
    assert (verdict.active_seconds, verdict.active_seconds_by_round) == (None, {})


def test_a_refused_verdict_loses_no_time(make_model_config, make_experiment, judge, server_clock):
    experiment = make_experiment(make_model_config("live"), mode="live", rounds=3, min_rounds=2)
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    finish_round(trial)
    beat(trial, judge, seq=1, fresh=True)
    server_clock.advance(BEAT)
    beat(trial, judge, seq=2)  # 15 s reading round 1
    server_clock.advance(5)
    with pytest.raises(VerdictRefused):
        submit(trial, judge)  # the debate is not over: refused, and nothing changes
    assert seconds(trial) == BEAT and not Verdict.objects.exists()
    beat(trial, judge, page="again", seq=1, fresh=True)  # the page shown again
    live_move(trial_id=trial.pk, judge=judge, action="continue")
    finish_round(trial)
    server_clock.advance(BEAT)
    beat(trial, judge, page="again", seq=2)  # 15 s reading round 2
    live_move(trial_id=trial.pk, judge=judge, action="end")
    server_clock.advance(3)
    verdict = submit(trial, judge)
    assert verdict.active_seconds == 2 * BEAT + 3
    assert verdict.active_seconds_by_round == {"1": BEAT, "2": BEAT + 3}  # by the round shown when time was counted


def test_the_beat_view_answers_204_or_the_refusal(client, judge, other_judge, opened, server_clock):
    url = reverse("judging:beat", args=[opened.pk])
    client.force_login(judge)
    assert client.post(url, {"page": "p", "seq": "1", "fresh": "1"}).status_code == 204
    server_clock.advance(BEAT)
    assert client.post(url, {"page": "p", "seq": "2"}).status_code == 204
    assert seconds(opened) == BEAT
    assert client.get(url).status_code == 405
    refused = client.post(url, {"page": "p", "seq": "x"})
    assert refused.status_code == 400 and "number" in refused.json()["error"]
    client.force_login(other_judge)
    assert client.post(url, {"page": "q", "seq": "1"}).status_code == 404
    client.logout()
    assert client.post(url, {"page": "p", "seq": "3"}).status_code == 302  # to the login page
    assert seconds(opened) == BEAT
