"""A judge's onboarding (docs/onboarding.md): instructions confirmed before the first trial (server-side),
practice trials labelled and followed by the truth, the qualification decided on them, attention checks that look
exactly like study trials."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from judging import services
from judging.models import Onboarding, Trial
from judging.services import TrialRefused, VerdictRefused, experiment_launch, trial_open, trial_skip, verdict_submit
from tests.judging.onboarding import easy_set, make_all_ready, make_ready
from tests.judging.pages import open_trial
from tests.pages import without_csrf_tokens

INSTRUCTIONS = 'Read both answers.\nNever trust <script>alert("x")</script> unverified quotes.'


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


@pytest.fixture
def onboarding_experiment(make_model_config, make_experiment, judge, other_judge):
    """A launched pre-generated debate for two judges: instructions, 2 practice trials with a 50% gate, then 3
    study trials and 1 attention check each; every trial ready."""

    def make(**fields):
        design = {
            "num_questions": 6,
            "instructions": INSTRUCTIONS,
            "practice_trials": 2,
            "qualification_accuracy": 0.5,
            "attention_rate": 0.34,
            "attention_question_set": easy_set(),
        }
        experiment = make_experiment(make_model_config("m"), judges=[judge, other_judge], **(design | fields))
        experiment_launch(experiment=experiment)
        make_all_ready(experiment)
        experiment.refresh_from_db()
        return experiment

    return make


def queue(judge, experiment):
    return list(Trial.objects.filter(experiment=experiment, judge=judge).order_by("queue_position"))


def judge_trial(judge, trial, right: bool):
    trial_open(trial=trial)
    side = trial.honest_side if right else ("B" if trial.honest_side == "A" else "A")
    return verdict_submit(trial_id=trial.pk, judge=judge, chosen=side, probability=0.8, rationale="my reading")


def test_the_instructions_come_first_and_are_checked_on_the_server(onboarding_experiment, judge, judge_client):
    experiment = onboarding_experiment()
    first = queue(judge, experiment)[0]
    instructions = reverse("judging:instructions", args=[experiment.pk])
    # Every way to a trial leads to the instructions: the page, the start (a POST), the service itself.
    assert judge_client.get(reverse("judging:next"), follow=True).redirect_chain[-1] == (instructions, 302)
    assert judge_client.get(reverse("judging:trial", args=[first.pk])).url == instructions
    assert judge_client.post(reverse("judging:start", args=[first.pk])).url == instructions
    with pytest.raises(TrialRefused, match="read the instructions"):
        trial_open(trial=first)
    with pytest.raises(TrialRefused, match="read the instructions"):
        trial_skip(trial_id=first.pk, judge=judge, reason="skipping the reading")
    first.refresh_from_db()
    assert first.opened_at is None and first.status == "ready"

    page = judge_client.get(instructions).content.decode()
    # The researchers' text escaped, line breaks kept; the protocol's own explanation; the practice and its gate.
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "Read both answers.<br>" in page
    assert "Two debaters argue" in page and "There are 2 rounds" in page
    assert "&lt;p&gt;" not in page  # the protocol's fragment is markup, not text shown with its tags
    assert "2 practice trials" in page and "at least 50%" in page
    response = judge_client.post(instructions)
    assert response.url == reverse("judging:next")
    read_at = Onboarding.objects.get(experiment=experiment, judge=judge).instructions_read_at
    assert read_at is not None
    judge_client.post(instructions)  # confirming again changes nothing
    assert Onboarding.objects.get(experiment=experiment, judge=judge).instructions_read_at == read_at
    open_trial(judge_client, first)


def test_the_instructions_of_someone_elses_study_are_not_found(onboarding_experiment, client, django_user_model):
    experiment = onboarding_experiment()
    client.force_login(django_user_model.objects.create_user(username="stranger", password="x-pass-123456"))
    url = reverse("judging:instructions", args=[experiment.pk])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert not Onboarding.objects.exists()


def test_without_instructions_nothing_is_asked(onboarding_experiment, judge, judge_client):
    experiment = onboarding_experiment(instructions="")
    open_trial(judge_client, queue(judge, experiment)[0])


def test_practice_is_labelled_comes_first_and_shows_the_truth_after_the_verdict(
    onboarding_experiment, judge, judge_client
):
    experiment = onboarding_experiment()
    services.instructions_confirm(experiment_id=experiment.pk, judge=judge)
    trials = queue(judge, experiment)
    practice = [t for t in trials if t.role == "practice"]
    assert trials[:2] == practice
    # While practice is left, no study trial is offered, even when a practice trial is still being prepared.
    Trial.objects.filter(pk=practice[0].pk).update(status="generating")
    assert list(Trial.objects.queue_of(judge)) == [practice[1]]
    Trial.objects.filter(pk=practice[1].pk).update(status="generating")
    assert not Trial.objects.queue_of(judge).exists()
    study = next(t for t in trials if t.role == "study")
    with pytest.raises(TrialRefused, match="not your next trial"):
        trial_open(trial=study)
    make_ready(practice[0]), make_ready(practice[1])

    start = judge_client.get(reverse("judging:trial", args=[practice[0].pk])).content.decode()
    assert 'id="practice-label"' in start
    page = open_trial(judge_client, practice[0]).content.decode()
    assert 'id="practice-label"' in page and 'id="practice-status"' in page
    response = judge_client.post(
        reverse("judging:verdict", args=[practice[0].pk]),
        {"chosen": practice[0].honest_side, "probability": "0.8", "rationale": "my reading"},
    )
    assert response.url == reverse("judging:trial", args=[practice[0].pk])  # the truth before going on
    page = judge_client.get(response.url).content.decode()
    assert f"The correct answer is <strong>{practice[0].honest_side}</strong>" in page
    assert "You were right." in page and 'id="outcome-score"' in page
    assert "Practice so far: 1 of 1 right" in page


def test_qualification_passed_the_study_follows(onboarding_experiment, judge, judge_client):
    experiment = onboarding_experiment()
    services.instructions_confirm(experiment_id=experiment.pk, judge=judge)
    first, second = queue(judge, experiment)[:2]
    judge_trial(judge, first, right=True)
    assert Onboarding.objects.get(judge=judge).qualified is None  # one practice trial left
    judge_trial(judge, second, right=False)
    onboarding = Onboarding.objects.get(judge=judge)
    assert (onboarding.qualified, onboarding.practice_correct, onboarding.practice_judged) == (True, 1, 2)
    assert onboarding.decided_at is not None
    page = judge_client.get(reverse("judging:trial", args=[second.pk])).content.decode()
    assert 'id="qualified"' in page
    following = Trial.objects.queue_of(judge).first()
    assert following.role in ("study", "attention") and following.status == "ready"
    assert not Trial.objects.filter(judge=judge, status="withdrawn").exists()
    open_trial(judge_client, following)


def test_qualification_failed_withdraws_the_study_at_once_and_thanks_the_judge(
    onboarding_experiment, judge, other_judge, judge_client
):
    experiment = onboarding_experiment()
    services.instructions_confirm(experiment_id=experiment.pk, judge=judge)
    first, second = queue(judge, experiment)[:2]
    judge_trial(judge, first, right=False)
    judge_trial(judge, second, right=False)
    onboarding = Onboarding.objects.get(judge=judge)
    assert (onboarding.qualified, onboarding.practice_correct, onboarding.practice_judged) == (False, 0, 2)
    mine = Trial.objects.filter(experiment=experiment, judge=judge)
    assert set(mine.exclude(role="practice").values_list("status", flat=True)) == {"withdrawn"}
    assert mine.filter(role="attention").count() == 1
    # The other judge's trials are untouched.
    assert not Trial.objects.filter(judge=other_judge, status="withdrawn").exists()
    # A second submission of the last verdict is refused and decides nothing again.
    with pytest.raises(VerdictRefused, match="already given a verdict"):
        verdict_submit(trial_id=second.pk, judge=judge, chosen="A", probability=0.9, rationale="again")
    assert Onboarding.objects.get(judge=judge).decided_at == onboarding.decided_at

    page = judge_client.get(reverse("judging:trial", args=[second.pk])).content.decode()
    assert 'id="not-qualified-notice"' in page and "below the 50%" in page
    page = judge_client.get(reverse("judging:queue")).content.decode()
    assert 'id="not-qualified"' in page and "Thank you for practising" in page
    withdrawn = mine.exclude(role="practice").first()
    assert judge_client.get(reverse("judging:trial", args=[withdrawn.pk])).status_code == 404
    assert judge_client.post(reverse("judging:start", args=[withdrawn.pk])).status_code == 404
    assert judge_client.get(reverse("judging:next")).url == reverse("judging:queue")


def test_a_skipped_practice_trial_counts_as_not_right(onboarding_experiment, judge):
    experiment = onboarding_experiment(qualification_accuracy=0.75)
    services.instructions_confirm(experiment_id=experiment.pk, judge=judge)
    first, second = queue(judge, experiment)[:2]
    judge_trial(judge, first, right=True)
    trial_skip(trial_id=second.pk, judge=judge, reason="the question is broken")
    onboarding = Onboarding.objects.get(judge=judge)
    assert (onboarding.qualified, onboarding.practice_correct, onboarding.practice_judged) == (False, 1, 1)


def test_without_a_threshold_practice_is_counted_and_nobody_is_gated(onboarding_experiment, judge):
    experiment = onboarding_experiment(qualification_accuracy=None)
    services.instructions_confirm(experiment_id=experiment.pk, judge=judge)
    first, second = queue(judge, experiment)[:2]
    judge_trial(judge, first, right=False)
    judge_trial(judge, second, right=False)
    onboarding = Onboarding.objects.get(judge=judge)
    assert (onboarding.qualified, onboarding.practice_judged, onboarding.decided_at) == (None, 2, None)
    assert Trial.objects.queue_of(judge).first().role != "practice"


def normalised(html: str, trial: Trial) -> str:
    """A trial's page with what belongs to that trial alone left out: its id, question and answers, its number
    in the queue, the CSRF token and the live tag (a hash of the judge's view, which holds those)."""
    html = (
        html.replace(f"/trials/{trial.pk}/", "/trials/N/")
        .replace(trial.question.text, "Q")
        .replace(trial.answer_text("A"), "a")
        .replace(trial.answer_text("B"), "b")
    )
    html = re.sub(r'hx-ptag="[0-9a-f]+"', 'hx-ptag="T"', html)
    # Its place in the queue (the two are compared one after the other, so one is a trial further on).
    html = re.sub(r"Trial \d+ of \d+", "Trial n of m", html)
    return without_csrf_tokens(html)


def test_an_attention_check_looks_exactly_like_a_study_trial(onboarding_experiment, judge, judge_client, plan_first):
    experiment = onboarding_experiment(instructions="", practice_trials=0, qualification_accuracy=None)
    trials = queue(judge, experiment)
    check = next(t for t in trials if t.role == "attention")
    study = next(t for t in trials if t.role == "study" and t.protocol == check.protocol)
    plan_first(check, study)
    pages = {}
    for trial in (check, study):
        start = judge_client.get(reverse("judging:trial", args=[trial.pk])).content.decode()
        page = open_trial(judge_client, trial).content.decode()
        state = judge_client.get(reverse("judging:trial_state", args=[trial.pk])).json()
        queue_page = judge_client.get(reverse("judging:queue")).content.decode()
        for text in (start, page, queue_page):
            assert "attention" not in text.lower() and "practice" not in text.lower()
        assert "attention" not in str(state).lower() and state["practice"] is False  # as on every study trial
        state = {k: v for k, v in state.items() if k not in ("id", "question", "answers")}
        pages[trial.role] = (normalised(start, trial), normalised(page, trial), state)
        # On to the next without a verdict.
        trial_skip(trial_id=trial.pk, judge=judge, reason="compared with the other trial")
    assert pages["attention"][0] == pages["study"][0]
    assert pages["attention"][1] == pages["study"][1]
    assert pages["attention"][2] == pages["study"][2]


def test_failed_practice_holds_the_study_back_until_replaced_and_its_replacements_decide(onboarding_experiment, judge):
    """Practice trials whose generation failed hold the study back: no study trial is offered until they are
    replaced and answered, so the qualification is decided on as many practice trials as planned and before any
    study trial. A study trial opened anyway (by an earlier release, which did not hold them) is withdrawn with
    the rest, and no verdict, heartbeat or skip is taken on it any more."""
    experiment = onboarding_experiment()
    services.instructions_confirm(experiment_id=experiment.pk, judge=judge)
    practice = queue(judge, experiment)[:2]
    Trial.objects.filter(pk__in=[t.pk for t in practice]).update(status=Trial.Status.FAILED)
    assert not Trial.objects.queue_of(judge).exists()  # the study waits for the replacements
    opened = Trial.objects.filter(experiment=experiment, judge=judge, role="study", status="ready").first()
    Trial.objects.filter(pk=opened.pk).update(opened_at=timezone.now())
    replaced = services.failed_trials_replace(experiment_id=experiment.pk)
    assert replaced.same_question + replaced.new_question == 2, replaced.refused
    replacements = list(Trial.objects.filter(experiment=experiment, judge=judge, role="practice", status="generating"))
    judge_trial(judge, make_ready(replacements[0]), right=False)
    assert Onboarding.objects.get(judge=judge).decided_at is None  # one practice trial is still to answer
    judge_trial(judge, make_ready(replacements[1]), right=False)
    onboarding = Onboarding.objects.get(judge=judge)
    assert (onboarding.qualified, onboarding.practice_judged) == (False, 2)
    opened.refresh_from_db()
    assert opened.status == Trial.Status.WITHDRAWN

    with pytest.raises(VerdictRefused, match="no such trial") as refused:
        verdict_submit(trial_id=opened.pk, judge=judge, chosen="A", probability=0.9, rationale="late")
    assert refused.value.status == 404
    with pytest.raises(services.BeatRefused, match="no such trial"):
        services.active_time_beat(trial_id=opened.pk, judge=judge, page="p1", seq=1, fresh=True)
    with pytest.raises(TrialRefused, match="no such trial"):
        trial_skip(trial_id=opened.pk, judge=judge, reason="gone")
    assert Trial.objects.get(pk=opened.pk).status == Trial.Status.WITHDRAWN


# The onboarding pages' query budgets (session and user included), measured: the instructions page of a study of one
# condition (each further condition adds its example trial's turns, at most the registry's five); a judged practice
# trial adds its verdict, its number and the judge's practice so far to the trial page's.
ONBOARDING_QUERY_BUDGET = {"instructions": 7, "judged_practice": 7}


def test_the_onboarding_pages_stay_within_their_query_budgets(
    onboarding_experiment, judge, judge_client, django_assert_max_num_queries
):
    experiment = onboarding_experiment()
    with django_assert_max_num_queries(ONBOARDING_QUERY_BUDGET["instructions"]):
        assert judge_client.get(reverse("judging:instructions", args=[experiment.pk])).status_code == 200
    services.instructions_confirm(experiment_id=experiment.pk, judge=judge)
    first = queue(judge, experiment)[0]
    judge_trial(judge, first, right=True)
    with django_assert_max_num_queries(ONBOARDING_QUERY_BUDGET["judged_practice"]):
        assert judge_client.get(reverse("judging:trial", args=[first.pk])).status_code == 200
