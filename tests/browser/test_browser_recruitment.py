"""A crowd participant in Chromium (docs/recruitment.md): from the invite link with their Prolific id, through their
trials, to the completion code; coming back with the same id resumes the same account. The site's own
Content-Security-Policy applies (no bypass)."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from judging import recruitment
from judging.models import Invite, Seat, Trial, Verdict
from judging.services import experiment_launch
from tests.browser.test_browser_judge import browser, choose, new_context  # noqa: F401

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PID = "5f1a2b3c4d5e6f7a8b9c0d1e"
COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc=C0DE42"


def test_a_crowd_participant_goes_from_the_invite_link_to_the_completion_code(
    browser,  # noqa: F811
    live_server,
    make_model_config,
    make_experiment,
):
    # Naive-judge trials: live, judgeable at launch without a model.
    experiment = make_experiment(make_model_config("m"), judges=[], conditions=["naive"], num_questions=2)
    invite = recruitment.invite_create(
        experiment=experiment,
        kind=Invite.Kind.CROWD,
        max_uses=1,
        expires_at=timezone.now() + timedelta(days=1),
        completion_code="C0DE42",
        completion_url=COMPLETION_URL,
    )
    experiment_launch(experiment=experiment)
    link = f"{live_server.url}/join/{invite.token}/?PROLIFIC_PID={PID}&STUDY_ID=study-1&SESSION_ID=session-1"

    context = new_context(browser, bypass_csp=False)
    page = context.new_page()
    page.goto(link)
    assert "Join the study" in page.inner_text("h1")
    page.click("#join")
    page.wait_for_url("**/judge/")
    judge = Seat.objects.get(participant_id=PID).judge
    assert "0 of 2 judged" in page.inner_text("#progress") and page.locator("#completion").count() == 0
    assert PID not in page.content()

    page.click("text=Start next trial")
    for trial in Trial.objects.queue_of(judge):
        page.wait_for_url(f"**/judge/trials/{trial.pk}/")
        page.click("#start")  # a trial is started by a POST: viewing it starts nothing
        page.wait_for_selector("#verdict-form")
        choose(page, "A", "0.7")
        page.fill("#rationale", "my own reading")
        page.click("text=Submit verdict and go to next")
    page.wait_for_url("**/judge/")
    assert page.inner_text("#completion-code") == "C0DE42"
    assert page.get_attribute("#completion-link", "href") == COMPLETION_URL
    assert Verdict.objects.filter(judge=judge).count() == 2
    context.close()

    # The same participant again, from another browser: their own account, done, with the code; no new seat.
    context = new_context(browser, bypass_csp=False)
    page = context.new_page()
    page.goto(link)
    assert "Welcome back" in page.inner_text("h1")
    page.click("#join")
    page.wait_for_url("**/judge/")
    assert "2 of 2 judged" in page.inner_text("#progress")
    assert page.inner_text("#completion-code") == "C0DE42"
    assert Seat.objects.filter(taken_at__isnull=False).count() == 1
    context.close()
