"""End to end through real infrastructure: PostgreSQL, Redis, and a Celery worker process.

Runs in the PostgreSQL pass of ``python3 dev.py test`` (which starts PostgreSQL
and Redis); the SQLite pass skips it because a separate worker process cannot
see pytest's in-memory SQLite database.
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from django.db import connection

from debate_platform.celery import app as celery_app
from generation.tasks import reconcile_generation
from judging.models import Trial, Turn
from judging.services import experiment_launch

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# Every wait below ends as soon as its condition holds; this limit only stops a hung test. It is
# minutes, far above what the work takes even on a loaded machine, so slowness never fails a test.
GUARD_SECONDS = 600


def start_worker(log_path, name=None, queues="generation,celery", batch_size=4, live_turns_beyond_batch=None):
    """A real `celery worker` process on the test database and the test Redis, serving ``queues`` with
    room for ``batch_size`` rows, and ``live_turns_beyond_batch`` more for live turns (None: as shipped)."""
    redis_url = os.environ.get("TEST_REDIS_URL")
    assert redis_url, "TEST_REDIS_URL must point at a running Redis (dev.py test sets it)"
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "DEBATE_GENERATION_BATCH_SIZE": str(batch_size),
    }
    if live_turns_beyond_batch is not None:
        env["DEBATE_GENERATION_LIVE_TURNS_BEYOND_BATCH"] = str(live_turns_beyond_batch)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "debate_platform",
                "worker",
                "--pool=solo",
                "-Q",
                queues,
                "--loglevel=INFO",
                "--hostname",
                name or f"test-worker-{time.time_ns()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    started = wait_until(lambda: process.poll() is not None or celery_app.control.ping(timeout=1))
    assert started and process.poll() is None, "the worker did not start"
    return process


def stop_worker(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def worker_log(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the worker process must share the test database (run by dev.py test)")
    celery_app.control.purge()  # leftovers from other tests must not reach this test's workers
    path = tmp_path / "worker.log"
    yield path
    if path.exists():
        print(path.read_text()[-3000:])


@pytest.fixture
def worker(worker_log):
    process = start_worker(worker_log)
    yield process
    stop_worker(process)


def wait_until(condition, seconds=GUARD_SECONDS):
    """Poll ``condition`` until it holds (True) or the guard runs out (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def all_ready(experiment):
    return not Trial.objects.filter(experiment=experiment).exclude(status=Trial.Status.READY).exists()


def test_a_launched_experiment_is_generated_by_the_worker_and_becomes_judgeable(
    worker, make_model_config, make_experiment, tiny_model_dir
):
    experiment = make_experiment(make_model_config(tiny_model_dir), num_questions=3, rounds=2)
    experiment_launch(experiment=experiment)  # autocommit: the task is sent to Redis at once
    assert wait_until(lambda: all_ready(experiment)), "worker did not finish the experiment"
    turns = Turn.objects.filter(trial__experiment=experiment)
    assert turns.count() == 12 and set(turns.values_list("status", flat=True)) == {"done"}
    assert all(t.tokens_out and t.text and t.attempts == 1 for t in turns)
    assert {t.model_settings["batch_size"] for t in turns} <= {1, 2, 3, 4}
    assert worker.poll() is None  # the worker is still alive


def test_work_whose_message_was_lost_is_recovered_by_the_reconciler(
    worker, make_model_config, make_experiment, tiny_model_dir
):
    experiment = make_experiment(make_model_config(tiny_model_dir), num_questions=2, rounds=1)
    # Simulate a broker that lost the message (e.g. restarted): launch sends nothing.
    with mock.patch("generation.receivers.enqueue_generation") as lost:
        experiment_launch(experiment=experiment)
    lost.assert_called_once_with(experiment.pk)  # the one message that would have started the work
    assert Turn.objects.filter(trial__experiment=experiment, status="pending").count() == 4
    assert reconcile_generation() == 1  # the database says what is unfinished; re-send it
    assert wait_until(lambda: all_ready(experiment)), "reconciled work was not generated"


def test_turns_of_a_worker_killed_mid_generation_are_generated_once_by_another(
    worker_log, make_model_config, make_experiment, tiny_model_dir
):
    # Long turns (1,000 tokens) so the kill lands while the batch is running.
    config = make_model_config(tiny_model_dir, max_new_tokens=1000)
    experiment = make_experiment(config, num_questions=2, rounds=1, char_limit=3000)
    name = f"gpu0-{time.time_ns()}@%h"
    first = start_worker(worker_log, name=name)
    try:
        experiment_launch(experiment=experiment)
        running = Turn.objects.filter(trial__experiment=experiment, status="running")
        assert wait_until(lambda: running.exists()), "the worker never claimed a turn"
        first.kill()  # SIGKILL: no warm shutdown, no chance to clean up
        first.wait()
    finally:
        stop_worker(first)
    assert Turn.objects.filter(trial__experiment=experiment, status="done").count() < 4
    assert running.exists()  # left claimed by the dead worker
    # Restarted under the same node name (as a supervisor restarts a GPU's worker), the worker
    # releases what its dead predecessor had claimed and re-sends it at once: no reconciler needed.
    second = start_worker(worker_log, name=name)
    try:
        assert wait_until(lambda: all_ready(experiment)), "work of the killed worker was not completed"
    finally:
        stop_worker(second)
    turns = Turn.objects.filter(trial__experiment=experiment)
    assert turns.count() == 4 and set(turns.values_list("status", flat=True)) == {"done"}
    assert all(t.text and t.tokens_out for t in turns)
    assert {t.attempts for t in turns} == {2}  # the lost attempt was counted


def test_a_warm_shutdown_finishes_the_turns_being_written_and_takes_no_new_ones(
    worker_log, make_model_config, make_experiment, tiny_model_dir
):
    # 8 long turns (2,000 tokens: seconds each) ready at once; the worker's batch has room for 4
    # (DEBATE_GENERATION_BATCH_SIZE=4).
    config = make_model_config(tiny_model_dir, max_new_tokens=2000)
    experiment = make_experiment(config, num_questions=4, rounds=1, char_limit=8000)
    process = start_worker(worker_log)
    try:
        experiment_launch(experiment=experiment)
        turns = Turn.objects.filter(trial__experiment=experiment)
        assert wait_until(lambda: turns.filter(status="running").exists()), "nothing was claimed"
        process.terminate()  # SIGTERM: Celery's warm shutdown waits for the running task
        process.wait(timeout=GUARD_SECONDS)
    finally:
        stop_worker(process)
    statuses = list(turns.values_list("status", flat=True))
    assert "running" not in statuses and "failed" not in statuses  # nothing left claimed, nothing lost
    assert 1 <= statuses.count("done") <= 4 and statuses.count("pending") >= 4  # the rest waits for a worker
