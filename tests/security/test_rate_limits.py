"""Per-judge rate limits on live moves and verdict posts: beyond the limit a 429 with a message the judge's page
shows, nothing changed; the next window (the server's clock moved, never waited for) takes posts again; another
judge is not limited by this one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from judging.models import Verdict
from judging.services import trial_open
from tests.judging.test_live_trials import first_trial, generate_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight_limits(settings, server_clock):
    """Two posts a minute; the server's clock frozen at the start of a minute (windows start on the minute)."""
    settings.RATE_LIMITS = {"move": (2, 60), "verdict": (2, 60)}
    server_clock.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_live_moves_beyond_the_limit_are_refused_with_429_and_change_nothing(
    client, judge, live_experiment, server_clock, tight_limits
):
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    generate_all(live_experiment)
    client.force_login(judge)
    url = f"/judge/trials/{trial.pk}/move/"
    lean = {"action": "lean", "chosen": "A", "probability": "0.7"}
    for _ in range(2):
        assert client.post(url, lean, HTTP_HX_REQUEST="true").status_code == 200
    turns = trial.turns.count()
    refused = client.post(url, {"action": "continue"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert refused.json()["error"].startswith("Too many moves in a short time (at most 2 in 60 seconds)")
    assert "Please wait 60 seconds" in refused.json()["error"] and "nothing was changed" in refused.json()["error"]
    assert trial.turns.count() == turns  # no next round

    # A plain form post (no JavaScript) gets the message on the trial page.
    page = client.post(url, {"action": "continue"}, follow=True)
    assert b"Too many moves" in page.content and trial.turns.count() == turns

    server_clock.advance(60)
    assert client.post(url, {"action": "continue"}, HTTP_HX_REQUEST="true").status_code == 200
    assert trial.turns.count() > turns  # round 2 is asked for


def test_verdict_posts_beyond_the_limit_are_refused_with_429_on_the_trial_page(
    client, judge, other_judge, ready_trial, server_clock, tight_limits
):
    trial_open(trial=ready_trial)
    client.force_login(judge)
    url = f"/judge/trials/{ready_trial.pk}/verdict/"
    wrong = {"chosen": "A", "probability": "2", "rationale": "r"}
    assert client.post(url, wrong).status_code == 400  # refused posts count too
    assert client.post(url, wrong).status_code == 400
    page = client.post(url, {"chosen": "A", "probability": "0.8", "rationale": "because"})
    assert page.status_code == 429 and page["Retry-After"] == "60"
    assert b"Too many verdict submissions" in page.content and b"Please wait 60 seconds" in page.content
    assert b'value="because"' in page.content or b">because<" in page.content  # the rationale is kept
    assert not Verdict.objects.exists()

    other = client.__class__()
    other.force_login(other_judge)  # another judge's count is their own
    assert other.post(url, wrong).status_code == 404

    server_clock.advance(30)
    assert b"Please wait 30 seconds" in client.post(url, wrong).content
    server_clock.advance(30)
    assert client.post(url, {"chosen": "A", "probability": "0.8", "rationale": "because"}).status_code == 302
    assert Verdict.objects.filter(trial=ready_trial).exists()
