"""Trial numbering per experiment, expected minutes and the admin's 'In progress' (judging/orientation.py)."""

import pytest
from django.utils import timezone

from judging import orientation, services
from judging.models import Trial, Turn


def launched(make_experiment, config, name, **kwargs):
    experiment = make_experiment(config, name=name, **kwargs)
    services.experiment_launch(experiment=experiment)
    Turn.objects.filter(trial__experiment=experiment).update(
        status=Turn.Status.DONE, text="x", finished_at=timezone.now()
    )
    experiment.trials.update(status=Trial.Status.READY)
    return experiment


def number(trial):
    trial.refresh_from_db()
    found = orientation.trial_number(trial)
    return found["k"], found["n"]


def test_trials_are_numbered_in_their_own_experiment_counting_what_was_finished(
    make_model_config, make_experiment, judge, server_clock
):
    config = make_model_config("m")
    first, second = (launched(make_experiment, config, name) for name in ("First", "Second"))
    queue = list(first.trials.order_by("queue_position"))
    assert number(queue[0]) == (1, 4)
    services.trial_open(trial=queue[0])
    services.verdict_submit(trial_id=queue[0].pk, judge=judge, chosen="A", probability=0.7, rationale="r")
    server_clock.advance(5)
    services.trial_skip(trial_id=queue[1].pk, judge=judge, reason="broken")
    server_clock.advance(5)
    assert number(queue[2]) == (3, 4)  # one judged, one skipped before it
    assert number(queue[0]) == (1, 4)  # a judged trial keeps its place
    services.trial_open(trial=queue[2])
    services.verdict_submit(trial_id=queue[2].pk, judge=judge, chosen="A", probability=0.7, rationale="r")
    assert number(queue[2]) == (3, 4)
    assert number(second.trials.order_by("queue_position").first()) == (1, 4)  # another experiment starts at 1
    # A failed trial is not counted (its replacement is); practice is numbered among practice trials.
    Trial.objects.filter(pk=queue[3].pk).update(status=Trial.Status.FAILED)
    assert number(queue[2]) == (3, 3)
    practice = second.trials.order_by("queue_position").last()
    Trial.objects.filter(pk=practice.pk).update(role=Trial.Role.PRACTICE)
    assert number(practice) == (1, 1) and number(second.trials.order_by("queue_position").first()) == (1, 3)


def test_expected_minutes_are_the_median_of_the_kind_or_its_default(make_model_config, make_experiment, judge):
    experiment = launched(make_experiment, make_model_config("m"), "Timed", num_questions=4)
    trials = list(experiment.trials.order_by("queue_position"))
    assert orientation.expected_minutes(trials) == {}
    orientation.queue_badges(trials)
    assert trials[0].orientation["minutes"] == orientation.DEFAULT_MINUTES["debate"]
    assert not trials[0].orientation["measured"]
    for trial, seconds in zip(trials[:3], (60, 200, 10_000)):
        services.trial_open(trial=trial)
        verdict = services.verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability=0.7, rationale="r")
        type(verdict).objects.filter(pk=verdict.pk).update(active_seconds=seconds)
    assert orientation.expected_minutes(trials) == {(experiment.pk, "debate"): (3, True)}  # 200 s, not the mean


@pytest.mark.parametrize("opened,label", [(False, "Ready to judge"), (True, "In progress")])
def test_the_admin_says_an_opened_trial_is_in_progress(admin_client, ready_trial, opened, label):
    if opened:
        services.trial_open(trial=ready_trial)
    page = admin_client.get(f"/admin/judging/trial/?experiment__id__exact={ready_trial.experiment_id}").content
    assert label in page.decode()
    if opened:
        assert page.decode().count("In progress") == 1
