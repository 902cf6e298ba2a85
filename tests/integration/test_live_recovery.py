"""A live trial whose worker is killed mid-speech, through real worker processes on Redis and PostgreSQL: the
judge's own polling notices the dead worker (its claims no longer refreshed by its heartbeat) and releases the
turn, another worker writes it, exactly once, and meanwhile the page says that the speaker is being restarted.

Runs in the PostgreSQL pass of ``python3 dev.py test``; the SQLite pass skips it (``worker_log``)."""

import time

import pytest
from django.urls import reverse

from judging.models import Turn
from judging.services import experiment_launch
from tests.judging.pages import open_trial

from .test_integration_celery import start_worker, stop_worker, wait_until, worker_log  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NOTICE = "stopped unexpectedly; restarting its speech…"
# How often the test polls the live endpoint, as the page does (every 400ms: judging/partials/live_status.html).
POLL_SECONDS = 0.4


def test_a_live_speech_of_a_killed_worker_is_released_by_the_judges_poll_and_finished_once_by_another(
    worker_log,  # noqa: F811
    make_model_config,
    make_experiment,
    tiny_model_dir,
    client,
    judge,
):
    # Long speeches (1,500 tokens: seconds each on the tiny model), so the kill lands while the first is written.
    config = make_model_config(tiny_model_dir, max_new_tokens=1500)
    experiment = make_experiment(
        config, mode="live", rounds=2, num_questions=1, char_limit=6000, turn_style="sequential"
    )
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    first_name, second_name = f"first-{time.time_ns()}", f"second-{time.time_ns()}"
    first = start_worker(worker_log, name=f"{first_name}@%h")
    second = None
    try:
        client.force_login(judge)
        open_trial(client, trial)  # round 1 is created and sent to the worker
        speech = trial.turns.order_by("index").first()
        label = f"Debater {speech.speaker}"
        written = Turn.objects.filter(pk=speech.pk, status="running").exclude(partial_text="")
        assert wait_until(written.exists), "the first worker never began the speech"
        first.kill()  # SIGKILL: no warm shutdown, no chance to clean up
        first.wait()
        speech.refresh_from_db()
        assert speech.status == "running" and speech.partial_text, "the speech was finished before the kill"
        lost_text = speech.partial_text

        # Another worker is there (its own name: the restart of a dead worker's node is a different recovery).
        second = start_worker(worker_log, name=f"{second_name}@%h")
        pages = []

        def judge_polls_until_round_one_is_written() -> bool:
            response = client.get(reverse("judging:trial_live", args=[trial.pk]))
            assert response.status_code == 200
            pages.append(response.content.decode())
            done = not trial.turns.filter(round=1).exclude(status="done").exists()
            if not done:
                time.sleep(POLL_SECONDS)
            return done

        assert wait_until(judge_polls_until_round_one_is_written), "the killed worker's speech was not finished"
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)

    with_notice = [i for i, page in enumerate(pages) if f"{label} {NOTICE}" in page]
    assert with_notice, "the page never said that the speaker was restarted"
    released = pages[with_notice[0]]
    # From the poll that released it, the lost attempt's text is gone, not left as if still being written.
    assert lost_text not in released and "(writing…)" not in released
    # Once the speech flows again the notice goes, for good.
    after = pages[with_notice[-1] + 1 :]
    assert after and all(NOTICE not in page for page in after)
    assert any(f"{label}: writing" in page or f"{label}: done" in page for page in after)
    for page in pages:  # no internals reach the judge
        assert first_name not in page and second_name not in page and "worker" not in page

    turns = {t.pk: t for t in trial.turns.filter(round=1)}
    assert {t.status for t in turns.values()} == {"done"} and all(t.text and t.tokens_out for t in turns.values())
    restarted = turns[speech.pk]
    assert restarted.attempts == 2 and restarted.claimed_by.startswith(second_name)  # the lost attempt counted once
    assert all(t.attempts == 1 for pk, t in turns.items() if pk != speech.pk)
