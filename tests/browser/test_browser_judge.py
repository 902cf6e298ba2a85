"""A judge in headless Chromium: log in, open a trial, submit a verdict; it is stored and exported."""

import csv
import io
import os
import time
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from judging.models import ActiveTime, Trial, Turn, Verdict
from judging.services import experiment_launch
from tests.browser.pages import goto_trial

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
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


BEATS = "**/beat/"
# The trial page's heartbeats (active time) are answered in the page, not by the server, except in the tests
# about them (the beating_page fixture): a beat sent as the page closes at the end of a test would reach the
# server while the test's database is flushed (Playwright's routes do not catch a closing page's requests).
NO_SERVER_BEATS = """
    const send = window.fetch;
    window.fetch = (url, options) =>
        String(url).endsWith("/beat/") ? Promise.resolve(new Response(null, {status: 204})) : send(url, options);
"""


def new_context(browser, *, server_beats=False, **options):
    # Playwright's wait_for_function evaluates its predicate as a string, which the site's strict
    # Content-Security-Policy (no eval) refuses; the CSP itself is tested with bypass_csp=False
    # (tests/browser/test_browser_csp.py).
    options.setdefault("bypass_csp", True)
    context = browser.new_context(**options)
    # Some requests generate turns in-process (eager Celery): on a loaded machine they take far longer
    # than Playwright's default 30 s. A slow machine should make a test slower, never fail it.
    context.set_default_timeout(600_000)
    if not server_beats:
        context.add_init_script(NO_SERVER_BEATS)
    return context


