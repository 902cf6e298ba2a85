"""Judges take their trials in the planned order: only the next one can be opened; a skip needs a reason."""

import json

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from generation.selection import trials_with_pending_turns
from judging import selectors
from judging.models import SKIP_REASON_MAX, Trial, Turn, Verdict
from judging.services import MoveRefused, TrialRefused, experiment_launch, live_move, trial_open, trial_skip
from tests.judging.pages import open_trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


@pytest.fixture
def queue(make_model_config, make_experiment, judge):
    """A launched live debate: the judge's 4 trials are ready at once, listed in queue order."""
    experiment = make_experiment(make_model_config("m"), mode="live", num_questions=4)
    experiment_launch(experiment=experiment)
    trials = list(experiment.trials.order_by("queue_position"))
    assert [t.status for t in trials] == [Trial.Status.READY] * 4
    return trials


def snapshot(trial):
    trial.refresh_from_db()
    return trial.status, trial.opened_at, trial.skipped_at, trial.skip_reason, trial.turns.count()


def test_the_queue_is_in_planned_order_and_only_its_first_trial_is_offered(judge_client, judge, queue):
    assert list(selectors.judge_queue(judge)) == queue
    body = judge_client.get(reverse("judging:queue")).content.decode()
    assert reverse("judging:trial", args=[queue[0].pk]) in body
    for later in queue[1:]:
        assert reverse("judging:trial", args=[later.pk]) not in body  # listed, but not a link
        assert later.question.text[:40] in body
    assert judge_client.get(reverse("judging:next")).url == reverse("judging:trial", args=[queue[0].pk])
    assert json.loads(judge_client.get(reverse("judging:queue_json")).content)["ready"] == [t.pk for t in queue]


def test_opening_a_later_trial_is_refused_clearly_and_changes_nothing(judge_client, judge, queue):
    later = queue[2]
    before = snapshot(later)
    response = judge_client.get(reverse("judging:trial", args=[later.pk]))
    assert response.status_code == 409
    assert "this is not your next trial" in response.content.decode()
    started = judge_client.post(reverse("judging:start", args=[later.pk]))
    assert started.status_code == 409 and "this is not your next trial" in started.content.decode()
    assert snapshot(later) == before and before[1] is None  # not opened, no round started
    with pytest.raises(TrialRefused, match="not your next trial") as refusal:
        trial_open(trial=later)
    assert refusal.value.status == 409 and snapshot(later) == before
    # Nor can its transcript be read ahead, or a move or a verdict be made on it.
    state = judge_client.get(reverse("judging:trial_state", args=[later.pk]))
    assert state.status_code == 409 and "not your next trial" in state.json()["error"]
    assert judge_client.get(reverse("judging:trial_live", args=[later.pk])).status_code == 409
    with pytest.raises(MoveRefused, match="open this trial first"):
        live_move(trial_id=later.pk, judge=judge, action="end")
    verdict = judge_client.post(
        reverse("judging:verdict", args=[later.pk]), {"chosen": "A", "probability": "0.8", "rationale": "r"}
    )
    assert verdict.status_code == 409 and not Verdict.objects.exists()
    assert snapshot(later) == before


def test_the_next_trial_opens_and_stays_the_judges_until_it_is_finished(judge_client, judge, queue):
    first = queue[0]
    before = snapshot(first)
    assert judge_client.get(reverse("judging:trial", args=[first.pk])).status_code == 200
    assert snapshot(first) == before  # viewing starts nothing: no time, no round (a GET is safe)
    assert open_trial(judge_client, first).status_code == 200
    assert snapshot(first)[1] is not None and first.turns.count() == 2  # started: round 1 too
    assert judge_client.get(reverse("judging:trial", args=[queue[1].pk])).status_code == 409
    queue_page = judge_client.get(reverse("judging:queue")).content.decode()
    assert "Continue your trial" in queue_page and "(in progress)" in queue_page


def test_a_trial_planned_earlier_that_becomes_ready_later_waits_for_the_one_in_progress(
    judge_client, judge, make_model_config, make_experiment
):
    experiment = make_experiment(make_model_config("m"), num_questions=3)  # pre-generated
    experiment_launch(experiment=experiment)
    first, second, third = experiment.trials.order_by("queue_position")

    def generated(trial):
        trial.turns.update(status=Turn.Status.DONE, text="An argument.", finished_at=timezone.now())
        Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.READY)

    generated(second)  # the first is still being generated: the second is the next ready one
    assert open_trial(judge_client, second).status_code == 200
    generated(first)
    assert list(selectors.judge_queue(judge)) == [second, first]  # the one in progress first
    assert judge_client.get(reverse("judging:trial", args=[first.pk])).status_code == 409
    judge_client.post(
        reverse("judging:verdict", args=[second.pk]), {"chosen": "A", "probability": "0.8", "rationale": "r"}
    )
    assert Trial.objects.get(pk=second.pk).status == Trial.Status.JUDGED
    assert judge_client.get(reverse("judging:next")).url == reverse("judging:trial", args=[first.pk])
    assert third.pk not in [t.pk for t in selectors.judge_queue(judge)]  # still being generated


def skip(client, trial, reason):
    return client.post(reverse("judging:skip", args=[trial.pk]), {"reason": reason})


