"""A judge in headless Chromium: log in, open a trial, submit a verdict; it is stored and exported."""
import csv
import io
import os

import pytest
from django.core.management import call_command

from judging.models import Verdict

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# test makes between browser steps are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (dev.py test does this)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def log_in(page, base_url, username, password):
    page.goto(base_url + "/judge/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_a_judge_logs_in_judges_a_trial_and_the_verdict_is_stored_and_exported(
    page, live_server, ready_trial, judge, tmp_path
):
    log_in(page, live_server.url, "judy", "judge-pass-123")
    page.wait_for_url("**/judge/")
    assert "0 of 4 judged" in page.inner_text("#progress")
    page.click("text=Start next trial")
    page.wait_for_url(f"**/judge/trials/{ready_trial.pk}/")
    assert ready_trial.question.text in page.inner_text("#question")
    assert page.inner_text("[data-testid=answer-a]") == ready_trial.answer_text("A")
    assert "Argument of debater B in round 2." in page.inner_text(".transcript")
    assert "PASSAGE-SECRET" not in page.content()

    page.check("input[name=chosen][value=B]")
    page.fill("#probability", "0.9")
    assert page.inner_text("#probability-out") == "90%"
    page.fill("#rationale", "B's second argument <b>answered</b> the objection.")
    page.click("text=Submit verdict and go to next")
    page.wait_for_url("**/judge/")  # no other trial is ready: back to the queue
    assert "Verdict saved." in page.content()
    assert "1 of 4 judged" in page.inner_text("#progress")

    verdict = Verdict.objects.get(trial=ready_trial)
    assert (verdict.chosen, verdict.probability, verdict.judge) == ("B", 0.9, judge)
    assert verdict.rationale == "B's second argument <b>answered</b> the objection."
    assert verdict.active_seconds is not None and verdict.active_seconds >= 0
    out = io.StringIO()
    call_command("export_results", str(ready_trial.experiment.pk), stdout=out)
    row = next(r for r in csv.DictReader(io.StringIO(out.getvalue())) if r["trial_id"] == str(ready_trial.pk))
    assert row["verdict"] == "B" and row["probability"] == "0.9"
    assert row["correct"] == str(ready_trial.honest_side == "B")


def test_an_out_of_range_probability_sent_by_a_tampered_form_is_refused(page, live_server, ready_trial):
    log_in(page, live_server.url, "judy", "judge-pass-123")
    page.goto(f"{live_server.url}/judge/trials/{ready_trial.pk}/")
    page.check("input[name=chosen][value=A]")
    page.fill("#rationale", "sure")
    # Bypass the slider's bounds the way a crafted request would.
    page.eval_on_selector("#probability", "el => { el.type = 'text'; el.value = '1.7'; }")
    page.click("text=Submit verdict and go to next")
    assert "the probability must be between 0 and 1" in page.inner_text("[role=alert]")
    assert page.input_value("#rationale") == "sure"  # the judge's text is kept
    assert not Verdict.objects.exists()


def test_the_trial_page_fits_a_phone_screen(browser, live_server, ready_trial):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    log_in(page, live_server.url, "judy", "judge-pass-123")
    page.goto(f"{live_server.url}/judge/trials/{ready_trial.pk}/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px screen"
    assert page.is_visible("text=Submit verdict and go to next")
    context.close()
