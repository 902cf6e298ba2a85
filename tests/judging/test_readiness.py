"""When a judge's next trial being prepared should be ready (judging.readiness): the estimate from the pace, its
words, what it counts, the queue page and its JSON showing it, and their query budgets."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from datetime import timezone as tz
from pathlib import Path

import pytest
from django.urls import reverse

from judging import readiness
from judging.models import Trial, Turn
from judging.readiness import NO_ESTIMATE, estimate, judge_readiness
from judging.services import experiment_launch

from .test_judge_pages import QUERY_BUDGET

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=tz.utc)


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def test_too_few_turns_done_give_no_estimate():
    for finished in (0, 1, 2):
        r = estimate(left=10, written=0, finished=finished, first_finished=NOW, longest_seconds=5, now=NOW)
        assert r.eta is None and r.text is None and r.line("the next one") == NO_ESTIMATE


def test_the_pace_is_the_turns_done_over_the_time_since_the_first_was_started():
    # 6 turns done, the first 5 min ago after a batch of at most 60 s: 6 turns in 6 min, 60 s each.
    r = estimate(left=4, written=2, finished=6, first_finished=NOW - timedelta(minutes=5), longest_seconds=60, now=NOW)
    assert r.seconds_per_turn == pytest.approx(60)
    assert r.eta == timedelta(minutes=4)
    assert r.line("the next one") == "the next one ready in about 4 min"


def test_the_pace_is_measured_over_the_window_at_most():
    first = NOW - timedelta(minutes=9)  # started (less 5 min of batch) before the window began
    r = estimate(left=1, written=0, finished=20, first_finished=first, longest_seconds=300, now=NOW)
    assert r.seconds_per_turn == pytest.approx(readiness.WINDOW.total_seconds() / 20)


def test_the_wait_is_said_in_readable_units():
    def wait(left):
        return estimate(
            left=left, written=0, finished=10, first_finished=NOW - timedelta(minutes=10), longest_seconds=0, now=NOW
        ).text  # 60 s per turn

    assert wait(0) == wait(0.5) == "less than a minute"
    assert wait(1) == "about 1 min"
    assert wait(150) == "about 2.5 h"
    assert wait(60 * 24 * 3) == "about 3 days"


def test_a_clock_behind_the_turns_gives_no_estimate():
    r = estimate(left=3, written=0, finished=5, first_finished=NOW + timedelta(minutes=1), longest_seconds=0, now=NOW)
    assert r.text is None


def _finish(turns, at, wall=10.0):
    Turn.objects.filter(pk__in=[t.pk for t in turns]).update(status="done", finished_at=at, wall_seconds=wall)


def test_what_is_counted_before_the_judges_next_trial(make_model_config, make_experiment, judge, other_judge):
    model = make_model_config("m")
    other_queue = make_model_config("n", queue="elsewhere")
    experiment = make_experiment(model, judges=[judge, other_judge], num_questions=4)  # 2 rounds, 4 turns a trial
    experiment_launch(experiment=experiment)
    elsewhere = make_experiment(other_queue, name="another queue", num_questions=2, judges=[other_judge])
    experiment_launch(experiment=elsewhere)
    trials = list(experiment.trials.order_by("id"))
    mine = [t for t in trials if t.judge == judge]
    target = mine[0]
    before = [t for t in trials if t.pk < target.pk]
    after = [t for t in trials if t.pk > target.pk]
    assert after, "the plan gives the judge a later trial"
    # Turns done in the window: 3 of the target's (pace and written), one of a trial after it (pace only).
    _finish(list(target.turns.order_by("index"))[:3], NOW - timedelta(minutes=2))
    _finish(list(after[-1].turns.all())[:1], NOW - timedelta(minutes=1))
    # Another queue's turns, done in the window, count neither way.
    _finish(list(Turn.objects.filter(trial__experiment=elsewhere))[:5], NOW - timedelta(minutes=1))
    r = judge_readiness(judge, NOW)
    per_trial = target.turns.count()
    assert r.left == per_trial * (len(before) + 1) - 3
    assert r.written == 3
    assert r.finished == 4
    # 4 turns since the first was started (2 min ago less its 10 s): 130 s / 4.
    assert r.seconds_per_turn == pytest.approx(130 / 4)


def test_a_judge_with_nothing_being_prepared_gets_no_estimate(make_model_config, make_experiment, judge):
    experiment = make_experiment(make_model_config("m"), mode="live", num_questions=2)  # live: ready at once
    experiment_launch(experiment=experiment)
    r = judge_readiness(judge, NOW)
    assert (r.left, r.written, r.text) == (0, 0, None)


def test_live_trials_being_judged_are_written_first(make_model_config, make_experiment, judge, other_judge):
    from judging.services import trial_open

    model = make_model_config("m")
    live = make_experiment(model, name="live", mode="live", num_questions=2, judges=[other_judge])
    experiment_launch(experiment=live)
    pregenerated = make_experiment(model, name="pre", num_questions=2)
    experiment_launch(experiment=pregenerated)
    before = judge_readiness(judge, NOW).left
    trial_open(trial=live.trials.first())  # its first round's turns are now pending
    opened = Turn.objects.filter(trial__experiment=live, status="pending").count()
    assert opened and judge_readiness(judge, NOW).left == before + opened


def _queue_with_pace(make_model_config, make_experiment, server_clock):
    experiment = make_experiment(make_model_config("m"), num_questions=4)
    experiment_launch(experiment=experiment)
    first = experiment.trials.order_by("id").first()
    # 3 turns done a minute ago in 20 s batches: 3 turns in 80 s; the first trial's last turn left.
    _finish(list(first.turns.order_by("index"))[:3], server_clock.now - timedelta(minutes=1), wall=20)
    return experiment


def test_the_queue_says_when_the_next_trial_should_be_ready(
    judge_client, make_model_config, make_experiment, server_clock
):
    _queue_with_pace(make_model_config, make_experiment, server_clock)
    body = judge_client.get(reverse("judging:queue")).content.decode()
    span = re.search(r'<span id="readiness">(.*?)</span>', body).group(1)
    assert span == "the next one ready in less than a minute"  # 1 turn at ~27 s a turn
    queue = json.loads(judge_client.get(reverse("judging:queue_json")).content)
    assert queue["readiness"] == span
    server_clock.advance(11 * 60)  # the window has passed them: no pace any more
    assert json.loads(judge_client.get(reverse("judging:queue_json")).content)["readiness"] == NO_ESTIMATE


def test_the_queue_says_when_there_is_no_estimate_yet_and_the_page_updates_it_as_text(
    judge_client, make_model_config, make_experiment
):
    experiment_launch(experiment=make_experiment(make_model_config("m"), num_questions=2))
    body = judge_client.get(reverse("judging:queue")).content.decode()
    # The template escapes it like any text (NO_ESTIMATE has no character that changes).
    assert f'being prepared (<span id="readiness">{NO_ESTIMATE}</span>)' in body
    # queue.js writes the JSON's words as text, never as markup.
    script = (Path(__file__).resolve().parents[2] / "judging/static/judging/queue.js").read_text()
    assert "estimate.textContent = queue.readiness" in script and "innerHTML" not in script


def test_a_queue_with_nothing_being_prepared_says_nothing_of_it(
    judge_client, make_model_config, make_experiment, django_assert_num_queries
):
    experiment_launch(experiment=make_experiment(make_model_config("m"), mode="live", num_questions=1))
    body = judge_client.get(reverse("judging:queue")).content.decode()
    assert 'id="readiness"' not in body
    assert json.loads(judge_client.get(reverse("judging:queue_json")).content)["readiness"] == ""


@pytest.mark.parametrize("name", ["queue", "queue_json"])
def test_the_estimate_costs_the_queue_one_query(
    judge_client, make_model_config, make_experiment, server_clock, django_assert_max_num_queries, name
):
    # With trials being prepared: the budget of the queue's endpoints (tests/judging/test_judge_pages.py) and the
    # estimate's one aggregate (judging.readiness.judge_readiness), whatever the numbers of trials and turns.
    _queue_with_pace(make_model_config, make_experiment, server_clock)
    with django_assert_max_num_queries(QUERY_BUDGET[name] + 1):
        response = judge_client.get(reverse(f"judging:{name}"))
    assert response.status_code == 200 and Trial.objects.filter(status="generating").exists()
