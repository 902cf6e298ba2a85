"""New judges in Chromium (docs/onboarding.md), from a crowd invite link, under the site's own CSP: the instructions
before the first trial, a practice trial with the truth and score after the verdict, the qualification passed and
the study (with an attention check that looks like any trial) judged to the completion code; another judge fails
the qualification, is thanked and still gets the completion code. One new judge's whole walk through a debate study:
a skip refused without a reason then taken with one, the completion code, and their history with their accuracy."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from judging import recruitment
from judging.models import Invite, Onboarding, Seat, Trial
from judging.services import experiment_close, experiment_launch
from tests.browser.test_browser_judge import browser, choose, new_context  # noqa: F401
from tests.judging.onboarding import easy_set, make_all_ready

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INSTRUCTIONS = "Read the question and both answers carefully.\nYour first trial is practice."


def _other(side):
    return "B" if side == "A" else "A"


def onboarding_design() -> dict:
    """Instructions, one practice trial that must be right, and an attention check for every two study trials."""
    return dict(
        judges=[],
        instructions=INSTRUCTIONS,
        practice_trials=1,
        qualification_accuracy=1.0,
        attention_rate=0.5,
        attention_question_set=easy_set(),
    )


def crowd_study(experiment, *, participants, completion_code):
    """``experiment`` with a crowd invite for ``participants`` (its seats made before launch), launched."""
    invite = recruitment.invite_create(
        experiment=experiment,
        kind=Invite.Kind.CROWD,
        max_uses=participants,
        expires_at=timezone.now() + timedelta(days=1),
        completion_code=completion_code,
    )
    experiment_launch(experiment=experiment)
    return experiment, invite


def join(browser, live_server, invite, pid):  # noqa: F811
    context = new_context(browser, bypass_csp=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/join/{invite.token}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=s{pid[-1]}")
    page.click("#join")
    page.wait_for_url("**/judge/")
    return context, page, Seat.objects.get(participant_id=pid).judge


def read_instructions_and_open_the_practice(page, experiment, judge):
    page.click("text=Start next trial")
    page.wait_for_url(f"**/judge/studies/{experiment.pk}/instructions/")  # the server sends them there first
    assert "Read the question and both answers carefully." in page.inner_text("#instructions-text")
    assert "1 practice trial" in page.inner_text("#practice-explained")
    page.click("#confirm-instructions")
    practice = Trial.objects.get(experiment=experiment, judge=judge, role="practice")
    page.wait_for_url(f"**/judge/trials/{practice.pk}/")
    assert page.inner_text("#practice-label") == "Practice"
    page.click("#start")
    page.wait_for_selector("#verdict-form")
    return practice


def test_new_judges_read_the_instructions_practise_and_qualify_or_are_thanked(
    browser,  # noqa: F811
    live_server,
    make_model_config,
    make_experiment,
):
    # Judge-alone trials: live and judgeable at launch without a model.
    experiment, invite = crowd_study(
        make_experiment(make_model_config("m"), conditions=["naive"], num_questions=4, **onboarding_design()),
        participants=2,
        completion_code="C0DE42",
    )

    # The first judge gets the practice trial right, qualifies, and goes on to the study.
    context, page, judge = join(browser, live_server, invite, "5f1a2b3c4d5e6f7a8b9c0d11")
    practice = read_instructions_and_open_the_practice(page, experiment, judge)
    choose(page, practice.honest_side, "0.8")
    page.fill("#rationale", "my own reading")
    page.click("#submit-verdict")
    page.wait_for_url(f"**/judge/trials/{practice.pk}/")  # the truth before going on
    assert "You were right." in page.inner_text("#outcome")
    assert page.inner_text("#outcome-score") == "-0.223"  # the log score of 0.8 for the correct answer
    assert "You qualified." in page.inner_text("#qualified")
    rest = list(Trial.objects.queue_of(judge))
    assert [t.role for t in rest].count("attention") == 1 and len(rest) == 3
    page.click("#next-trial")
    for trial in rest:
        page.wait_for_url(f"**/judge/trials/{trial.pk}/")
        assert page.locator("#practice-label").count() == 0  # study trials and the attention check alike
        page.click("#start")
        page.wait_for_selector("#verdict-form")
        choose(page, trial.honest_side, "0.7")
        page.fill("#rationale", "my own reading")
        page.click("#submit-verdict")
    page.wait_for_url("**/judge/")
    assert page.inner_text("#completion-code") == "C0DE42"
    context.close()

    # The second judge gets it wrong: thanked, their study trials withdrawn, and still given the completion code.
    context, page, other = join(browser, live_server, invite, "5f1a2b3c4d5e6f7a8b9c0d22")
    practice = read_instructions_and_open_the_practice(page, experiment, other)
    choose(page, _other(practice.honest_side), "0.6")
    page.fill("#rationale", "a guess")
    page.click("#submit-verdict")
    page.wait_for_url(f"**/judge/trials/{practice.pk}/")
    assert "You were wrong." in page.inner_text("#outcome")
    assert "below the 100%" in page.inner_text("#not-qualified-notice")
    page.click("#finish")
    page.wait_for_url("**/judge/")
    assert "Thank you for practising" in page.inner_text("#not-qualified")
    assert page.inner_text("#completion-code") == "C0DE42"
    assert set(Trial.objects.filter(judge=other).exclude(role="practice").values_list("status", flat=True)) == {
        "withdrawn"
    }
    assert Onboarding.objects.get(judge=other).qualified is False
    assert Onboarding.objects.get(judge=judge).qualified is True
    context.close()


def test_a_new_judge_goes_from_the_invite_link_through_a_skip_to_the_completion_code_and_their_history(
    browser,  # noqa: F811
    live_server,
    make_model_config,
    make_experiment,
):
    # Pre-generated debates, their turns written here as a worker would (no model); truth shown after the close.
    experiment, invite = crowd_study(
        make_experiment(
            make_model_config("m"), conditions=["debate"], rounds=1, num_questions=2, **onboarding_design()
        ),
        participants=1,
        completion_code="SK1PC0DE",
    )
    make_all_ready(experiment)

    context, page, judge = join(browser, live_server, invite, "5f1a2b3c4d5e6f7a8b9c0d33")
    practice = read_instructions_and_open_the_practice(page, experiment, judge)
    assert "Argument of debater" in page.inner_text(".transcript")
    choose(page, practice.honest_side, "0.9")
    page.fill("#rationale", "practice reading")
    page.click("#submit-verdict")
    page.wait_for_url(f"**/judge/trials/{practice.pk}/")
    assert "You were right." in page.inner_text("#outcome")
    assert "You qualified." in page.inner_text("#qualified")
    rest = list(Trial.objects.queue_of(judge))
    roles = [t.role for t in rest]
    assert sorted(roles) == ["attention", "study", "study"]
    skipped = next(t for t in rest if t.role == "study")  # a study trial; the other and the check are judged
    page.click("#next-trial")
    answers = {}
    for trial in rest:
        page.wait_for_url(f"**/judge/trials/{trial.pk}/")
        assert page.locator("#practice-label").count() == 0  # study trials and the attention check alike
        if trial == skipped:
            # The trial's start page offers the skip. Empty, the browser does not send it (required); only
            # spaces, the server refuses it with the reason, keeps the text, and nothing is skipped.
            page.click("#skip summary")
            assert page.locator("#skip-reason").evaluate("el => el.validity.valueMissing") is True
            page.fill("#skip-reason", "   ")
            page.click("#skip-button")
            page.wait_for_selector("#queue-error")
            assert "say in a few words why you skip this trial" in page.inner_text("#queue-error")
            assert Trial.objects.get(pk=trial.pk).status == Trial.Status.READY
            assert page.locator("#skip[open]").count() == 1  # the form is open again, for the reason
            page.fill("#skip-reason", "The question is ambiguous: <b>both</b> answers fit.")
            page.click("#skip-button")
            page.wait_for_url("**/judge/")
            assert "Trial skipped. Your reason has been recorded." in page.content()
            assert "1 skipped" in page.inner_text("#progress")
            if trial != rest[-1]:
                page.click("text=Start next trial")
            continue
        page.click("#start")
        page.wait_for_selector("#verdict-form")
        # Wrong on the study trial, right on the check: the history's accuracy tells them apart from the practice.
        answers[trial.pk] = trial.honest_side if trial.role == "attention" else _other(trial.honest_side)
        choose(page, answers[trial.pk], "0.7")
        page.fill("#rationale", "my own reading")
        page.click("#submit-verdict")
    page.wait_for_url("**/judge/")
    assert page.inner_text("#completion-code") == "SK1PC0DE"
    assert page.inner_text("#progress") == "3 of 4 judged · 1 skipped"  # the practice counted
    skipped.refresh_from_db()
    assert skipped.status == Trial.Status.SKIPPED
    assert skipped.skip_reason == "The question is ambiguous: <b>both</b> answers fit."

    # Their history, from the queue: their verdicts; the truth waits for the close, the practice is shown.
    page.click("#history-link")
    page.wait_for_url("**/judge/history/")
    assert page.locator(".history-row").count() == 3  # the practice, the study trial and the check; not the skip
    assert page.locator(f".history-row[data-trial='{skipped.pk}']").count() == 0
    assert page.inner_text("#practice-accuracy") == "Practice: 1 of 1 right (not counted above)."
    assert "2 of your verdicts" in page.inner_text("#hidden-count")
    for pk, chosen in answers.items():
        assert f"Your answer: {chosen}, 70% sure." in page.inner_text(f".history-row[data-trial='{pk}']")
    experiment_close(experiment=experiment)  # the researcher closes the study
    page.reload()
    assert "Right so far: 1 of 2 (50%" in page.inner_text("#running-accuracy")
    assert page.locator("#hidden-count").count() == 0
    for pk, chosen in answers.items():
        row = page.inner_text(f".history-row[data-trial='{pk}']")
        assert f"Correct answer: {Trial.objects.get(pk=pk).honest_side}." in row
    context.close()
