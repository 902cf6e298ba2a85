"""The one claim API (TurnQuerySet) and how judging's announcements reach the workers."""

from unittest import mock

from judging.models import CLEARED_CLAIM, Turn
from judging.services import experiment_launch, failed_turns_retry


def test_a_claim_holds_only_pending_turns_and_a_release_clears_every_claim_field(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("any-model"), num_questions=1)
    experiment_launch(experiment=experiment)
    ids = list(Turn.objects.filter(trial__experiment=experiment, round=1).values_list("id", flat=True))
    token = Turn.objects.filter(id__in=ids).claim(claimed_by="celery@gpu0")
    assert Turn.objects.held(token).count() == len(ids)
    assert Turn.objects.filter(id__in=ids).claim() and Turn.objects.held("other").count() == 0  # nothing twice
    Turn.objects.held(token).update(partial_text="half a speech")
    assert Turn.objects.held(token).release(to=Turn.Status.PENDING, error="lost") == len(ids)
    for turn in Turn.objects.filter(id__in=ids):
        assert turn.status == Turn.Status.PENDING and turn.error == "lost"
        assert {field: getattr(turn, field) for field in CLEARED_CLAIM} == CLEARED_CLAIM
        assert turn.claimed_by == "celery@gpu0"  # which worker last held it stays, for an operator
    assert Turn.objects.held(token).count() == 0  # a released claim writes nothing any more


def test_a_turn_whose_worker_died_too_often_fails_instead_of_looping(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("any-model"), num_questions=1)
    experiment_launch(experiment=experiment)
    turns = Turn.objects.filter(trial__experiment=experiment, round=1)
    first, second = turns.order_by("index")
    Turn.objects.filter(pk=first.pk).update(attempts=2)
    turns.claim(claimed_by="celery@gpu0")
    assert Turn.objects.filter(claimed_by="celery@gpu0").release_dead_workers() == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempts, second.status, second.attempts) == ("failed", 3, "pending", 1)


def test_judging_announces_work_and_the_generation_app_sends_it(
    make_model_config, make_experiment, django_capture_on_commit_callbacks
):
    experiment = make_experiment(make_model_config("any-model"), num_questions=1)
    with mock.patch("generation.receivers.enqueue_generation") as send:
        with django_capture_on_commit_callbacks(execute=True):
            experiment_launch(experiment=experiment)
        send.assert_called_once_with(experiment.pk)
        Turn.objects.filter(trial__experiment=experiment).update(status=Turn.Status.FAILED)
        with django_capture_on_commit_callbacks(execute=True):
            assert failed_turns_retry(experiment_id=experiment.pk) == 4
        assert send.call_count == 2
