"""Feedback and history (judging/feedback.py, judging/history.py): the truth and the score only when the
experiment is closed or gives feedback at once (practice always); attention checks look like any trial; the
judge's running accuracy, mean score and calibration; their own verdicts only; escaped; fixed query counts."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from statsmodels.stats.proportion import proportion_confint

from judging import history, scoring, services
from judging.models import Question, Trial, Turn, Verdict
from tests.judging.pages import open_trial

TRUTH_WORDS = ("The correct answer is", "Correct answer", "You were right", "You were wrong", "Right so far")


def make_ready(experiment):
    """Every trial's debate written, ready to judge."""
    Turn.objects.filter(trial__experiment=experiment).update(
        status=Turn.Status.DONE, text="An argument.", finished_at=timezone.now()
    )
    experiment.trials.update(status=Trial.Status.READY)


def judge_next(judge, *, right: bool, p: float = 0.8, rationale: str = "Because.") -> Trial:
    """The judge's next trial opened and judged, right or wrong as asked."""
    trial = Trial.objects.queue_of(judge).first()
    services.trial_open(trial=trial)
    chosen = trial.honest_side if right else ("B" if trial.honest_side == "A" else "A")
    services.verdict_submit(trial_id=trial.pk, judge=judge, chosen=chosen, probability=p, rationale=rationale)
    return trial


@pytest.fixture
def study(make_model_config, make_experiment, judge, other_judge):
    def make(feedback="after_close", num_questions=4, judges=None):
        experiment = make_experiment(
            make_model_config("m"), num_questions=num_questions, feedback=feedback, judges=judges or [judge]
        )
        services.experiment_launch(experiment=experiment)
        experiment.refresh_from_db()
        make_ready(experiment)
        return experiment

    return make


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def page_text(response) -> str:
    text = " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())
    return re.sub(r" ([.,:;)])", r"\1", text)


def test_truth_is_never_shown_for_an_open_after_close_experiment_and_shown_once_it_closes(judge_client, judge, study):
    experiment = study("after_close")
    right = judge_next(judge, right=True)
    judge_next(judge, right=False)
    pages = [
        judge_client.get(reverse("judging:trial", args=[right.pk])),
        judge_client.get(reverse("judging:history")),
        judge_client.get(reverse("judging:trial_state", args=[right.pk])),
    ]
    for response in pages:
        body = response.content.decode()
        assert response.status_code == 200
        for word in TRUTH_WORDS:
            assert word not in body
        assert 'id="outcome"' not in body and "data-score" not in body
        # The page's scoring table (a script: what each probability would score, right and wrong) aside.
        shown = re.sub(r"<script.*?</script>", "", body, flags=re.S) if "html" in response["Content-Type"] else ""
        assert "Your score" not in shown and "· score" not in shown
        for verdict in Verdict.objects.all():
            assert scoring.display(verdict.score) not in shown
    assert "You have judged this trial." in pages[0].content.decode()
    assert "shown once the researchers close the experiment" in pages[0].content.decode()
    assert "2 of your verdicts: the correct answer and score are shown once" in page_text(pages[1])
    assert "Your answer: " + right.honest_side in page_text(pages[0])  # their own answer, always

    services.experiment_close(experiment=experiment)
    trial_page = page_text(judge_client.get(reverse("judging:trial", args=[right.pk])))
    verdict = Verdict.objects.get(trial=right)
    assert f"The correct answer is {right.honest_side}: {right.answer_text(right.honest_side)}" in trial_page
    assert f"You were right. Your score: {scoring.display(verdict.score)}." in trial_page
    history_page = page_text(judge_client.get(reverse("judging:history")))
    # 1 of 2 right: the 95% Wilson range is 9.5% to 90.5% (statsmodels' proportion_confint, method="wilson").
    assert "Right so far: 1 of 2 (50%, 95% range 9–91%; too few trials to say much yet)" in history_page
    mean = scoring.display((verdict.score + Verdict.objects.exclude(pk=verdict.pk).get().score) / 2)
    assert f"Mean score: {mean} per trial (log rule)." in history_page


