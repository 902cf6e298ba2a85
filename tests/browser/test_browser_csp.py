"""The server's own Content-Security-Policy in Chromium: an inline script injected into a judge page or an admin
page is blocked, while the live trial page (polling, questions, the leaning slider) and the admin's scripts work.

Injected markup stands for a stored injection the escaping missed: the page is fetched from the live server with
its headers (the policy included), and a script element is added to its HTML before the browser reads it."""

from __future__ import annotations

import pytest

from tests.browser.test_browser_judge import browser, new_context, open_live_trial, play_worker  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INJECTED = "<script>window.injected = 'ran';</script>"


@pytest.fixture
def tab(browser):  # noqa: F811  (the browser fixture)
    context = new_context(browser, viewport={"width": 1280, "height": 900}, bypass_csp=False)
    yield context.new_page()
    context.close()


def inject_inline_script(page, pattern: str) -> list:
    """Add INJECTED to every page matching ``pattern``, keeping the server's headers; returns the policies seen."""
    policies = []

    def handle(route):
        response = route.fetch()
        policies.append(response.headers.get("content-security-policy", ""))
        body = response.text().replace("</body>", INJECTED + "</body>")
        route.fulfill(response=response, body=body, headers=response.headers)

    page.route(pattern, handle)
    return policies


def csp_messages(page) -> list[str]:
    messages = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    return messages


def wait_for_polls(page, n: int) -> None:
    for _ in range(n):
        with page.expect_request(lambda r: r.url.endswith("/live/")):
            pass


def test_an_injected_inline_script_is_blocked_and_the_live_judge_page_works(tab, live_server, live_experiment):
    page = tab
    from judging.services import trial_open

    trial = live_experiment.trials.order_by("queue_position").first()
    trial_open(trial=trial)  # round 1 waits for a worker: the page polls
    policies = inject_inline_script(page, "**/judge/trials/*/")
    blocked = csp_messages(page)

    open_live_trial(page, live_server, live_experiment)
    assert policies and "script-src 'self'" in policies[0] and "unsafe-inline" not in policies[0]
    wait_for_polls(page, 2)  # htmx polls live/ while the debaters write
    for turn in trial.turns.all():
        play_worker(turn, status="done", text=f"Debater {turn.speaker} argues in round 1.")
    page.wait_for_selector("#live-controls:not([hidden])")  # the poll's reply was morphed in
    assert page.locator(".speech").count() == 2

    page.fill("#question-text", "Which sentence proves it?")
    with page.expect_response("**/move/"):
        page.click("#ask")
    page.locator(".speech", has_text="Which sentence proves it?").wait_for()
    wait_for_polls(page, 1)  # round 2 is being written
    for turn in trial.turns.filter(round=2):
        play_worker(turn, status="done", text=f"Debater {turn.speaker} answers in round 2.")
    page.locator(".speech", has_text="answers in round 2").first.wait_for()
    page.wait_for_selector("#live-controls:not([hidden])")

    page.click("text=Record your current leaning")
    page.check("#lean-form input[name=chosen][value=A]")
    page.fill("#leaning", "0.8")
    assert page.inner_text("#leaning-out") == "80%"  # trial.js runs
    with page.expect_response("**/move/"):
        page.click("#lean")

    assert page.evaluate("window.injected") is None  # the injected script never ran
    assert blocked and all("inline script" in m for m in blocked), blocked  # and nothing else was refused


def test_an_injected_inline_script_is_blocked_and_the_admin_works(tab, live_server, django_user_model):
    page = tab
    django_user_model.objects.create_superuser(username="rita", password="researcher-pass-1")
    policies = inject_inline_script(page, "**/admin/judging/experiment/add/")
    blocked = csp_messages(page)

    page.goto(live_server.url + "/admin/login/?next=/admin/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "researcher-pass-1")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    page.goto(live_server.url + "/admin/judging/experiment/add/")
    assert policies and "script-src 'self'" in policies[0]
    # The admin's own scripts run: the judges' two-box selector is built by SelectFilter2.js.
    page.wait_for_selector("#id_judges_from")
    page.wait_for_selector("#id_judges_add")
    assert page.evaluate("window.injected") is None
    assert blocked and all("inline script" in m for m in blocked), blocked

    page.goto(live_server.url + "/admin/audit/auditevent/")
    assert page.is_visible("text=Export as CSV")
    assert all("inline script" in m for m in blocked), blocked
