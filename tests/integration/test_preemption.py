"""A live turn pauses pre-generated work on a real Celery worker, and a worker killed while a row is paused
loses nothing: every turn is written exactly once (issue 12, part 1). PostgreSQL pass only (as
test_integration_celery.py: the worker process must share the test database)."""

import time

import pytest

from judging.models import Trial, Turn
from judging.services import experiment_launch, trial_open

from . import test_integration_celery
from .test_integration_celery import all_ready, start_worker, stop_worker, wait_until

worker_log = test_integration_celery.worker_log  # the fixture (a worker's log file; skips without PostgreSQL)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_while_a_row_is_paused_loses_nothing(
    worker_log, make_model_config, make_experiment, tiny_model_dir
):
    # Long speeches (1,000 tokens, never stopped by the character limit), more than the worker has room for, so that
    # its batch is full of pre-generated rows throughout and the live speech runs for a while. The kill must land
    # while the live speech is written and both busy speeches are claimed (one paused), a window that ends when the
    # running busy speech finishes: 400 tokens once proved too short on a loaded machine. One model configuration
    # for both experiments: a live turn of another configuration waits for the batch to drain instead.
    config = make_model_config(tiny_model_dir, max_new_tokens=1000)
    busy = make_experiment(config, name="busy", num_questions=2, rounds=1, char_limit=20000)
    live = make_experiment(
        config, mode="live", rounds=2, min_rounds=1, num_questions=1, turn_style="sequential", char_limit=20000
    )
    name = f"paused-{time.time_ns()}@%h"
    # Room for two speeches and no row kept for live ones: the live speech must pause a busy one.
    first = start_worker(worker_log, name=name, batch_size=2, live_turns_beyond_batch=0)
    try:
        experiment_launch(experiment=busy)
        writing = Turn.objects.filter(trial__experiment=busy, status="running")
        assert wait_until(lambda: writing.count() == 2), "the worker never filled its batch"
        experiment_launch(experiment=live)
        trial = Trial.objects.get(experiment=live)
        trial_open(trial=trial)  # a judge starts the live debate: its first speech must not wait
        live_turn = Turn.objects.filter(trial=trial, round=1, status="running").exclude(partial_text="")
        # The live speech is being written while two busy speeches are claimed: with room for two rows,
        # one of them is paused.
        assert wait_until(lambda: live_turn.exists() and writing.count() == 2), "the live speech waited"
        first.kill()  # SIGKILL while a row is paused
        first.wait()
    finally:
        stop_worker(first)
    lost = set(Turn.objects.filter(trial__experiment=busy, status="running").values_list("pk", flat=True))
    assert len(lost) == 2
    # Restarted under the same node name, the worker releases its predecessor's claims (the paused row's too)
    # and writes every turn, once.
    second = start_worker(worker_log, name=name, batch_size=2, live_turns_beyond_batch=0)
    try:
        assert wait_until(lambda: all_ready(busy)), "the busy speeches were not completed"
        assert wait_until(lambda: not Turn.objects.filter(trial=trial, round=1).exclude(status="done").exists())
    finally:
        stop_worker(second)
    busy_turns = Turn.objects.filter(trial__experiment=busy)
    assert busy_turns.count() == 4 and {t.status for t in busy_turns} == {"done"}
    # The attempts lost with the worker (the paused row's too) are counted; no other turn was written twice.
    assert {t.pk: t.attempts for t in busy_turns} == {t.pk: 2 if t.pk in lost else 1 for t in busy_turns}
    assert all(t.text and t.tokens_out for t in busy_turns)
    speeches = Turn.objects.filter(trial=trial, round=1)
    assert {t.status for t in speeches} == {"done"} and all(t.text for t in speeches)