@pytest.fixture
def page(browser):
    context = new_context(browser, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def beating_page(browser):
    """A page whose heartbeats reach the server. Its test must end on a page without them (the queue)."""
    context = new_context(browser, server_beats=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def log_in(page, base_url, username, password):
    page.goto(base_url + "/judge/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def choose(page, answer, probability="0.8"):
    """The verdict's answer and probability: the slider has no default, so it is always moved."""
    page.check(f"#verdict-form input[name=chosen][value={answer}]")  # a live page's leaning form has its own
    page.fill("#probability", probability)


def test_a_judge_logs_in_judges_a_trial_and_the_verdict_is_stored_and_exported(
    beating_page, live_server, ready_trial, judge, tmp_path
):
    page = beating_page
    log_in(page, live_server.url, "judy", "judge-pass-123")
    page.wait_for_url("**/judge/")
    assert "0 of 4 judged" in page.inner_text("#progress")
    page.click("text=Start next trial")
    page.wait_for_url(f"**/judge/trials/{ready_trial.pk}/")  # the trial's start page: nothing counted yet
    assert page.locator(".speech").count() == 0
    assert Trial.objects.get(pk=ready_trial.pk).opened_at is None
    with page.expect_response(BEATS) as opening_beat:  # the page's first heartbeat starts its active time
        page.click("#start")
    assert opening_beat.value.status == 204
    assert ready_trial.question.text in page.inner_text("#question")
    assert page.inner_text("[data-testid=answer-a]") == ready_trial.answer_text("A")
    assert "Argument of debater B in round 2." in page.inner_text(".transcript")
    assert "PASSAGE-SECRET" not in page.content()

    choose(page, "B", "0.9")
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
    goto_trial(page, f"{live_server.url}/judge/trials/{ready_trial.pk}/")
    choose(page, "A")
    page.fill("#rationale", "sure")
    # Bypass the slider's bounds the way a crafted request would.
    page.eval_on_selector("#probability-value", "el => { el.type = 'text'; el.value = '1.7'; }")
    page.click("text=Submit verdict and go to next")
    assert "the probability must be between 0 and 1" in page.inner_text("[role=alert]")
    assert page.input_value("#rationale") == "sure"  # the judge's text is kept
    assert not Verdict.objects.exists()


def test_the_trial_page_fits_a_phone_screen(browser, live_server, ready_trial):
    context = new_context(browser, viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    log_in(page, live_server.url, "judy", "judge-pass-123")
    goto_trial(page, f"{live_server.url}/judge/trials/{ready_trial.pk}/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px screen"
    assert page.is_visible("text=Submit verdict and go to next")
    context.close()


def open_live_trial(page, live_server, experiment):
    log_in(page, live_server.url, "judy", "judge-pass-123")
    trial = experiment.trials.order_by("queue_position").first()
    goto_trial(page, f"{live_server.url}/judge/trials/{trial.pk}/")
    return trial


def test_a_live_debate_where_the_judge_interjects_twice_and_the_debaters_answer(
    page, live_server, live_experiment, eager_celery
):
    trial = open_live_trial(page, live_server, live_experiment)  # opening generates round 1 (eagerly)
    page.wait_for_selector("#live-controls:not([hidden])")
    assert page.locator(".speech").count() == 2
    assert page.is_disabled("#end")  # minimum 2 rounds
    assert "after round 2" in page.inner_text("#end-reason")

    page.fill("#question-text", "Quote the sentence that proves your answer.")
    page.click("#ask")
    page.wait_for_function("document.querySelectorAll('.speech').length === 5")
    assert "You asked Debater A and Debater B" in page.inner_text("#transcript")
    assert "Quote the sentence that proves your answer." in page.inner_text("#transcript")
    page.wait_for_selector("#live-controls:not([hidden])")
    assert page.is_enabled("#end")  # two rounds done

    page.check("input[name=addressed_to][value=B]")
    page.fill("#question-text", "Why should I doubt debater A?")
    page.keyboard.press("Control+Enter")  # keyboard-only submission
    page.wait_for_function("document.querySelectorAll('.speech').length === 8")
    page.wait_for_selector("#verdict-section:not([hidden])")  # round 3 was the last: decide now
    assert page.is_hidden("#live-controls")
    assert "Give your answer below." in page.inner_text("#live-status")

    turns = {(t.round, t.speaker): t for t in trial.turns.all()}
    for speaker in "AB":
        assert "Quote the sentence that proves your answer." in turns[(2, speaker)].prompt
        assert "Why should I doubt debater A?" in turns[(3, speaker)].prompt
    assert turns[(2, "judge")].addressed_to == ["B"] and turns[(1, "judge")].addressed_to == ["A", "B"]
    assert "PASSAGE-SECRET" not in page.content()

    choose(page, "A")
    page.fill("#rationale", "A quoted the text.")
    page.click("text=Submit verdict and go to next")
    page.wait_for_url("**/judge/trials/*/")  # the next live trial in the queue
    assert Verdict.objects.get(trial=trial).chosen == "A"


def test_the_judge_cannot_end_before_the_minimum_rounds_even_by_a_crafted_request(
    page, live_server, live_experiment, eager_celery
):
    trial = open_live_trial(page, live_server, live_experiment)
    page.wait_for_selector("#live-controls:not([hidden])")
    result = page.evaluate(
        """async () => {
            const csrf = document.querySelector('#ask-form input[name=csrfmiddlewaretoken]').value;
            const r = await fetch('move/', {method: 'POST', body: new URLSearchParams({action: 'end'}),
                                             headers: {'X-CSRFToken': csrf, 'Accept': 'application/json'}});
            return [r.status, (await r.json()).error];
        }"""
    )
    assert result == [409, "the debate can be ended after round 2; 1 complete so far"]
    trial.refresh_from_db()
    assert not trial.ended_by_judge
    page.click("#continue")
    page.wait_for_function("document.querySelectorAll('.speech').length === 4")
    page.wait_for_selector("#end:not([disabled])")
    page.click("#end")
    page.wait_for_selector("#verdict-section:not([hidden])")
    trial.refresh_from_db()
    assert trial.ended_by_judge and trial.turns.count() == 4


def test_simultaneous_speeches_appear_only_when_both_are_done(page, live_server, live_experiment):
    from django.utils import timezone

    from judging.models import Turn
    from judging.services import trial_open

    trial = live_experiment.trials.order_by("queue_position").first()
    trial_open(trial=trial)  # no worker runs in this test: we play the worker by hand
    a, b = trial.turns.order_by("speaker")
    Turn.objects.filter(pk=a.pk).update(status="done", text="A finished first.", finished_at=timezone.now())
    Turn.objects.filter(pk=b.pk).update(status="running", partial_text="B is still writi", claim_token="x")
    open_live_trial(page, live_server, live_experiment)
    page.wait_for_function("document.getElementById('live-status').textContent.includes('both have finished')")
    assert "A finished first." not in page.inner_text("#transcript")
    assert "B is still writi" not in page.content()
    Turn.objects.filter(pk=b.pk).update(status="done", text="B done now.", finished_at=timezone.now())
    page.wait_for_function("document.getElementById('transcript').textContent.includes('B done now.')")  # no reload
    assert "A finished first." in page.inner_text("#transcript")


def test_the_verdict_slider_has_no_default_and_the_scores_are_shown_to_three_decimals(page, live_server, ready_trial):
    from judging import scoring

    ready_trial.experiment.scoring_rule = "spherical"
    ready_trial.experiment.save()
    log_in(page, live_server.url, "judy", "judge-pass-123")
    goto_trial(page, f"{live_server.url}/judge/trials/{ready_trial.pk}/")
    assert page.inner_text("#probability-out") == "not set"
    assert "move the slider to see what you would score" in page.inner_text("#score-preview")
    page.check("#verdict-form input[name=chosen][value=A]")
    page.fill("#rationale", "A quoted the text.")
    verdict_posts = []
    page.on("request", lambda request: verdict_posts.append(request) if request.method == "POST" else None)
    page.click("text=Submit verdict and go to next")  # the slider was never moved: refused in the page
    assert "Move the slider" in page.inner_text("#probability-error") and page.is_visible("#probability-error")
    assert verdict_posts == [] and not Verdict.objects.exists()
    assert page.input_value("#rationale") == "A quoted the text."

    page.fill("#probability", "0.91")
    assert page.is_hidden("#probability-error") and page.inner_text("#probability-out") == "91%"
    right, wrong = scoring.outcome_table("spherical")["0.91"]
    assert (right, wrong) == ("+0.995", "+0.098")  # two decimals read +1.00 here
    preview = page.inner_text("#score-preview")
    assert f"if your answer is right you score {right}; if it is wrong, {wrong}." in preview
    page.fill("#probability", "1")
    assert "you score +1.000; if it is wrong, 0.000." in page.inner_text("#score-preview")
    page.fill("#probability", "0.91")
    page.click("text=Submit verdict and go to next")
    page.wait_for_url("**/judge/")
    verdict = Verdict.objects.get(trial=ready_trial)
    assert (verdict.chosen, verdict.probability) == ("A", 0.91)


# ---- Active time: counted on the server from the page's heartbeats -----------------------------------------
# The page's clock (Playwright's) and the server's (the server_clock fixture) are both frozen and moved together
# by the test, so each beat adds exactly the seconds the test says, however slow the machine is.

# Counts the beats the page sends and the replies it gets (an init script: it runs before trial.js on every load).
COUNT_BEATS = """
    window.beatsSent = 0;
    window.beatsAnswered = 0;
    const send = window.fetch;
    window.fetch = (url, options) => {
        const reply = send(url, options);
        if (String(url).endsWith("/beat/")) {
            window.beatsSent += 1;
            const answered = () => { window.beatsAnswered += 1; };
            reply.then(answered, answered);
        }
        return reply;
    };
"""
BEAT_MS = 15_000  # settings.JUDGE_BEAT_SECONDS
PAGE_START = datetime(2030, 1, 1, 9, 0)


def beats_answered(page) -> int:
    """Wait until the server has answered every beat this page load sent (a wait, never a measurement);
    return how many it sent."""
    for _ in range(30_000):  # up to 10 minutes, like the pages' own timeouts: a slow machine only waits longer
        sent, answered = page.evaluate("[window.beatsSent, window.beatsAnswered]")
        if sent == answered:
            return sent
        time.sleep(0.02)
    raise AssertionError(f"the server answered {answered} of {sent} beats")


def let_time_pass(page, server_clock, beats: int) -> int:
    """``beats`` beat intervals pass on both clocks; returns how many beats the page sent meanwhile."""
    before = beats_answered(page)
    for _ in range(beats):
        server_clock.advance(BEAT_MS / 1000)
        page.clock.run_for(BEAT_MS)
        beats_answered(page)
    return beats_answered(page) - before


def open_with_paused_clock(page, live_server, trial):
    """Log in and open the trial with the page's clock paused: the page loads, registers its timers and
    takes the opening as the judge's last action at one and the same instant."""
    page.add_init_script(COUNT_BEATS)
    page.clock.install(time=PAGE_START)
    page.clock.pause_at(PAGE_START + timedelta(seconds=1))
    log_in(page, live_server.url, "judy", "judge-pass-123")
    goto_trial(page, f"{live_server.url}/judge/trials/{trial.pk}/")
    assert beats_answered(page) == 1  # opening the page: a fresh beat, which starts the count


def test_active_time_counts_across_a_reload_and_a_return_visit(beating_page, live_server, ready_trial, server_clock):
    page = beating_page
    open_with_paused_clock(page, live_server, ready_trial)
    assert let_time_pass(page, server_clock, 4) == 4  # a minute of reading
    page.reload()  # a reload used to restart the count
    assert beats_answered(page) == 1
    assert let_time_pass(page, server_clock, 2) == 2
    assert ActiveTime.objects.get(trial=ready_trial).seconds == 90

    page.goto(f"{live_server.url}/judge/")  # the judge leaves for ten minutes, then comes back
    server_clock.advance(600)
    goto_trial(page, f"{live_server.url}/judge/trials/{ready_trial.pk}/")
    assert beats_answered(page) == 1
    assert let_time_pass(page, server_clock, 1) == 1
    assert ActiveTime.objects.get(trial=ready_trial).seconds == 105  # the time away is not counted

    server_clock.advance(5)
    choose(page, "A")
    page.fill("#rationale", "timed")
    page.click("text=Submit verdict and go to next")  # the submission counts as the last beat: 5 s more
    page.wait_for_url("**/judge/")
    verdict = Verdict.objects.get(trial=ready_trial)
    assert verdict.active_seconds == 110 and verdict.active_seconds_by_round == {"2": 110}
    assert verdict.seconds_on_page == 710 and verdict.active_time_source == "server"


def set_hidden(page, hidden: bool):
    page.evaluate(
        """(hidden) => { Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
                         document.dispatchEvent(new Event("visibilitychange")); }""",
        hidden,
    )


def test_reading_without_input_counts_for_five_minutes_and_a_hidden_tab_not_at_all(
    beating_page, live_server, ready_trial, server_clock
):
    page = beating_page
    open_with_paused_clock(page, live_server, ready_trial)
    # Reading, touching nothing: beats go on until 5 minutes after the judge's last action (the opening).
    assert let_time_pass(page, server_clock, 19) == 19
    assert let_time_pass(page, server_clock, 21) == 0  # idle from the 5th minute on: no beat
    assert ActiveTime.objects.get(trial=ready_trial).seconds == 19 * 15
    # Back: the judge selects a sentence (no pointer event needed). A fresh beat starts the count again, the
    # idle minutes not in it. selectionchange arrives as a task of its own: wait for the beat it sends.
    page.evaluate("getSelection().selectAllChildren(document.getElementById('question'))")
    page.wait_for_function("window.beatsSent === 1 + 19 + 1", polling=20)
    assert beats_answered(page) == 1 + 19 + 1
    assert let_time_pass(page, server_clock, 2) == 2
    assert ActiveTime.objects.get(trial=ready_trial).seconds == 21 * 15

    server_clock.advance(4)
    set_hidden(page, True)  # the tab is hidden 4 s after a beat: a last beat counts those 4 s
    assert beats_answered(page) == 1 + 19 + 1 + 2 + 1
    for i in range(8):  # two minutes hidden, moving the mouse now and then: not counted
        page.mouse.move(300, 300 + i)
        assert let_time_pass(page, server_clock, 1) == 0
    set_hidden(page, False)  # shown again: a fresh beat
    assert beats_answered(page) == 1 + 19 + 1 + 2 + 1 + 1
    assert let_time_pass(page, server_clock, 1) == 1
    assert ActiveTime.objects.get(trial=ready_trial).seconds == 21 * 15 + 4 + 15

    choose(page, "A")
    page.fill("#rationale", "timed")
    page.click("text=Submit verdict and go to next")
    page.wait_for_url("**/judge/")
    assert Verdict.objects.get(trial=ready_trial).active_seconds == 21 * 15 + 4 + 15


@pytest.mark.parametrize("condition", ["naive", "assisted-honest", "assisted-misleading"])
def test_a_sandwiching_trial_in_each_condition(
    page, live_server, sandwich_experiment, eager_celery, plan_first, condition
):
    trial = sandwich_experiment.trials.filter(condition=condition).first()
    plan_first(trial)  # the judge's next trial
    log_in(page, live_server.url, "judy", "judge-pass-123")
    goto_trial(page, f"{live_server.url}/judge/trials/{trial.pk}/")
    if condition == "naive":
        assert page.is_hidden(".transcript") and page.is_visible("#verdict-form")
        assert "Answer this question on your own" in page.text_content(".rules")
    else:
        page.wait_for_selector("#live-controls:not([hidden])")  # the assistant's opening message is in
        assert page.locator(".speech.speaker-assistant").count() == 1
        assert page.is_hidden("#verdict-section") and page.is_hidden("fieldset.to")
        page.fill("#question-text", "What does the text say about this?")
        page.click("#ask")
        page.wait_for_function("document.querySelectorAll('.speech').length === 3")
        assert "You asked the assistant" in page.inner_text("#transcript")
        page.wait_for_selector("#live-controls:not([hidden])")
        page.click("text=I am ready to answer")
        page.wait_for_selector("#verdict-section:not([hidden])")
        for leak in ("misleading", "honest", "assisted-"):
            assert leak not in page.content()
    choose(page, "B")
    page.fill("#rationale", f"{condition} verdict")
    page.click("text=Submit verdict and go to next")
    page.wait_for_url("**/judge/**")
    assert Verdict.objects.get(trial=trial).rationale == f"{condition} verdict"


# ---- The live trial page: server-rendered partials morphed in by htmx, and no inline script ------------------


def play_worker(turn, **fields):
    """Write a debater's turn by hand, as a worker would (no worker runs in these tests).

    On in-memory SQLite the live server's thread shares this thread's connection (tests/conftest.py), and a write
    that meets a poll's read in progress on the same table is refused ("database table is locked") rather than
    waiting as separate connections do: it is tried again once that read is done."""
    from django.db import OperationalError
    from django.utils import timezone

    from judging.models import Turn

    if fields.get("status") == "done":
        fields.setdefault("finished_at", timezone.now())
    for attempt in range(50):
        try:
            Turn.objects.filter(pk=turn.pk).update(**fields)
            return
        except OperationalError as error:
            if "locked" not in str(error) or attempt == 49:
                raise
            time.sleep(0.05)


def open_trial_between_rounds(page, live_server, experiment):
    """The first live trial with round 1 written (by hand), open in the browser, the judge's move to make."""
    from judging.services import trial_open

    trial = experiment.trials.order_by("queue_position").first()
    trial_open(trial=trial)
    for turn in trial.turns.all():
        play_worker(turn, status="done", text=f"Debater {turn.speaker} argues in round 1.")
    open_live_trial(page, live_server, experiment)
    page.wait_for_selector("#live-controls:not([hidden])")
    return trial


MOVE_FAILURES = {
    # what goes wrong: the message the judge reads in #move-error
    "the debaters started speaking": "the debaters are still speaking; wait for this round to finish",
    "the trial is not the judge's": "This trial was not found: it may have been removed, or you have been logged out. "
    "Reload the page.",
    "the CSRF cookie is lost": "Your session has expired or this page is out of date. Reload the page and try again.",
    "the server fails": "Something went wrong on the server. Try again in a moment.",
    "a proxy answers with an empty body": "The server could not take this move (error 502). Try again, or reload "
    "the page.",
}


@pytest.mark.parametrize("failure", list(MOVE_FAILURES))
def test_a_failed_move_shows_a_readable_message_and_the_buttons_work_again(
    page, live_server, live_experiment, judge, other_judge, monkeypatch, failure
):
    from judging import services
    from judging.models import Trial

    trial = open_trial_between_rounds(page, live_server, live_experiment)
    page.fill("#question-text", "Is this question kept?")
    if failure == "the debaters started speaking":  # behind the page's back, e.g. in another tab: a 409 (JSON)
        services.live_move(trial_id=trial.pk, judge=judge, action="continue")
    elif failure == "the trial is not the judge's":  # a 404 (Django's HTML page)
        Trial.objects.filter(pk=trial.pk).update(judge=other_judge)
    elif failure == "the CSRF cookie is lost":  # a 403 (Django's HTML page)
        page.context.clear_cookies(name="csrftoken")
    elif failure == "the server fails":  # a 500 (Django's HTML page)

        def broken(**kwargs):
            raise RuntimeError("the database is on fire")

        monkeypatch.setattr(services, "live_move", broken)
    else:  # the one reply the application cannot produce itself: a gateway's empty 502
        page.route("**/move/", lambda route: route.fulfill(status=502, body=""))

    page.click("#ask")
    page.wait_for_selector("#move-error:not([hidden])")
    message = page.inner_text("#move-error")
    assert message == MOVE_FAILURES[failure]
    for button in ("#ask", "#continue", "#lean"):
        assert page.is_enabled(button), button
    assert page.input_value("#question-text") == "Is this question kept?"

    if failure == "the debaters started speaking":
        # The page was out of date: it has been refreshed, and it shows the round being written until it is done.
        page.wait_for_selector("#live-controls", state="hidden")
        assert "writing round 2" in page.inner_text("#live-status")
        for turn in trial.turns.filter(round=2):
            play_worker(turn, status="done", text=f"Debater {turn.speaker} argues in round 2.")
        page.wait_for_selector("#end:not([disabled])")
        page.click("#end")
        page.wait_for_selector("#verdict-section:not([hidden])")
        assert page.is_hidden("#move-error")
    elif failure in ("the server fails", "a proxy answers with an empty body"):
        monkeypatch.undo()
        page.unroute("**/move/")
        page.click("#continue")
        page.wait_for_function("document.getElementById('live-status').textContent.includes('writing round 2')")
        assert page.is_hidden("#move-error")
        assert trial.turns.filter(round=2).count() == 2


# Selects "first speech" in the transcript's first speech (its text node kept as window.selectedTextNode, so a test
# can check the live updates left that very node in place); returns the selection.
SELECT_FIRST_SPEECH = """() => {
    const text = document.querySelector('#transcript .speech p').firstChild;
    window.selectedTextNode = text;
    const range = document.createRange();
    range.setStart(text, 4);
    range.setEnd(text, 16);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    return getSelection().toString();
}"""


def test_the_judges_selection_in_a_finished_speech_survives_the_live_updates(page, live_server, live_experiment):
    from judging.services import trial_open

    live_experiment.turn_style = "sequential"  # the second speech is shown while it is written
    live_experiment.save()
    trial = live_experiment.trials.order_by("queue_position").first()
    trial_open(trial=trial)
    first, second = trial.turns.order_by("index")
    play_worker(first, status="done", text="The first speech is finished and worth quoting.")
    play_worker(second, status="running", partial_text="The second speech", claim_token="x")
    open_live_trial(page, live_server, live_experiment)
    page.wait_for_function("document.getElementById('transcript').textContent.includes('The second speech')")
    assert page.evaluate(SELECT_FIRST_SPEECH) == "first speech"
    # The speech grows: each poll gets only its new characters (JSON, views.trial_live), appended as text.
    replies = []
    page.on("response", lambda r: replies.append(r.headers.get("content-type", "")) if "/live/" in r.url else 0)
    grown = 'The second speech grows word by word <b>not bold</b> & "so on"\nand goes on'  # as text
    for words in ("The second speech grows", "The second speech grows word", grown):
        play_worker(second, partial_text=words)
        page.wait_for_function(
            f"document.querySelector('[data-chars=\"{second.index}\"]').textContent === '{len(words)}'"
        )
        assert page.evaluate("getSelection().toString()") == "first speech"
    writing = page.locator(f'[data-writing="{second.index}"]')
    assert writing.inner_text() == grown and writing.locator("br").count() == 1  # text, and its line break
    assert writing.locator("b").count() == 0
    # Appended, not rendered (how many replies depends on how the polls fall between the writes).
    assert "application/json" in replies
    assert "(writing…)" in page.inner_text("#transcript")
    # New characters that finish a quote: the speech comes whole as JSON, its quote marked as a render marks it
    # (unverified: not words of the passage), its markup still text.
    since = len(replies)
    quoted = grown + " <quote>words <i>not</i> in it</quote> then"
    play_worker(second, partial_text=quoted)
    page.wait_for_selector(f'[data-writing="{second.index}"] q.quote.unverified')
    assert writing.locator("q").inner_text() == "words <i>not</i> in it" and writing.locator("i").count() == 0
    text = quoted.replace("\n", "").replace("<quote>", "").replace("</quote>", "")  # a <br> has no text
    assert writing.evaluate("speech => speech.textContent") == text
    assert writing.locator("br").count() == 1 and "text/html" not in "".join(replies[since:])
    assert page.evaluate("getSelection().toString()") == "first speech"

    play_worker(second, status="done", text="The second speech, complete.")
    page.wait_for_selector("#live-controls:not([hidden])")  # the round is done: the judge's move
    assert "The second speech, complete." in page.inner_text("#transcript")
    assert "(writing…)" not in page.inner_text("#transcript")
    assert page.evaluate("getSelection().toString()") == "first speech"
    assert page.evaluate("window.selectedTextNode.isConnected")  # the very text node, not a copy


# Counts the live requests in flight, from the page's first script on (page.add_init_script).
TRACK_LIVE_REQUESTS = """
    window.liveInFlight = 0;
    document.addEventListener("htmx:before:request", () => { window.liveInFlight += 1; });
    document.addEventListener("htmx:finally:request", () => { window.liveInFlight -= 1; });
"""

# Refreshes the live partials as trial.js does after a refused move; resolves with the answer's status once htmx is
# done with it (swapped or not). A poll still in flight (whose reply may just have been swapped in) would have the
# refresh dropped (hx-sync="drop") and its own end taken for the refresh's: the refresh waits for it to end.
LIVE_REFRESH = """() => new Promise((resolve) => {
    const refresh = () => {
        document.addEventListener("htmx:before:request", (started) => {
            const mine = started.detail.ctx;
            const done = (event) => {
                if (event.detail.ctx !== mine) return;
                document.removeEventListener("htmx:finally:request", done);
                resolve(mine.response.status);
            };
            document.addEventListener("htmx:finally:request", done);
        }, {once: true});
        document.getElementById("live-status").dispatchEvent(new Event("live-refresh"));
    };
    const whenIdle = () => (window.liveInFlight === 0 ? refresh() : setTimeout(whenIdle, 20));
    whenIdle();
})"""


def test_a_refresh_of_an_unchanged_page_is_answered_304_and_swaps_nothing(page, live_server, live_experiment, judge):
    """The live status sends back the tag of what the page shows (htmx's ptag extension): an unchanged page is
    answered 304 and nothing is swapped; a changed one gets the partials, morphed in around the judge's selection.
    Between rounds nothing on the page moves with the clock, so each answer is decided by the data alone."""
    from judging.services import live_move

    page.add_init_script(TRACK_LIVE_REQUESTS)
    trial = open_trial_between_rounds(page, live_server, live_experiment)
    # One refresh first, whatever it is answered: once in a CI run on PostgreSQL the first refresh after the page
    # loaded was answered 200 (something the page shows was written after its render; not found in 5 runs since,
    # and live_tag's two computations agree in every state: tests/judging/test_live_tag.py). From here the page
    # shows what the database has, and the test's assertions are about that.
    assert page.evaluate(LIVE_REFRESH) in (200, 304)
    sent = []  # the tag each refresh sent back (as the server got it)
    page.on("request", lambda request: sent.append(request.headers.get("hx-ptag")) if "/live/" in request.url else 0)
    page.evaluate(
        """() => {
            document.getElementById("live-controls").dataset.marker = "untouched";  // a swap would drop it
            const text = document.querySelector("#transcript .speech p").firstChild;
            const range = document.createRange();
            range.setStart(text, 0);
            range.setEnd(text, 9);
            getSelection().removeAllRanges();
            getSelection().addRange(range);
        }"""
    )
    tag = page.get_attribute("#live-status", "hx-ptag")
    assert page.evaluate(LIVE_REFRESH) == 304 and sent == [tag]
    assert page.get_attribute("#live-controls", "data-marker") == "untouched"
    assert page.evaluate("getSelection().toString()") == "Debater A"

    # The judge goes on from another tab: this page is out of date, so the refresh gets the partials and a new tag.
    live_move(trial_id=trial.pk, judge=judge, action="continue")
    assert page.evaluate(LIVE_REFRESH) == 200 and sent[1] == tag
    assert page.get_attribute("#live-controls", "data-marker") is None
    assert page.evaluate("getSelection().toString()") == "Debater A"  # the unchanged speech kept its selection
    # The page polls while round 2 is written, and stops when the judge must act again; then, unchanged: 304.
    for turn in trial.turns.filter(round=2):
        play_worker(turn, status="done", text=f"Debater {turn.speaker} argues in round 2.")
    page.wait_for_selector("#live-controls:not([hidden])")
    assert page.evaluate(LIVE_REFRESH) == 304
    assert sent[-1] == page.get_attribute("#live-status", "hx-ptag") != tag
    assert page.evaluate("getSelection().toString()") == "Debater A"


COUNT_LIVE_REQUESTS = """
    window.liveRequests = 0;
    window.liveNotModified = 0;
    document.addEventListener("htmx:before:request", (event) => {
        if (event.detail.ctx.request.action.endsWith("/live/")) window.liveRequests += 1;
    });
    document.addEventListener("htmx:after:request", (event) => {
        if (event.detail.ctx.response.status === 304) window.liveNotModified += 1;
    });
"""

COUNT_NODES = """() => {
    const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_ALL);
    let count = 0;
    while (walker.nextNode()) count += 1;
    return count;
}"""


def test_the_page_polls_while_speeches_are_written_and_not_while_the_judge_must_act(page, live_server, live_experiment):
    from judging.services import trial_open

    trial = live_experiment.trials.order_by("queue_position").first()
    trial_open(trial=trial)  # round 1 is waiting for a worker
    page.add_init_script(COUNT_LIVE_REQUESTS)
    page.clock.install()
    open_live_trial(page, live_server, live_experiment)
    page.wait_for_function("window.liveRequests >= 2")
    nodes = page.evaluate(COUNT_NODES)
    page.wait_for_function("window.liveRequests >= 6")
    assert page.evaluate(COUNT_NODES) == nodes  # updates that change nothing add nothing (not even whitespace)
    # Nothing new but the round's seconds: the polls are answered 304 and the page counts the seconds itself.
    seconds = int(page.inner_text("#round-seconds"))
    page.clock.run_for(10_000)
    # The polls sent in those 10 s are answered only now (run_for runs timers, not the network): wait for two
    # more 304s to land (htmx fires after:swap for them too, with nothing swapped), then let the counter tick.
    answered = page.evaluate("window.liveNotModified")
    page.wait_for_function(f"window.liveNotModified >= {answered + 2}")
    page.clock.run_for(300)
    # Shown as of the counter's last quarter-second tick: 10 s later it shows at least 9 more.
    assert int(page.inner_text("#round-seconds")) >= seconds + 9
    for turn in trial.turns.all():
        play_worker(turn, status="done", text=f"Debater {turn.speaker} argues in round 1.")
    page.wait_for_selector("#live-controls:not([hidden])")

    # Nothing is being written: however long the judge thinks, the page asks the server nothing.
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    polls = page.evaluate("window.liveRequests")
    page.clock.run_for(60_000)
    assert page.evaluate("window.liveRequests") == polls

    page.clock.resume()
    page.click("#continue")  # round 2 starts, and the page polls again until it is written
    page.wait_for_function(f"window.liveRequests > {polls}")
    # The round-2 render counts from its own seconds, not on from round 1's (70 by the page's clock).
    assert int(page.inner_text("#round-seconds")) < 10
    for turn in trial.turns.filter(round=2):
        play_worker(turn, status="done", text=f"Debater {turn.speaker} argues in round 2.")
    page.wait_for_function("document.querySelectorAll('.speech').length === 4")


STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def test_the_live_page_has_no_inline_script_and_works_under_a_strict_content_security_policy(
    page, live_server, live_experiment, eager_celery
):
    from tests.judging.test_trial_partials import inline_code

    def with_csp(route):
        response = route.fetch()
        route.fulfill(response=response, headers=response.headers | {"content-security-policy": STRICT_CSP})

    page.route("**/judge/trials/*/", with_csp)  # the page itself, not its live/ and move/ requests
    blocked = []
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else 0)

    open_live_trial(page, live_server, live_experiment)  # opening generates round 1 (eagerly)
    page.wait_for_selector("#live-controls:not([hidden])")
    assert inline_code(page.content()) == []
    page.fill("#question-text", "Which sentence proves it?")
    page.click("#ask")  # posted by htmx, answered with the partials
    page.locator(".speech").nth(4).wait_for()  # the question and round 2 (no wait_for_function: it needs eval)
    assert page.input_value("#question-text") == ""
    page.wait_for_selector("#live-controls:not([hidden])")
    page.click("text=Record your current leaning")
    page.check("#lean-form input[name=chosen][value=A]")
    moves = []
    page.on("request", lambda request: moves.append(request) if request.url.endswith("/move/") else None)
    page.click("#lean")  # the slider was never moved: refused in the page, nothing sent
    assert page.is_visible("#leaning-error") and page.inner_text("#leaning-out") == "not set" and moves == []
    page.fill("#leaning", "0.8")
    assert page.inner_text("#leaning-out") == "80%"  # trial.js runs
    with page.expect_response("**/move/"):
        page.click("#lean")
    page.wait_for_selector("#lean-form:not(.htmx-request)")  # htmx has morphed the reply in
    assert page.is_visible("#lean") and page.inner_text("#leaning-out") == "80%"  # the update left them as they were
    page.click("#end")
    page.wait_for_selector("#verdict-section:not([hidden])")
    page.fill("#probability", "0.7")
    assert "if your answer is right you score" in page.inner_text("#score-preview")
    assert inline_code(page.content()) == []  # after the updates too
    assert blocked == []


def test_the_queue_shows_a_trial_once_it_is_ready(page, live_server, make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), num_questions=1)
    experiment_launch(experiment=experiment)
    log_in(page, live_server.url, "judy", "judge-pass-123")
    page.wait_for_selector("text=being prepared")
    trial = experiment.trials.get()
    trial.turns.update(status=Turn.Status.DONE, text="An argument.", finished_at=timezone.now())
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.READY)
    page.wait_for_selector("text=Start next trial")  # queue.js reloaded the page by itself


def test_the_queue_offers_only_the_next_trial_and_a_skip_needs_a_reason(
    page, live_server, make_model_config, make_experiment
):
    experiment = make_experiment(make_model_config("m"), mode="live", num_questions=3)  # all ready at once
    experiment_launch(experiment=experiment)
    first, second, third = experiment.trials.order_by("queue_position")
    log_in(page, live_server.url, "judy", "judge-pass-123")
    page.wait_for_url("**/judge/")
    assert page.locator("ol.queue li").count() == 3
    links = page.locator("ol.queue a")
    assert links.count() == 1 and links.first.get_attribute("href") == f"/judge/trials/{first.pk}/"

    # A later trial's address is refused with a message, and nothing is opened.
    goto_trial(page, f"{live_server.url}/judge/trials/{third.pk}/")
    assert "this is not your next trial" in page.inner_text("#queue-error")
    third.refresh_from_db()
    assert third.opened_at is None and not third.turns.exists()

    # A skip needs a reason: the browser stops an empty one, the server a blank one.
    page.click("#skip summary")
    page.click("#skip-button")
    assert page.evaluate("document.getElementById('skip-reason').validity.valueMissing")
    page.fill("#skip-reason", "   ")
    page.click("#skip-button")
    assert "say in a few words why you skip this trial" in page.inner_text("#queue-error")
    assert Trial.objects.get(pk=first.pk).status == Trial.Status.READY
    if not page.is_visible("#skip-reason"):
        page.click("#skip summary")
    page.fill("#skip-reason", "I <b>wrote</b> this question myself.")
    page.click("#skip-button")
    page.wait_for_selector("text=Trial skipped.")
    skipped = Trial.objects.get(pk=first.pk)
    assert skipped.status == Trial.Status.SKIPPED and skipped.skip_reason == "I <b>wrote</b> this question myself."
    assert "1 skipped" in page.inner_text("#progress")
    links = page.locator("ol.queue a")
    assert links.count() == 1 and links.first.get_attribute("href") == f"/judge/trials/{second.pk}/"