def test_immediate_feedback_shows_the_truth_and_score_after_each_verdict(judge_client, judge, study):
    study("immediate")
    trial = Trial.objects.queue_of(judge).first()
    page = open_trial(judge_client, trial).content.decode()
    assert "Submit verdict and see the answer" in page
    wrong = "B" if trial.honest_side == "A" else "A"
    response = judge_client.post(
        reverse("judging:verdict", args=[trial.pk]), {"chosen": wrong, "probability": "0.9", "rationale": "Sure."}
    )
    assert response.status_code == 302 and response.url == reverse("judging:trial", args=[trial.pk])
    text = page_text(judge_client.get(response.url))
    score = Verdict.objects.get(trial=trial).score
    assert score == pytest.approx(scoring.verdict_score("log", 0.9, False, rounds=2))
    assert f"The correct answer is {trial.honest_side}" in text and "You were wrong." in text
    assert f"Your score: {scoring.display(score)}" in text and "Next trial" in text


def test_history_escapes_question_answers_and_rationale(judge_client, judge, study):
    study("immediate")
    trial = Trial.objects.queue_of(judge).first()
    Question.objects.filter(pk=trial.question_id).update(
        text="<script>alert('q')</script>", choices=["<script>alert('a')</script>", "<b>x</b>", "<i>y</i>"]
    )
    judge_next(judge, right=True, rationale="<script>alert('r')</script>")
    body = judge_client.get(reverse("judging:history")).content.decode()
    assert "<script>alert(" not in body and "<b>x</b>" not in body
    assert "&lt;script&gt;alert(&#x27;q&#x27;)&lt;/script&gt;" in body
    assert "&lt;script&gt;alert(&#x27;r&#x27;)&lt;/script&gt;" in body


def test_a_judge_sees_only_their_own_history(client, judge, other_judge, study):
    study("immediate", judges=[judge, other_judge])
    judge_next(judge, right=True, rationale="Mine: the first debater.")
    judge_next(other_judge, right=False, rationale="Otto's own reasoning.")
    client.force_login(judge)
    body = client.get(reverse("judging:history")).content.decode()
    assert "Mine: the first debater." in body and "Otto&#x27;s own reasoning." not in body
    assert "Right so far: 1 of 1" in page_text(client.get(reverse("judging:history")))
    other = history.judge_history(other_judge)
    assert other["totals"].count == 1 and other["totals"].right == 0


def test_attention_checks_are_listed_and_counted_like_any_trial(judge_client, judge, study):
    experiment = study("after_close")
    first = Trial.objects.queue_of(judge).first()
    Trial.objects.filter(pk=first.pk).update(role=Trial.Role.ATTENTION)
    judge_next(judge, right=True)
    judge_next(judge, right=True)
    before = judge_client.get(reverse("judging:history")).content.decode()
    services.experiment_close(experiment=experiment)
    after = judge_client.get(reverse("judging:history")).content.decode()
    for body in (before, after):
        assert "attention" not in body.lower() and "check" not in body.lower()
        assert body.count('class="history-row"') == 2
    rows = re.findall(r'<article class="history-row" data-trial="\d+">(.*?)</article>', after, re.S)
    # The two rows differ only in their own text (question, answers, the side, the score).
    shapes = {re.sub(r">[^<]*<", "><", row) for row in rows}
    assert len(shapes) == 1
    assert "Right so far: 2 of 2" in page_text(judge_client.get(reverse("judging:history")))


def test_practice_trials_show_their_truth_at_once_and_count_apart(judge_client, judge, study):
    study("after_close")
    first = Trial.objects.queue_of(judge).first()
    Trial.objects.filter(pk=first.pk).update(role=Trial.Role.PRACTICE)
    judge_next(judge, right=False)
    judge_next(judge, right=True)
    text = page_text(judge_client.get(reverse("judging:history")))
    assert "Practice: 0 of 1 right (not counted above)." in text
    assert "Practice " + Trial.objects.get(pk=first.pk).question.text in text
    assert "Right so far" not in text  # the study trial's truth waits for the close
    assert "1 of your verdicts" in text
    assert "The correct answer is" in page_text(judge_client.get(reverse("judging:trial", args=[first.pk])))


