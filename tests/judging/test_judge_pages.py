"""Judge-facing pages: blinding, verdict validation, and what a judge can reach."""

import json

import pytest
from django.urls import reverse

from judging.models import Trial, Verdict
from tests.judging.pages import open_trial

FORBIDDEN = [
    "PASSAGE-SECRET",
    "honest",
    "adversar",
    "correct_index",
    "SECRET-MODEL-NAME",
    "SECRET-PROMPT",
    "gold",
    "first_speaker",
    "model_settings",
]


def assert_blind(response, trial):
    body = response.content.decode()
    for word in FORBIDDEN:
        assert word.lower() not in body.lower(), f"{word!r} leaked in {response.request['PATH_INFO']}"
    assert trial.question.passage not in body


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def verdict_url(trial):
    return reverse("judging:verdict", args=[trial.pk])


def post_verdict(client, trial, **overrides):
    data = {"chosen": "A", "probability": "0.8", "rationale": "A argued better.", "active_seconds": "12.5"} | overrides
    return client.post(verdict_url(trial), data)


def test_no_judge_facing_page_or_response_reveals_the_passage_gold_or_honest_side(judge_client, ready_trial):
    responses = [
        judge_client.get(reverse("judging:queue")),
        judge_client.get(reverse("judging:queue_json")),
        judge_client.get(reverse("judging:trial", args=[ready_trial.pk])),  # the page to start it
        open_trial(judge_client, ready_trial),
        judge_client.get(reverse("judging:next"), follow=True),
        post_verdict(judge_client, ready_trial, probability="7"),  # error page
        post_verdict(judge_client, ready_trial, rationale=""),  # error page
        post_verdict(judge_client, ready_trial, chosen="Z"),  # error page
        judge_client.get(reverse("judging:trial", args=[ready_trial.pk + 999])),  # 404
    ]
    post_verdict(judge_client, ready_trial)
    responses += [
        post_verdict(judge_client, ready_trial, chosen="B"),  # double submit
        judge_client.get(reverse("judging:trial", args=[ready_trial.pk])),  # after judging
        judge_client.get(reverse("judging:queue")),
    ]
    for response in responses:
        assert_blind(response, ready_trial)
    page = responses[3].content.decode()
    assert ready_trial.question.text.split(":")[0] in page
    assert ready_trial.answer_text("A") in page and ready_trial.answer_text("B") in page
    assert "Argument of debater A in round 2." in page


def test_viewing_the_trial_page_starts_nothing_and_start_is_a_post(judge_client, ready_trial):
    url = reverse("judging:trial", args=[ready_trial.pk])
    page = judge_client.get(url)
    body = page.content.decode()
    assert page.status_code == 200 and 'id="start"' in body and 'method="post"' in body
    # Before Start: the question, never the transcript; nothing recorded.
    assert ready_trial.question.text.split(":")[0] in body and "Argument of debater A" not in body
    assert Trial.objects.get(pk=ready_trial.pk).opened_at is None
    assert judge_client.get(reverse("judging:start", args=[ready_trial.pk])).status_code == 405
    opened = open_trial(judge_client, ready_trial).content.decode()
    assert "Argument of debater A in round 2." in opened
    assert Trial.objects.get(pk=ready_trial.pk).opened_at is not None


