"""Every bad input a clear error, nothing lost (issue 13, part 3)."""

from unittest import mock

import pytest
from kombu.exceptions import OperationalError

from judging.models import Experiment, Turn

# Transactional, as in production: the work is announced when the launch's transaction commits, before
# the admin writes its message (inside a test's outer transaction it would wait for the test's end).
broker = pytest.mark.django_db(transaction=True)

UNREACHABLE = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def post_action(admin_client, action, experiment):
    response = admin_client.post(
        "/admin/judging/experiment/", {"action": action, "_selected_action": [experiment.pk]}, follow=True
    )
    return response.content.decode()


@broker
def test_a_launch_whose_work_cannot_reach_the_broker_says_so_and_how_to_recover(
    admin_client, make_model_config, make_experiment
):
    experiment = make_experiment(make_model_config("m"))
    with mock.patch("generation.tasks.generate_turns.apply_async", side_effect=UNREACHABLE):
        page = post_action(admin_client, "launch", experiment)
    assert "launched 4 trials, but the work could not be sent to the workers" in page
    assert "Re-queue unfinished generation" in page and "queued for the workers" not in page
    # Nothing is lost: the trials and their pending turns are there for the re-queue.
    assert Experiment.objects.get(pk=experiment.pk).status == "launched"
    assert Turn.objects.filter(trial__experiment=experiment, status="pending").count() == 16
    with mock.patch("generation.tasks.generate_turns.apply_async") as send:
        page = post_action(admin_client, "requeue", experiment)
    assert send.called and "the work is queued for the workers" in page and "could not be sent" not in page


@broker
def test_a_launch_whose_work_is_sent_says_it_is_queued(admin_client, make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"))
    with mock.patch("generation.tasks.generate_turns.apply_async"):
        page = post_action(admin_client, "launch", experiment)
    assert "launched 4 trials; the work is queued for the workers." in page
    with mock.patch("generation.tasks.generate_turns.apply_async", side_effect=UNREACHABLE):
        page = post_action(admin_client, "requeue", experiment)
    assert "could not be sent to the workers" in page
