"""A generation session's heartbeat (generation/heartbeat.py): a thread of its own refreshes the claims the
session holds while the generation loop is blocked, writes only claims still held, and stops with the session."""

import threading
import time

import pytest

from generation.heartbeat import ClaimHeartbeat, single_process_database
from generation.session import GenerationSession
from judging.models import Turn
from judging.services import experiment_launch, trial_open

# Waits end as soon as their condition holds; this only stops a hung test (minutes: never reached by slowness).
GUARD_SECONDS = 600


def heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "claim-heartbeat" and t.is_alive()]


def opened_live_trial(make_model_config, make_experiment, model, **config):
    experiment = make_experiment(make_model_config(model, **config), mode="live", num_questions=1, char_limit=8000)
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    trial_open(trial=trial)
    return trial


@pytest.mark.django_db(transaction=True)  # the heartbeat writes on its own connection: it must see committed rows
def test_the_heartbeat_keeps_a_claim_fresh_while_the_generation_loop_is_blocked(
    make_model_config, make_experiment, tiny_model_dir, settings
):
    if single_process_database():
        pytest.skip("the heartbeat is off on in-memory SQLite (generation.heartbeat); run by the PostgreSQL pass")
    settings.CLAIM_HEARTBEAT_SECONDS = 0.05  # the thread's period; the test waits on what it writes, not on time
    # Long turns (400 tokens), so the turn is still being written when the loop asks for more work.
    trial = opened_live_trial(make_model_config, make_experiment, tiny_model_dir, max_new_tokens=400)
    first = trial.turns.order_by("index").first()
    seen = {}

    def pick(limit, urgent=0, pregenerated=None):
        """Hand out the first turn; on a later call while it is still being written, block the loop (as a model
        load or a long prefill does) until its claim has been refreshed by someone other than the loop."""
        if not seen:
            seen["handed_out"] = True
            return [first.pk]
        turn = Turn.objects.get(pk=first.pk)
        if "blocked" in seen or turn.status != Turn.Status.RUNNING:
            return []
        seen["blocked"] = True  # once
        deadline = time.monotonic() + GUARD_SECONDS
        while time.monotonic() < deadline:
            now = Turn.objects.get(pk=first.pk)
            if now.claimed_at > turn.claimed_at:
                seen["refreshed"] = (turn.claimed_at, now.claimed_at, now.claim_token == turn.claim_token)
                break
            time.sleep(0.01)
        return []

    session = GenerationSession(first.model_config, pick, claimed_by="test-worker", turns_at_once=2)
    assert session.run() == 1
    assert "blocked" in seen, "the loop never asked for work while the turn was being written"
    assert "refreshed" in seen, "nothing refreshed the claim while the loop was blocked"
    before, after, same_claim = seen["refreshed"]
    assert after > before and same_claim  # refreshed in place: the claim still holds
    first.refresh_from_db()
    assert (first.status, first.attempts) == (Turn.Status.DONE, 1)  # written once, by the claim it kept
    assert heartbeat_threads() == []  # stopped with the session


def test_a_beat_refreshes_only_the_claims_still_held(make_model_config, make_experiment):
    trial = opened_live_trial(make_model_config, make_experiment, "any-model")
    first, second = trial.turns.order_by("index")
    old = Turn.objects.filter(pk=first.pk).claim(claimed_by="w1")
    Turn.objects.filter(pk=first.pk).held(old).release(to=Turn.Status.PENDING)  # thought dead: released...
    new = Turn.objects.filter(pk=first.pk).claim(claimed_by="w2")  # ...and claimed by another worker
    held = Turn.objects.filter(pk=second.pk).claim(claimed_by="w1")
    Turn.objects.filter(pk__in=[first.pk, second.pk]).update(claimed_at=None)
    heartbeat = ClaimHeartbeat(lambda: [(first.pk, old), (second.pk, held)])
    assert heartbeat.beat() == 1  # only the claim w1 still holds
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.claimed_at is None and first.claim_token == new
    assert second.claimed_at is not None and second.claim_token == held


def test_the_heartbeat_stops_when_the_session_fails(make_model_config, make_experiment, tiny_model_dir):
    if single_process_database():
        pytest.skip("the heartbeat is off on in-memory SQLite (generation.heartbeat); run by the PostgreSQL pass")
    trial = opened_live_trial(make_model_config, make_experiment, tiny_model_dir)
    first = trial.turns.order_by("index").first()
    running = []

    def pick(limit, urgent=0, pregenerated=None):
        running.append(len(heartbeat_threads()))
        raise RuntimeError("the queue could not be read")

    session = GenerationSession(first.model_config, pick, claimed_by="test-worker")
    assert session.run() == 0 and session.failed
    assert running == [1]  # it ran during the session...
    assert heartbeat_threads() == []  # ...and stopped with it