def test_a_verdict_is_recorded_with_time_and_the_judge_moves_to_the_next_trial(
    judge_client, ready_trial, judge, server_clock
):
    open_trial(judge_client, ready_trial)
    beat = judge_client.post(reverse("judging:beat", args=[ready_trial.pk]), {"page": "p1", "seq": "1", "fresh": "1"})
    assert beat.status_code == 204
    server_clock.advance(10)
    # A browser's own figure is never read: neither a page from before heartbeats (12.5) nor a forged one.
    response = post_verdict(judge_client, ready_trial, chosen="B", probability="0.9", active_seconds="1e308")
    assert response.status_code == 302 and response.url == reverse("judging:next")
    verdict = Verdict.objects.get(trial=ready_trial)
    assert (verdict.chosen, verdict.probability, verdict.judge) == ("B", 0.9, judge)
    assert verdict.correct == (ready_trial.honest_side == "B")
    assert verdict.seconds_on_page == 10 and verdict.active_seconds == 10  # the submission is the last beat
    assert verdict.active_time_source == "server"
    assert Trial.objects.get(pk=ready_trial.pk).status == Trial.Status.JUDGED


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"probability": "1.5"}, "between 0 and 1"),
        ({"probability": "-0.2"}, "between 0 and 1"),
        ({"probability": "nan"}, "between 0 and 1"),
        ({"probability": "abc"}, "a number between 0 and 1"),
        ({"probability": "0.3"}, "at least 0.5"),
        ({"chosen": ""}, "choose answer A or answer B"),
        ({"rationale": "   "}, "short rationale"),
    ],
)
def test_an_invalid_verdict_is_refused_and_changes_nothing(judge_client, ready_trial, overrides, message):
    response = post_verdict(judge_client, ready_trial, **overrides)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Verdict.objects.exists()
    assert Trial.objects.get(pk=ready_trial.pk).status == Trial.Status.READY


def test_a_second_verdict_is_refused_and_the_first_is_kept(judge_client, ready_trial):
    open_trial(judge_client, ready_trial)
    post_verdict(judge_client, ready_trial, chosen="A", probability="0.7")
    response = post_verdict(judge_client, ready_trial, chosen="B", probability="0.99")
    assert response.status_code == 409
    assert "already given a verdict" in response.content.decode()
    verdict = Verdict.objects.get(trial=ready_trial)
    assert (verdict.chosen, verdict.probability) == ("A", 0.7)


def test_another_judges_trial_is_not_found_and_cannot_be_judged(client, other_judge, ready_trial):
    client.force_login(other_judge)
    assert client.get(reverse("judging:trial", args=[ready_trial.pk])).status_code == 404
    assert post_verdict(client, ready_trial).status_code == 404
    assert not Verdict.objects.exists()


def test_a_trial_still_being_generated_is_not_shown(judge_client, ready_trial):
    other = Trial.objects.filter(experiment=ready_trial.experiment).exclude(pk=ready_trial.pk).first()
    assert other.status == Trial.Status.GENERATING
    assert judge_client.get(reverse("judging:trial", args=[other.pk])).status_code == 404
    assert post_verdict(judge_client, other).status_code == 404
    queue = json.loads(judge_client.get(reverse("judging:queue_json")).content)
    assert queue["ready"] == [ready_trial.pk] and queue["progress"]["preparing"] == 3


