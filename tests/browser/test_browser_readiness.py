"""The judge's queue in Chromium, under the site's own Content-Security-Policy: while trials are being prepared, the
estimate of when the next one is ready changes on the page without a reload (queue.js polls queue_json)."""

import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from judging.models import Turn
from judging.readiness import NO_ESTIMATE
from judging.services import experiment_launch
from tests.browser.test_browser_judge import browser, log_in, new_context  # noqa: F401

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_queue_updates_its_estimate_by_itself(browser, live_server, make_model_config, make_experiment):  # noqa: F811
    experiment = make_experiment(make_model_config("m"), num_questions=2)
    experiment_launch(experiment=experiment)  # nothing generates them here: they stay being prepared
    context = new_context(browser, bypass_csp=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, live_server.url, "judy", "judge-pass-123")
    estimate = page.locator("#readiness")
    expect(estimate).to_have_text(NO_ESTIMATE)
    page.evaluate("window.notReloaded = true")  # gone if the page reloads
    # Three speeches of the first trial are written a minute ago: now there is a pace.
    first = experiment.trials.order_by("id").first()
    done = list(first.turns.order_by("index").values_list("pk", flat=True))[:3]
    Turn.objects.filter(pk__in=done).update(
        status="done", finished_at=timezone.now() - timedelta(minutes=1), wall_seconds=20
    )
    said = re.compile(r"^the next one ready in (about \d+ min|less than a minute)$")
    expect(estimate).to_have_text(said, timeout=60_000)
    assert page.evaluate("window.notReloaded") is True
    assert blocked == []
    context.close()
