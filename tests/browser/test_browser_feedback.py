"""A judge in Chromium in an experiment with immediate feedback (docs/feedback.md): A/B keys choose the answer
(not while typing the rationale), Ctrl+Enter submits the verdict, the trial then shows the truth and the score,
and the history shows the running accuracy. The site's own Content-Security-Policy applies (no bypass)."""

import os

import pytest
from django.utils import timezone

from judging import scoring
from judging.models import Trial, Turn, Verdict
from judging.services import experiment_launch
from tests.browser.test_browser_judge import browser, log_in, new_context  # noqa: F401

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_judge_uses_the_keys_sees_the_truth_and_score_and_their_history(
    browser,  # noqa: F811
    live_server,
    make_model_config,
    make_experiment,
    judge,
):
    experiment = make_experiment(make_model_config("m"), num_questions=2, feedback="immediate")
    experiment_launch(experiment=experiment)
    Turn.objects.filter(trial__experiment=experiment).update(
        status=Turn.Status.DONE, text="An argument.", finished_at=timezone.now()
    )
    experiment.trials.update(status=Trial.Status.READY)
    first = Trial.objects.queue_of(judge).first()
    wrong = "B" if first.honest_side == "A" else "A"

    context = new_context(browser, bypass_csp=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_in(page, live_server.url, "judy", "judge-pass-123")
    page.wait_for_url("**/judge/")
    assert "about 6 min" in page.inner_text(".queue li.next")  # the debate's default until one is judged
    page.click("text=Start next trial")
    with page.expect_navigation():
        page.click("#start")
    assert page.inner_text("#trial-number") == "Trial 1 of 2"

    # A and B choose; typed in the rationale they are text, and choose nothing.
    page.locator("#question").click()
    page.keyboard.press(wrong.lower())
    assert page.is_checked(f"#verdict-form input[name=chosen][value={wrong}]")
    page.fill("#probability-value", "0.9")
    page.locator("#rationale").click()
    page.keyboard.type("A bold claim by both.")
    assert page.input_value("#rationale") == "A bold claim by both."
    assert page.is_checked(f"#verdict-form input[name=chosen][value={wrong}]")
    # Ctrl+Enter submits; the trial then shows the truth and the score.
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert page.url.endswith(f"/judge/trials/{first.pk}/")
    verdict = Verdict.objects.get(trial=first)
    assert (verdict.chosen, verdict.probability, verdict.rationale) == (wrong, 0.9, "A bold claim by both.")
    outcome = page.inner_text("#outcome")
    assert f"The correct answer is {first.honest_side}" in outcome and "You were wrong." in outcome
    assert page.inner_text("#outcome-score") == scoring.display(verdict.score)

    # The next trial, judged right with the keys alone, then the history.
    page.click("#next-trial")
    with page.expect_navigation():
        page.click("#start")
    assert page.inner_text("#trial-number") == "Trial 2 of 2"
    second = Trial.objects.exclude(pk=first.pk).get(experiment=experiment, judge=judge)
    page.locator("#question").click()
    page.keyboard.press(second.honest_side.lower())
    page.fill("#probability-value", "0.7")
    page.fill("#rationale", "Convincing.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert "You were right." in page.inner_text("#outcome")
    page.click("text=Your history and scores")
    page.wait_for_url("**/judge/history/")
    assert "Right so far: 1 of 2 (50%" in page.inner_text("#running-accuracy")
    assert page.locator(".history-row").count() == 2
    assert page.locator("#calibration tbody tr").count() == 2  # 90-100% and 70-80%, each with one trial
    # Links in the site's blue (--a), as its other links and link buttons, not the browser's default blue.
    colour = "el => getComputedStyle(el).color"
    assert page.locator("text=Back to your queue").evaluate(colour) == "rgb(47, 111, 176)"
    page.go_back()
    assert page.locator("#next-trial").evaluate(colour) == "rgb(255, 255, 255)"  # a button keeps its own colour
    assert not errors, errors
    context.close()