def test_calibration_bins_count_what_was_said_and_how_often_right(judge, study):
    study("immediate", num_questions=8)
    for right, p in [(True, 0.55), (False, 0.58), (True, 0.95), (True, 1.0), (False, 0.9), (True, 0.72)]:
        judge_next(judge, right=right, p=p)
    bins = {(b.low, b.high): (b.count, b.right) for b in history.judge_history(judge)["calibration"]}
    assert bins == {(0.5, 0.6): (2, 1), (0.7, 0.8): (1, 1), (0.9, 1.0): (3, 2)}
    top = next(b for b in history.judge_history(judge)["calibration"] if b.low == 0.9)
    assert top.few and top.stated == pytest.approx((0.95 + 1.0 + 0.9) / 3)
    low, high = top.interval
    assert 0 < low < 2 / 3 < high < 1  # a wide range around 2 of 3


def test_wilson_interval_matches_a_reference_implementation():
    low, high = history.wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert history.wilson(0, 0) == (0.0, 1.0)
    assert history.wilson(5, 5)[1] == 1.0
    for n in (1, 2, 3, 7, 10, 31, 200):
        for right in range(n + 1):
            assert history.wilson(right, n) == pytest.approx(proportion_confint(right, n, method="wilson"), abs=1e-7)


def test_the_history_page_makes_a_fixed_number_of_queries(judge_client, judge, study):
    study("immediate", num_questions=8)
    judge_next(judge, right=True)
    with CaptureQueriesContext(connection) as few:
        assert judge_client.get(reverse("judging:history")).status_code == 200
    for _ in range(5):
        judge_next(judge, right=False)
    with CaptureQueriesContext(connection) as many:
        judge_client.get(reverse("judging:history"))
    # The session and user, the latest verdicts with their trials, the grouped totals.
    assert len(few) == len(many) <= 4, [q["sql"][:120] for q in many]


def test_a_score_is_shown_with_its_scale(judge_client, judge, study):
    """A right answer at 75% scores -0.288 under the log rule: the page says what the scale is, so it does not read
    as a penalty (the best possible, a 50% guess and a confident mistake, from judging.scoring)."""
    study("immediate")
    trial = judge_next(judge, right=True, p=0.75)
    text = page_text(judge_client.get(reverse("judging:trial", args=[trial.pk])))
    assert "Your score: -0.288" in text
    best, guess, worst = (scoring.display(scoring.score("log", q)) for q in (1.0, 0.5, 0.0))
    assert (best, guess, worst) == ("0.000", "-0.693", "-6.908")
    assert f"Higher is better: the best possible score is {best} (right and 100% sure)" in text
    assert f"a 50% guess scores {guess}" in text and f"a confident mistake {worst}" in text


def test_mean_scores_under_different_rules_are_not_pooled(judge_client, judge, make_model_config, make_experiment):
    """A log score and a quadratic score are on different scales: the history gives each rule's mean apart."""
    model = make_model_config("m")
    for rule in ("log", "quadratic"):
        experiment = make_experiment(model, name=rule, num_questions=1, feedback="immediate", scoring_rule=rule)
        services.experiment_launch(experiment=experiment)
        make_ready(experiment)
        judge_next(judge, right=True, p=0.75)
    assert Verdict.objects.filter(trial__experiment__scoring_rule="quadratic").count() == 1
    text = page_text(judge_client.get(reverse("judging:history")))
    assert "Mean score: -0.288 per trial (log rule" in text
    assert f"Mean score: {scoring.display(scoring.score('quadratic', 0.75))} per trial (quadratic rule" in text