def test_a_skip_with_a_reason_is_recorded_and_the_judge_goes_on_to_the_next_trial(judge_client, judge, queue):
    response = skip(judge_client, queue[0], "  I wrote this question myself.  ")
    assert response.status_code == 302 and response.url == reverse("judging:queue")
    skipped = Trial.objects.get(pk=queue[0].pk)
    assert skipped.status == Trial.Status.SKIPPED and skipped.skipped_at is not None
    assert skipped.skip_reason == "I wrote this question myself."
    assert [t.pk for t in selectors.judge_queue(judge)] == [t.pk for t in queue[1:]]
    page = judge_client.get(reverse("judging:queue")).content.decode()
    assert "Trial skipped." in page and "1 skipped" in page
    # A skipped trial cannot be opened again nor judged.
    again = judge_client.get(reverse("judging:trial", args=[skipped.pk]))
    assert again.status_code == 409 and "You skipped this trial." in again.content.decode()
    assert judge_client.get(reverse("judging:trial_state", args=[skipped.pk])).status_code == 409
    verdict = judge_client.post(
        reverse("judging:verdict", args=[skipped.pk]), {"chosen": "A", "probability": "0.8", "rationale": "r"}
    )
    assert verdict.status_code == 409 and not Verdict.objects.exists()


def test_an_opened_trial_can_be_skipped_from_its_page(judge_client, judge, queue):
    page = judge_client.get(reverse("judging:trial", args=[queue[0].pk])).content.decode()
    assert f'action="{reverse("judging:skip", args=[queue[0].pk])}"' in page
    assert skip(judge_client, queue[0], "The debaters never answer.").status_code == 302
    assert Trial.objects.get(pk=queue[0].pk).status == Trial.Status.SKIPPED
    # Its live turns are no longer generated: a skipped trial is not waiting for anything.
    assert queue[0].pk not in trials_with_pending_turns().values_list("pk", flat=True)


@pytest.mark.parametrize("reason", ["", "   ", "\x00", "x" * (SKIP_REASON_MAX + 1)])
def test_a_skip_without_a_reason_or_with_too_long_a_one_is_refused_and_changes_nothing(
    judge_client, judge, queue, reason
):
    before = snapshot(queue[0])
    response = skip(judge_client, queue[0], reason)
    assert response.status_code == 400
    body = response.content.decode()
    assert "why you skip this trial" in body or f"limited to {SKIP_REASON_MAX} characters" in body
    assert snapshot(queue[0]) == before
    assert list(selectors.judge_queue(judge)) == queue


def test_a_second_skip_is_refused_and_the_first_reason_is_kept(judge_client, queue):
    skip(judge_client, queue[0], "first reason")
    response = skip(judge_client, queue[0], "second reason")
    assert response.status_code == 409 and "already skipped this trial" in response.content.decode()
    assert Trial.objects.get(pk=queue[0].pk).skip_reason == "first reason"
    assert Trial.objects.get(pk=queue[1].pk).status == Trial.Status.READY  # the next one is untouched


def test_skipping_an_unknown_or_another_judges_trial_is_not_found_and_changes_nothing(
    client, judge, other_judge, queue
):
    client.force_login(other_judge)
    before = snapshot(queue[0])
    assert skip(client, queue[0], "not mine").status_code == 404
    assert skip(client, Trial(pk=queue[-1].pk + 999), "nobody's").status_code == 404
    assert snapshot(queue[0]) == before
    with pytest.raises(TrialRefused, match="no such trial") as refusal:
        trial_skip(trial_id=queue[0].pk, judge=other_judge, reason="not mine")
    assert refusal.value.status == 404 and snapshot(queue[0]) == before


def test_a_later_trial_cannot_be_skipped_to_reach_another_and_the_reason_comes_back_escaped(judge_client, queue):
    before = snapshot(queue[2])
    response = skip(judge_client, queue[2], '<script>alert("x")</script> skip')
    assert response.status_code == 409
    body = response.content.decode()
    assert "not your next trial" in body
    assert "<script>alert" not in body and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; skip" in body
    assert snapshot(queue[2]) == before


def test_a_judged_trial_cannot_be_skipped(judge_client, judge, queue):
    judge_client.get(reverse("judging:trial", args=[queue[0].pk]))
    Trial.objects.filter(pk=queue[0].pk).update(status=Trial.Status.JUDGED)
    response = skip(judge_client, queue[0], "too late")
    assert response.status_code == 409 and "already given a verdict" in response.content.decode()
    assert Trial.objects.get(pk=queue[0].pk).skip_reason == ""


def test_the_database_keeps_a_skip_with_its_time_and_reason_only(queue):
    def refused(**fields):
        try:
            with transaction.atomic():
                Trial.objects.filter(pk=queue[0].pk).update(**fields)
        except IntegrityError:
            return True
        return False

    assert refused(status=Trial.Status.SKIPPED, skipped_at=timezone.now(), skip_reason="")
    assert refused(status=Trial.Status.SKIPPED, skip_reason="why")
    assert refused(skipped_at=timezone.now(), skip_reason="why")  # still ready
    assert not refused(status=Trial.Status.SKIPPED, skipped_at=timezone.now(), skip_reason="why")
