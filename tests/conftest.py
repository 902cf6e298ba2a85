"""Shared fixtures: factories for the domain, and a tiny real transformers model."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

# Set before Django settings load. With TEST_REDIS_URL the test process sends
# tasks to the Redis the integration test's worker reads; without it, to an
# in-memory broker, so tests never drop messages into the demo's broker folder.
os.environ["CELERY_BROKER_URL"] = os.environ.get("TEST_REDIS_URL") or "memory://"
# With DEBUG off (as pytest-django runs) the settings refuse to start without a key; the processes tests start
# (workers, manage.py) inherit this one.
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-" + "x" * 40)

TESTS = Path(__file__).resolve().parent
# What makes a test a database test: pytest-django's fixtures (live_server and django_db_blocker's
# users depend on these) or its django_db marker.
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup"}
# Tests of these folders need real services whatever they use; the folder gives the marker a test forgot.
SERVICE_FOLDERS = {"browser", "integration"}
# Unit tests that take seconds each, kept out of the fast part: the benchmarks folder, and tests that
# use a fixture starting a process (tests/inference/test_openai_backend.py's `server`: transformers serve).
SLOW_FOLDERS = {"benchmarks"}
SERIAL_FOLDERS = {"integration", "benchmarks"}
SLOW_FIXTURES = {"server"}


def pytest_collection_modifyitems(config, items):
    """Mark every test by what it uses: ``db`` (pytest-django's database) or ``unit`` (no database, no
    services), and ``slow`` where it takes seconds; browser and integration tests also by their folder.
    The fast part is ``pytest -m "unit and not slow"`` (dev.py test --fast)."""
    for item in items:
        folder = Path(item.path).relative_to(TESTS).parts[0]
        if folder in SERVICE_FOLDERS and item.get_closest_marker(folder) is None:
            item.add_marker(getattr(pytest.mark, folder))
        uses_database = item.get_closest_marker("django_db") is not None or bool(
            DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        needs_services = any(item.get_closest_marker(kind) for kind in SERVICE_FOLDERS)
        if uses_database:
            item.add_marker(pytest.mark.db)
        elif not needs_services:
            item.add_marker(pytest.mark.unit)
        if folder in SLOW_FOLDERS or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if folder in SERIAL_FOLDERS:
            # With pytest-xdist (dev.py test runs -n auto --dist loadgroup) these run one at a time, in one process:
            # they start Celery workers on the one test Redis (a worker would take another test's tasks), servers
            # and benchmarks that load the machine.
            item.add_marker(pytest.mark.xdist_group("services"))


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (the test settings' is in memory): rate-limit counters
    (judging/ratelimit.py) are keyed by user id, which another test's user may have had."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _models_forget_earlier_tests():
    """Models stay loaded from one test to the next (the pool), but not what a test left in them: prompt caches
    kept for prefix reuse and when a live turn was last seen change what a later test's turns prefill, and so
    made tests depend on which ran before them in the same process (pytest-xdist orders them differently)."""
    yield
    backends = sys.modules.get("generation.backends")  # not imported: no model was loaded
    for backend in backends.pool.backends() if backends else ():
        if getattr(backend, "prefix_cache", None) is not None:
            backend.prefix_cache.clear()
        if hasattr(backend, "live_seen_at"):
            backend.live_seen_at = None


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer Llama built from a config (random weights) with SmolLM2's real tokenizer.

    Real transformers code paths, but generates in milliseconds.
    """
    import torch
    from django.conf import settings
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from inference.bundled import SMOLLM2, resolve_bundled

    tokenizer = AutoTokenizer.from_pretrained(resolve_bundled(SMOLLM2, settings.MODEL_CACHE_DIR))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class RequestGate:
    """The live server's WSGI application, wrapped: counts the requests in progress and, while closed, answers 503
    without touching the database. Closed at the end of each test that uses the server (``_live_server_quiet``), so
    that no request a page still sends (a poll, a beat as it closes) runs while the test's database is flushed."""

    def __init__(self, app):
        self.app, self.open, self.active = app, True, 0
        self.condition = threading.Condition()

    def __call__(self, environ, start_response):
        with self.condition:
            if not self.open:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"the test is over"]
            self.active += 1
        try:
            reply = self.app(environ, start_response)
            try:
                return list(reply)  # the whole reply, inside the count
            finally:
                if hasattr(reply, "close"):
                    reply.close()  # Django's request_finished (its connections' and caches' clean-up), as WSGI asks
        finally:
            with self.condition:
                self.active -= 1
                self.condition.notify_all()

    def close(self, timeout: float) -> None:
        with self.condition:
            self.open = False
            if not self.condition.wait_for(lambda: self.active == 0, timeout):
                raise AssertionError(f"{self.active} live-server request(s) still running after {timeout} s")

    def reopen(self) -> None:
        with self.condition:
            self.open = True


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, started only once the test database exists. On SQLite the test database is in
    memory, and the server's threads share this thread's connection only if it already points there when the
    server starts (as in Django's LiveServerTestCase); otherwise each opens its own connection to the shared
    in-memory cache, whose table locks are not waited for: a test writing a turn while the page polls then failed
    at random with "database table is locked", depending on whether an earlier test had created the database."""
    live_server.gate = RequestGate(live_server.thread.httpd.get_app())
    live_server.thread.httpd.set_app(live_server.gate)
    return live_server


@pytest.fixture(autouse=True)
def _live_server_quiet(request):
    """Around a test using the live server: its gate open during the test, closed (requests in progress finished)
    before the database is flushed. Set up after pytest-django's database fixtures (autouse fixtures of plugins come
    before a conftest's: checked with --setup-show), so torn down before them."""
    if "live_server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("live_server")
    server.gate.reopen()
    yield
    server.gate.close(timeout=600)  # a request generating a turn eagerly can take minutes on a loaded machine


@pytest.fixture
def server_clock(monkeypatch):
    """The server's clock (``django.utils.timezone.now``), frozen, moved only by ``server_clock.advance(s)``;
    a live_server runs in this process, so it follows the same clock."""
    from datetime import timedelta

    from django.utils import timezone

    class Clock:
        now = timezone.now()

        def advance(self, seconds: float) -> None:
            self.now += timedelta(seconds=seconds)

    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


@pytest.fixture
def spend_active_time(server_clock):
    """``spend(trial, judge, seconds)``: an open trial's page beats (judging.services.active_time_beat) while
    the server's clock moves ``seconds`` on, which become the trial's active time; a verdict submitted next
    adds nothing more."""
    import uuid

    from django.conf import settings

    from judging.services import active_time_beat

    def spend(trial, judge, seconds: float) -> None:
        page, seq = uuid.uuid4().hex, 1
        active_time_beat(trial_id=trial.pk, judge=judge, page=page, seq=seq, fresh=True)
        while seconds > 0:
            step = min(seconds, settings.JUDGE_BEAT_SECONDS)
            server_clock.advance(step)
            seconds -= step
            seq += 1
            active_time_beat(trial_id=trial.pk, judge=judge, page=page, seq=seq, fresh=False)

    return spend


@pytest.fixture
def judge(django_user_model):
    return django_user_model.objects.create_user(username="judy", password="judge-pass-123")


@pytest.fixture
def other_judge(django_user_model):
    return django_user_model.objects.create_user(username="otto", password="judge-pass-456")


@pytest.fixture
def question_set(db):
    from judging.importers import import_questions

    questions = [
        {
            "external_id": f"q{i}",
            "text": f"Question number {i}: is the sky green?",
            "choices": [f"Yes, answer {i}", f"No, answer {i}", f"Maybe, answer {i}"],
            "correct_index": i % 3,
            "passage": f"PASSAGE-SECRET-{i} The sky is blue on clear days.",
            "metadata": {},
        }
        for i in range(12)
    ]
    return import_questions(set_name="Test set", questions=questions)


@pytest.fixture
def make_model_config(db):
    from judging.models import ModelConfig

    def make(model_name: str, **kwargs):
        fields = {
            "name": f"config for {model_name}",
            "model_name": str(model_name),
            "temperature": 0.0,
            "max_new_tokens": 24,
        } | kwargs
        return ModelConfig.objects.create(**fields)

    return make


@pytest.fixture
def make_experiment(question_set, judge):
    from judging.models import Experiment

    def make(model_config, judges=None, **kwargs):
        fields = {
            "name": "Test experiment",
            "question_set": question_set,
            "num_questions": 4,
            "rounds": 2,
            "char_limit": 300,
            "debater_model": model_config,
            "seed": 1234,
        } | kwargs
        experiment = Experiment.objects.create(**fields)
        experiment.judges.set(judges if judges is not None else [judge])
        return experiment

    return make


@pytest.fixture
def ready_trial(make_model_config, make_experiment, judge):
    """A launched experiment whose first trial has a complete transcript (fixed text)."""
    from django.utils import timezone

    from judging.models import Trial, Turn
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("SECRET-MODEL-NAME"))
    experiment_launch(experiment=experiment)
    trial = experiment.trials.order_by("queue_position").first()
    for turn in trial.turns.all():
        Turn.objects.filter(pk=turn.pk).update(
            status=Turn.Status.DONE,
            text=f"Argument of debater {turn.speaker} in round {turn.round}.",
            prompt="SECRET-PROMPT",
            finished_at=timezone.now(),
        )
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.READY)
    trial.refresh_from_db()
    return trial


