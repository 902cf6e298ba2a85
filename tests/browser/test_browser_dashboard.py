"""The progress dashboard in Chromium, under the site's own Content-Security-Policy: its figures change on the page
without a reload when a judge gives a verdict (the htmx poll), and the list links an experiment's page with its
judges, which refreshes too."""

import os

import pytest
from django.urls import reverse

from judging import dashboard
from judging.services import experiment_launch
from tests.browser.test_browser_judge import browser, new_context  # noqa: F401
from tests.judging.test_dashboard import judge_it

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_refreshes_itself(
    browser,  # noqa: F811
    live_server,
    admin_user,
    make_model_config,
    make_experiment,
    judge,
    monkeypatch,
):
    monkeypatch.setattr(dashboard, "POLL_SECONDS", 1)  # the page asks every second: the test waits less
    experiment = make_experiment(make_model_config("m"), name="Pilot <b>study</b>")
    experiment_launch(experiment=experiment)
    trials = list(experiment.trials.order_by("queue_position"))

    context = new_context(browser, bypass_csp=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.goto(live_server.url + reverse("admin:judging_experiment_dashboard"))
    row = f"#experiment-{experiment.pk}"
    assert page.inner_text(f"{row} td:nth-child(4)") == "0 / 4"
    assert page.inner_text(f"{row} td:nth-child(2) a") == "Pilot <b>study</b>"  # shown as text, escaped

    judge_it(trials[0], judge)
    # No reload: the poll brings the new figures.
    page.wait_for_selector(f"{row} td:nth-child(4):text-is('1 / 4')")
    assert page.url.endswith(reverse("admin:judging_experiment_dashboard"))

    page.click(f"{row} td:nth-child(2) a")
    page.wait_for_selector("#judges")
    assert "judy" in page.inner_text("#judges") and "1 / 4" in page.inner_text("#judges")
    judge_it(trials[1], judge)
    page.wait_for_selector("#judges td:text-is('2 / 4')")
    assert not blocked, blocked
    context.close()
