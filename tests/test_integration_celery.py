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

from judging.models import Trial, Turn
from judging.services import experiment_launch
from models_runner.tasks import reconcile_generation

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the worker process must share the test database (run by dev.py test)")
    redis_url = os.environ.get("TEST_REDIS_URL")
    assert redis_url, "TEST_REDIS_URL must point at a running Redis (dev.py test sets it)"
    db = connection.settings_dict
    database_url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": redis_url,
           "DEBATE_GENERATION_BATCH_SIZE": "4"}
    celery_app.control.purge()  # leftovers from other tests must not reach this worker
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "debate_platform", "worker", "--pool=solo",
         "--loglevel=INFO", "--hostname", "test-worker@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    assert wait_until(lambda: celery_app.control.ping(timeout=1), seconds=60), "the worker did not start"
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    print((tmp_path / "worker.log").read_text()[-3000:])


def wait_until(condition, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
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
    with mock.patch("models_runner.tasks.enqueue_generation"):
        experiment_launch(experiment=experiment)
    time.sleep(2)
    assert Turn.objects.filter(trial__experiment=experiment, status="pending").count() == 4
    assert reconcile_generation() == 1  # the database says what is unfinished; re-send it
    assert wait_until(lambda: all_ready(experiment)), "reconciled work was not generated"
