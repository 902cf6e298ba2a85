"""A judge's live page in Chromium against the server as deployed (gunicorn's uvicorn workers, PostgreSQL): it
follows the stream the server pushes (judging/live_stream.py) and never polls; the speech grows as text, a finished
quote is marked, the judge's selection survives every update; when the judge must act the stream is closed, and a
move's reply opens it again."""

import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from judging.services import experiment_launch, trial_open
from tests.browser.test_browser_judge import (  # noqa: F401  (browser, page: fixtures)
    SELECT_FIRST_SPEECH,
    browser,
    log_in,
    page,
    play_worker,
)
from tests.deployed_server import deployed_server

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM calls between browser steps

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_live_page_follows_the_pushed_stream_and_never_polls(page, tmp_path, make_model_config, make_experiment):  # noqa: F811
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the deployed server pushes over PostgreSQL (a pool per process); this run uses SQLite")
    experiment = make_experiment(make_model_config("m"), mode="live", rounds=3, min_rounds=1, turn_style="sequential")
    experiment_launch(experiment=experiment)
    trial = experiment.trials.order_by("queue_position").first()
    trial_open(trial=trial)
    first, second = trial.turns.order_by("index")[:2]
    play_worker(first, status="done", text="The first speech is finished and worth quoting.")
    # Claimed an hour ahead: no tick finds the claim dead however slow the machine.
    soon = timezone.now() + timedelta(hours=1)
    play_worker(second, status="running", partial_text="The second speech", claim_token="x", claimed_at=soon)
    database_url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )

    with deployed_server(tmp_path / "gunicorn.log", database_url) as base:
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        log_in(page, base, "judy", "judge-pass-123")
        page.goto(f"{base}/judge/trials/{trial.pk}/")
        page.wait_for_function("document.getElementById('transcript').textContent.includes('The second speech')")
        assert page.locator("#live-status[data-stream]").count() == 1
        assert page.evaluate(SELECT_FIRST_SPEECH) == "first speech"

        grown = 'The second speech grows word by word <b>not bold</b> & "so on"\nand goes on'  # as text
        for words in ("The second speech grows", "The second speech grows word", grown):
            play_worker(second, partial_text=words)
            page.wait_for_function(
                f"document.querySelector('[data-chars=\"{second.index}\"]').textContent === '{len(words)}'"
            )
            assert page.evaluate("getSelection().toString()") == "first speech"
        writing = page.locator(f'[data-writing="{second.index}"]')
        assert (
            writing.inner_text() == grown and writing.locator("br").count() == 1 and writing.locator("b").count() == 0
        )

        quoted = grown + " <quote>words <i>not</i> in it</quote> then"
        play_worker(second, partial_text=quoted)
        page.wait_for_selector(f'[data-writing="{second.index}"] q.quote.unverified')
        assert writing.locator("q").inner_text() == "words <i>not</i> in it" and writing.locator("i").count() == 0

        play_worker(second, status="done", text="The second speech, complete.")
        page.wait_for_selector("#live-controls:not([hidden])")  # the round is done: the judge's move
        assert "The second speech, complete." in page.inner_text("#transcript")
        assert page.evaluate("getSelection().toString()") == "first speech"
        assert page.evaluate("window.selectedTextNode.isConnected")  # the very text node, morphed around
        assert page.locator("#live-status[data-stream]").count() == 0  # nothing to follow while the judge acts

        streams = [url for url in requested if "/live/stream/" in url]
        polls = [url for url in requested if "/live/" in url and "/live/stream/" not in url]
        assert len(streams) >= 1 and polls == []  # pushed: not one poll

        # A question: the move's reply shows the debaters speaking again, and the page follows a new stream.
        page.fill("#question-text", "Which line says so?")
        page.click("#ask")
        page.wait_for_selector("#live-status[data-stream]")
        third = trial.turns.filter(round=2, speaker__in=["A", "B"]).order_by("index").first()
        play_worker(third, status="running", partial_text="Round two begins", claim_token="y", claimed_at=soon)
        page.wait_for_function("document.getElementById('transcript').textContent.includes('Round two begins')")
        assert len([url for url in requested if "/live/stream/" in url]) > len(streams)
        assert [url for url in requested if "/live/" in url and "/live/stream/" not in url] == []