def test_pages_need_a_login(client, ready_trial):
    response = client.get(reverse("judging:trial", args=[ready_trial.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert client.post(verdict_url(ready_trial), {"chosen": "A"}).status_code == 302
    assert not Verdict.objects.exists()


def test_model_output_is_escaped(judge_client, ready_trial):
    turn = ready_trial.turns.first()
    turn.text = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    turn.save()
    body = open_trial(judge_client, ready_trial).content.decode()
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


# The most database queries each judge endpoint may make (session, user, the trial, its turns, progress):
# a live page polls every few seconds per judge, so each query is paid thousands of times a minute. The queue page
# (opened once per trial, not polled) also reads the judge's invite seat, for a crowd participant's completion code,
# and its trials' expected minutes (judging.orientation: one query whatever the queue's length). A live poll first
# reads the trial's tag (judging.live_tag): answered 304 after it when the page shows the same, else it renders.
QUERY_BUDGET = {"queue": 7, "queue_json": 4, "trial": 5, "trial_state": 4, "trial_live": 5}
LIVE_POLL_UNCHANGED_BUDGET = 3  # session, user, the tag


@pytest.mark.parametrize("name", list(QUERY_BUDGET))
def test_each_judge_endpoint_stays_within_its_query_budget(
    judge_client, make_model_config, make_experiment, django_assert_max_num_queries, name
):
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), mode="live", rounds=3, num_questions=6)
    experiment_launch(experiment=experiment)
    trial = Trial.objects.filter(experiment=experiment).order_by("queue_position").first()
    open_trial(judge_client, trial)
    trial.turns.update(status="done", text='An argument with a "quoted passage".')
    url = reverse(f"judging:{name}", args=[] if name.startswith("queue") else [trial.pk])
    with django_assert_max_num_queries(QUERY_BUDGET[name]):
        response = judge_client.get(url)
    assert response.status_code == 200


# The most queries each of a judge's actions on a live trial may make, session and user included: the trial locked
# with its experiment and its debaters' configurations, its turns read once, what the action writes, and for a move
# the partials rendered. Starting a trial also locks the judge's queue and checks it is their next; a move or a start
# that makes turns looks up their generation queue. (PostgreSQL makes one more than SQLite: the experiment's row
# locked for share.)
ACTION_QUERY_BUDGET = {"start": 13, "beat": 8, "beat on": 9, "continue": 10, "end": 10, "verdict": 12}


def test_each_judge_action_on_a_live_trial_stays_within_its_query_budget(
    judge_client, make_model_config, make_experiment, django_assert_max_num_queries
):
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), mode="live", rounds=3, min_rounds=1, num_questions=2)
    experiment_launch(experiment=experiment)
    trial = Trial.objects.filter(experiment=experiment).order_by("queue_position").first()
    judge_client.get(reverse("judging:trial", args=[trial.pk]))  # the page first, as a judge opens it
    url = lambda name: reverse(f"judging:{name}", args=[trial.pk])  # noqa: E731
    live_move_url = reverse("judging:live_move", args=[trial.pk])

    def done_speaking():
        trial.turns.update(status="done", text='An argument with a "quoted passage".')

    actions = {
        "start": lambda: judge_client.post(url("start")),
        "beat": lambda: judge_client.post(url("beat"), {"page": "a" * 16, "seq": "1", "fresh": "1"}),
        # The next beat of the page adds the time since to the round (it reads the turns it replays).
        "beat on": lambda: judge_client.post(url("beat"), {"page": "a" * 16, "seq": "2", "fresh": "0"}),
        "continue": lambda: judge_client.post(live_move_url, {"action": "continue"}, HTTP_HX_REQUEST="true"),
        "end": lambda: judge_client.post(live_move_url, {"action": "end"}, HTTP_HX_REQUEST="true"),
        "verdict": lambda: post_verdict(judge_client, trial),
    }
    answered = {"start": 302, "beat": 204, "beat on": 204, "continue": 200, "end": 200, "verdict": 302}
    for name, action in actions.items():
        if name in ("continue", "end"):
            done_speaking()
        with django_assert_max_num_queries(ACTION_QUERY_BUDGET[name]):
            response = action()
        assert response.status_code == answered[name], (name, response.content[:300])
    trial.refresh_from_db()
    assert trial.status == Trial.Status.JUDGED and trial.turns.filter(round=2).count() == 2


def test_a_live_poll_of_an_unchanged_page_reads_only_its_tag(
    judge_client, make_model_config, make_experiment, django_assert_max_num_queries
):
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), mode="live", rounds=3)
    experiment_launch(experiment=experiment)
    trial = Trial.objects.filter(experiment=experiment).order_by("queue_position").first()
    open_trial(judge_client, trial)
    url = reverse("judging:trial_live", args=[trial.pk])
    tag = judge_client.get(url, HTTP_HX_REQUEST="true")["HX-PTag"]
    with django_assert_max_num_queries(LIVE_POLL_UNCHANGED_BUDGET):
        response = judge_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_PTAG=tag)
    assert response.status_code == 304