@pytest.fixture
def plan_first(db):
    """Reorder a judge's planned queue so that the given trials come first, in that order: for tests about
    particular trials, since a judge may only open their next trial (judging.models.TrialQuerySet.queue_of)."""
    from judging.models import Trial

    def reorder(*trials):
        first = [t.pk for t in trials]
        rest = Trial.objects.filter(experiment_id=trials[0].experiment_id, judge_id=trials[0].judge_id).exclude(
            pk__in=first
        )
        order = first + list(rest.order_by("queue_position").values_list("pk", flat=True))
        for position, pk in enumerate(order):
            Trial.objects.filter(pk=pk).update(queue_position=position)
        for trial in trials:
            trial.refresh_from_db(fields=["queue_position"])

    return reorder


@pytest.fixture
def eager_celery():
    """Run Celery tasks inline, in the caller's thread (for tests of pages that trigger generation)."""
    from debate_platform.celery import app

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.fixture
def live_experiment(make_model_config, make_experiment, tiny_model_dir):
    """A launched live debate (3 rounds, may end after 1) with a tiny real model."""
    from judging.services import experiment_launch

    experiment = make_experiment(
        make_model_config(tiny_model_dir, max_new_tokens=12), mode="live", rounds=3, min_rounds=2, num_questions=2
    )
    experiment_launch(experiment=experiment)
    experiment.refresh_from_db()  # launched: a test that changes and saves it must not write back the draft
    return experiment


@pytest.fixture
def sandwich_experiment(make_model_config, make_experiment, tiny_model_dir, judge):
    """A launched live sandwiching experiment: 6 trials for one judge, two per condition."""
    from judging.services import experiment_launch

    experiment = make_experiment(
        make_model_config(tiny_model_dir, max_new_tokens=12),
        conditions=["naive", "assisted-honest", "assisted-misleading"],
        mode="live",
        rounds=4,
        num_questions=6,
    )
    experiment_launch(experiment=experiment)
    experiment.refresh_from_db()  # launched: a test that changes and saves it must not write back the draft
    return experiment


@pytest.fixture
def judged_trial(ready_trial, judge, spend_active_time):
    """``ready_trial`` opened, 30 s of active time spent on it, and judged (correctly, at 0.85)."""
    from judging.services import trial_open, verdict_submit

    trial_open(trial=ready_trial)
    spend_active_time(ready_trial, judge, 30)
    verdict_submit(
        trial_id=ready_trial.pk,
        judge=judge,
        chosen=ready_trial.honest_side,
        probability=0.85,
        rationale='Convincing <b>quotes</b>, "really"',
    )
    return ready_trial
