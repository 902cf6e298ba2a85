"""The locks that order a judge's writes with an experiment's close, on PostgreSQL (SQLite locks the whole database
for a write): the beats, moves and verdicts of different trials of one experiment do not wait for each other, and a
close waits for those in flight, and a trial is not opened while its experiment closes (services._lock_trial,
services.experiment_close, services.trial_open)."""

import threading
import time

import pytest
from django.db import connection

from judging import services
from judging.models import Experiment
from judging.services import (
    BeatRefused,
    TrialRefused,
    active_time_beat,
    experiment_close,
    experiment_launch,
    trial_open,
)

pytestmark = pytest.mark.django_db(transaction=True)
GUARD_SECONDS = 600  # only stops a hung test; nothing is decided by time


@pytest.fixture
def two_judges_trials(make_model_config, make_experiment, judge, other_judge):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite locks the whole database for a write)")
    experiment = make_experiment(make_model_config("m"), judges=[judge, other_judge], mode="live", rounds=2)
    experiment_launch(experiment=experiment)
    trials = []
    for person in (judge, other_judge):
        trial = experiment.trials.filter(judge=person).order_by("queue_position").first()
        trial_open(trial=trial)
        trials.append(trial)
    return experiment, trials


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def wait_until_waiting_on_a_lock(thread, pid: list) -> str | None:
    """The wait event of the thread's PostgreSQL backend once it waits on a lock, or its last one if the thread
    ended first (never decided by time: the guard only stops a hung test)."""
    guard, waiting = time.monotonic() + GUARD_SECONDS, None
    while thread.is_alive() and time.monotonic() < guard:
        if pid:
            with connection.cursor() as cursor:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid[0]])
                waiting = cursor.fetchone()[0]
            if waiting == "Lock":
                return waiting
        time.sleep(0.02)
    return waiting


def in_thread_waiting_on_a_lock(name, work):
    """``work`` in a thread of its own, which must come to wait on a lock (its PostgreSQL backend says so) and stay
    there: the thread and its outcome."""
    pid = []

    def recorded():
        pid.append(backend_pid())
        return work()

    thread, outcome = in_thread(name, recorded)
    assert wait_until_waiting_on_a_lock(thread, pid) == "Lock" and thread.is_alive(), outcome
    return thread, outcome


def in_thread(name, work):
    """``work`` in a thread of its own (its own database connection), its outcome kept."""
    outcome = {}

    def run():
        try:
            outcome["result"] = work()
        except Exception as error:  # noqa: BLE001 - kept for the test to look at
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, outcome


def test_judges_of_one_experiment_write_side_by_side_and_a_close_waits_for_them(
    two_judges_trials, judge, other_judge, monkeypatch
):
    experiment, (first, second) = two_judges_trials
    locked, release = threading.Event(), threading.Event()
    checked = services._refuse_unless_opened

    def held_open(trial, refusal):  # the first judge's beat stops here, its locks taken, until released
        checked(trial, refusal)
        if threading.current_thread().name == "in flight":
            locked.set()
            assert release.wait(GUARD_SECONDS)

    monkeypatch.setattr(services, "_refuse_unless_opened", held_open)

    def first_beat():
        return active_time_beat(trial_id=first.pk, judge=judge, page="p1", seq=1, fresh=True)

    in_flight, in_flight_outcome = in_thread("in flight", first_beat)
    try:
        assert locked.wait(GUARD_SECONDS)
        # Another judge's beat on the same experiment goes through while the first holds its locks. (Were the
        # experiment locked for update, it would wait: the lock timeout only turns a hang into a failure.)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '60s'")
        active_time_beat(trial_id=second.pk, judge=other_judge, page="p2", seq=1, fresh=True)
        # A close waits for the beat in flight.
        closer, closed = in_thread_waiting_on_a_lock("closer", lambda: experiment_close(experiment=experiment))
    finally:
        release.set()
        in_flight.join(GUARD_SECONDS)
    closer.join(GUARD_SECONDS)
    assert "error" not in in_flight_outcome and "error" not in closed, (in_flight_outcome, closed)
    # Once closed, no beat is taken.
    with pytest.raises(BeatRefused, match="closed"):
        active_time_beat(trial_id=second.pk, judge=other_judge, page="p2", seq=2, fresh=False)


def test_a_trial_is_not_opened_while_its_experiment_closes(make_model_config, make_experiment, judge, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite locks the whole database for a write)")
    experiment = make_experiment(make_model_config("m"), mode="live", rounds=2)
    experiment_launch(experiment=experiment)
    trial = experiment.trials.filter(judge=judge).order_by("queue_position").first()
    locked, release = threading.Event(), threading.Event()
    save = Experiment.save

    def held_closing(self, *args, **kwargs):  # the close stops here, the experiment locked, until released
        if threading.current_thread().name == "closer":
            locked.set()
            assert release.wait(GUARD_SECONDS)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "save", held_closing)
    closer, closed = in_thread("closer", lambda: experiment_close(experiment=experiment))
    try:
        assert locked.wait(GUARD_SECONDS)
        opener, opened = in_thread_waiting_on_a_lock("opener", lambda: trial_open(trial=trial))
    finally:
        release.set()
        closer.join(GUARD_SECONDS)
    opener.join(GUARD_SECONDS)
    assert "error" not in closed, closed
    assert isinstance(opened.get("error"), TrialRefused) and "closed" in str(opened["error"])
    trial.refresh_from_db()
    assert trial.opened_at is None


def test_a_judge_starting_a_trial_locks_their_trials_not_the_experiment(
    make_model_config, make_experiment, judge, other_judge, monkeypatch
):
    """Starting a trial locks the judge's queue: their ready trials' rows only. (Their default ordering joins the
    experiment, whose row a plain FOR UPDATE locked too: every other judge's beat then waited for the start, and a
    beat on the starting judge's own open trial, holding the experiment for share, could deadlock with it.)"""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite locks the whole database for a write)")
    experiment = make_experiment(make_model_config("m"), judges=[judge, other_judge], mode="live", rounds=2)
    experiment_launch(experiment=experiment)
    starting = experiment.trials.filter(judge=judge).order_by("queue_position").first()
    beating = experiment.trials.filter(judge=other_judge).order_by("queue_position").first()
    trial_open(trial=beating)
    locked, release = threading.Event(), threading.Event()
    checked = services._refuse_unless_next

    def held_starting(trial):  # the start stops here, its locks taken, until released
        if threading.current_thread().name == "starting":
            locked.set()
            assert release.wait(GUARD_SECONDS)
        checked(trial)

    monkeypatch.setattr(services, "_refuse_unless_next", held_starting)
    starter, started = in_thread("starting", lambda: trial_open(trial=starting))
    try:
        assert locked.wait(GUARD_SECONDS)
        with connection.cursor() as cursor:  # a wait turned into a failure (never decided by time otherwise)
            cursor.execute("SET lock_timeout = '60s'")
        active_time_beat(trial_id=beating.pk, judge=other_judge, page="p2", seq=1, fresh=True)
    finally:
        release.set()
        starter.join(GUARD_SECONDS)
    assert "error" not in started, started
    starting.refresh_from_db()
    assert starting.opened_at is not None
