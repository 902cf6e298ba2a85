"""The model alone per assistant configuration, through Redis and real worker processes: each
configuration's baseline is sent to its own queue, and only a worker started for that queue answers it."""

import pytest

from judging.models import LineupMember, ModelAnswer
from judging.services import experiment_launch

from .test_integration_celery import start_worker, stop_worker, wait_until, worker_log  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_each_assistant_configuration_answers_alone_on_its_own_queue(
    worker_log,  # noqa: F811
    make_model_config,
    make_experiment,
    tiny_model_dir,
):
    prompted = make_model_config(tiny_model_dir, name="prompted", queue="assistant-prompted")
    fine_tuned = make_model_config(tiny_model_dir, name="fine-tuned", queue="assistant-fine-tuned")
    # One judge, four questions: one trial in each cell (judge alone, honest, and each misleading assistant).
    experiment = make_experiment(
        prompted, conditions=["naive", "assisted-honest", "assisted-misleading"], mode="live", num_questions=4
    )
    for config in (prompted, fine_tuned):
        LineupMember.objects.create(experiment=experiment, arm="assisted-misleading", model_config=config)
    experiment_launch(experiment=experiment)  # autocommit: the messages are in Redis at once
    answers = ModelAnswer.objects.filter(experiment=experiment)

    first = start_worker(worker_log, queues="assistant-prompted")
    try:
        assert wait_until(lambda: answers.filter(model_config=prompted).count() == 4), "prompted did not answer"
        # No worker serves the fine-tuned configuration's queue yet: its message waits there.
        assert not answers.filter(model_config=fine_tuned).exists()
        second = start_worker(worker_log, queues="assistant-fine-tuned")
        try:
            assert wait_until(lambda: answers.filter(model_config=fine_tuned).count() == 4), "fine-tuned did not"
        finally:
            stop_worker(second)
    finally:
        stop_worker(first)
    assert answers.count() == 8
    assert all(a.probability_a_swapped is not None for a in answers)  # both orders, as in-process
