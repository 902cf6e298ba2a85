"""The researchers' progress dashboard (judging/dashboard.py, judging/dashboard_admin.py; docs/dashboard.md)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from judging import dashboard
from judging.models import Experiment, Invite, Seat, Trial, Turn, Verdict
from judging.services import experiment_launch, trial_open, trial_skip, verdict_submit

pytestmark = pytest.mark.django_db

OVERVIEW = "admin:judging_experiment_dashboard"
OVERVIEW_POLL = "admin:judging_experiment_dashboard_poll"
DETAIL = "admin:judging_experiment_dashboard_detail"
DETAIL_POLL = "admin:judging_experiment_dashboard_detail_poll"


def make_ready(trial):
    """A pre-generated trial whose debate is written (its turns done), ready to judge."""
    trial.turns.update(status=Turn.Status.DONE, text="An argument.", finished_at=timezone.now())
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.READY)
    trial.refresh_from_db()


def judge_it(trial, judge):
    make_ready(trial)
    trial_open(trial=trial)
    verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability=0.7, rationale="A quoted the text.")


@pytest.fixture
def built(make_model_config, make_experiment, judge, other_judge, plan_first):
    """A launched pre-generated experiment (10 questions, 2 rounds: 4 turns a trial) with trials in every status
    and role, and turns in every status. Returns it with the counts the dashboard should show."""
    experiment = make_experiment(make_model_config("m"), judges=[judge, other_judge], num_questions=10)
    experiment_launch(experiment=experiment)
    mine = list(Trial.objects.filter(experiment=experiment, judge=judge).order_by("queue_position"))
    theirs = list(Trial.objects.filter(experiment=experiment, judge=other_judge).order_by("queue_position"))
    assert len(mine) == len(theirs) == 5
    judged, skipped, opened, failed, withdrawn = mine
    plan_first(judged, skipped, opened)
    judge_it(judged, judge)
    make_ready(skipped)
    trial_skip(trial_id=skipped.pk, judge=judge, reason="The question is broken.")
    make_ready(opened)
    trial_open(trial=opened)
    Trial.objects.filter(pk=failed.pk).update(status=Trial.Status.FAILED)
    Trial.objects.filter(pk=withdrawn.pk).update(status=Trial.Status.WITHDRAWN)
    # The other judge: a practice trial judged, one practice and one attention check not opened, one study trial
    # ready and one still generating with a turn being written and one failed.
    practice, practice_open, attention, ready, generating = theirs
    plan_first(practice, practice_open, attention, ready)
    Trial.objects.filter(pk__in=[practice.pk, practice_open.pk]).update(role=Trial.Role.PRACTICE)
    Trial.objects.filter(pk=attention.pk).update(role=Trial.Role.ATTENTION)
    judge_it(practice, other_judge)
    for trial in (practice_open, attention, ready):
        make_ready(trial)
    first, second, *_ = generating.turns.order_by("index")
    Turn.objects.filter(pk=first.pk).update(status=Turn.Status.RUNNING, claim_token="t", claimed_at=timezone.now())
    Turn.objects.filter(pk=second.pk).update(status=Turn.Status.FAILED, error="out of memory")
    experiment.refresh_from_db()
    return experiment


def test_the_figures_of_a_built_experiment(built):
    (p,) = dashboard.experiments_progress(now=timezone.now(), experiment_id=built.pk)
    # Study trials: 5 of the first judge's, 2 of the other's (ready, generating).
    assert (p.study, p.judged, p.in_progress, p.skipped, p.failed, p.withdrawn) == (7, 1, 1, 1, 1, 1)
    assert (p.waiting, p.generating) == (1, 1)
    assert (p.practice, p.practice_judged, p.attention, p.attention_judged) == (2, 1, 1, 0)
    # Turns: 10 trials × 4; done are those of the 7 trials made ready (judged, skipped, opened, 2 practice, attention,
    # ready); the failed and withdrawn trials' 8 and the generating trial's other 2 are pending.
    assert (p.turns_done, p.turns_running, p.turns_failed, p.turns_pending) == (28, 1, 1, 10)
    assert p.turns_total == 40
    assert (p.live_trials, p.live_not_started, p.judges) == (0, 0, 2)
    # Still to judge (every role): the opened one, the ready one, the generating one, a practice and an attention.
    assert p.remaining == 5
    assert p.mode == "pre-generated" and p.eta.state == "no data" and p.eta.verdicts == 2


def test_the_pages_show_them_with_the_links(admin_client, built, judge):
    page = admin_client.get(reverse(OVERVIEW)).content.decode()
    row = page[page.index(f'id="experiment-{built.pk}"') :]
    row = row[: row.index("</tr>")]
    for cell in ("1 / 7", "28 of 40 written", "1 being written · 10 waiting", "1 failed", "1 / 2", "attention 0 / 1"):
        assert cell in row, cell
    for link in (
        f"/results/analysis/?experiment={built.pk}",
        f"/results/export/?experiment={built.pk}&amp;table=trials&amp;format=csv",
        f"/results/export/?experiment={built.pk}&amp;table=turns&amp;format=csv",
        reverse("admin:judging_pay_report") + f"?experiment={built.pk}",
        reverse("results:judge_quality_csv") + f"?experiment={built.pk}",
        reverse(DETAIL, args=[built.pk]),
    ):
        assert f'href="{link}"' in row, link
    assert f'hx-get="{reverse(OVERVIEW_POLL)}"' in page and "htmx-4" in page
    assert "{#" not in page and "{%" not in page  # no template comment or tag shown as text
    # The links lead somewhere: the trials CSV has the experiment's 7 study trials (and a header), the practice
    # CSV its 2 practice trials.
    for role, rows in (("", 7), ("&amp;role=practice", 2), ("&amp;role=attention", 1)):
        link = f"/results/export/?experiment={built.pk}&amp;table=trials&amp;format=csv{role}"
        assert f'href="{link}"' in row, link
        trials_csv = b"".join(admin_client.get(link.replace("&amp;", "&")))
        assert len(trials_csv.decode().strip().splitlines()) == rows + 1

    detail = admin_client.get(reverse(DETAIL, args=[built.pk])).content.decode()
    judges = detail[detail.index('id="judges"') :]
    rows = judges.split("<tr>")[2:]  # after the header's
    assert len(rows) == 2
    # The most recently active first: the other judge judged their practice trial last.
    assert "otto" in rows[0] and "judy" in rows[1]
    judy = [cell.split(">", 1)[1] for cell in rows[1].split("</td>")[:11]]
    # judged / study, practice, attention, in progress, not opened, awaiting turns, skipped, failed, withdrawn
    failed = '<span class="warn">1</span>'
    assert [c.strip() for c in judy[2:11]] == ["1 / 5", "0", "0", "1", "0", "0", "1", failed, "1"]
    assert "just now" in rows[1]


def test_the_poll_returns_the_body_alone(admin_client, built):
    poll = admin_client.get(reverse(OVERVIEW_POLL))
    assert poll.status_code == 200
    body = poll.content.decode()
    assert f'id="experiment-{built.pk}"' in body and "<html" not in body and "Updated" in body
    detail = admin_client.get(reverse(DETAIL_POLL, args=[built.pk])).content.decode()
    assert 'id="judges"' in detail and "<html" not in detail
    assert admin_client.get(reverse(DETAIL_POLL, args=[built.pk + 1000])).status_code == 404
    assert admin_client.get(reverse(DETAIL, args=[built.pk + 1000])).status_code == 404


def test_a_live_experiment_says_its_turns_are_written_as_judges_go(admin_client, make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), mode="live", num_questions=3)
    experiment_launch(experiment=experiment)
    (p,) = dashboard.experiments_progress(now=timezone.now(), experiment_id=experiment.pk)
    assert (p.turns_total, p.live_trials, p.live_not_started, p.waiting) == (0, 3, 3, 3)
    page = admin_client.get(reverse(OVERVIEW)).content.decode()
    assert "0 / 0" not in page
    assert "+ 3 live trials not started: turns written once the judge opens them" in page
    # A judge opens one: its first round's turns exist now, pending; two trials are still not started.
    trial_open(trial=Trial.objects.queue_of(experiment.judges.get()).first())
    (p,) = dashboard.experiments_progress(now=timezone.now(), experiment_id=experiment.pk)
    assert (p.turns_pending, p.turns_total, p.live_not_started, p.in_progress) == (2, 2, 2, 1)
    assert "0 of 2 written" in admin_client.get(reverse(OVERVIEW_POLL)).content.decode()


def test_the_dashboard_is_for_researchers_only(client, judge, django_user_model, built):
    client.force_login(judge)
    page = client.get(reverse(OVERVIEW))
    assert page.status_code == 302 and reverse("admin:login") in page["Location"]
    assert client.get(reverse(DETAIL, args=[built.pk])).status_code == 302
    # A poll never answers with the login page (htmx would swap it into the dashboard): a plain 403.
    assert client.get(reverse(OVERVIEW_POLL)).status_code == 403
    assert client.get(reverse(DETAIL_POLL, args=[built.pk])).status_code == 403
    client.logout()
    assert client.get(reverse(OVERVIEW_POLL)).status_code == 403
    # Staff without the permission to view experiments: refused too; with it, shown.
    staff = django_user_model.objects.create_user(username="assistant", password="x-pass-123456", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(OVERVIEW)).status_code == 403
    assert client.get(reverse(OVERVIEW_POLL)).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_experiment"))
    assert client.get(reverse(OVERVIEW)).status_code == 200
    assert client.get(reverse(DETAIL_POLL, args=[built.pk])).status_code == 200


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_a_fixed_query_budget_whatever_the_size(
    admin_client, built, make_model_config, make_experiment, django_user_model, django_assert_max_num_queries
):
    urls = [reverse(OVERVIEW), reverse(OVERVIEW_POLL), reverse(DETAIL, args=[built.pk])]
    urls.append(reverse(DETAIL_POLL, args=[built.pk]))
    before = [_queries(admin_client, url) for url in urls]
    # More experiments, trials, turns, judges and invite seats: the same number of queries.
    more = [django_user_model.objects.create_user(username=f"j{i}", password="pass-123456-x") for i in range(6)]
    for i in range(3):
        experiment = make_experiment(make_model_config(f"m{i}"), judges=more, name=f"more {i}", num_questions=12)
        experiment_launch(experiment=experiment)
    invite = Invite.objects.create(experiment=built, max_uses=2, expires_at=timezone.now() + timedelta(days=1))
    Seat.objects.create(invite=invite, experiment=built, number=1, judge=more[0], taken_at=timezone.now())
    Trial.objects.filter(experiment=built, status=Trial.Status.WITHDRAWN).update(judge=more[0])  # a third judge
    after = [_queries(admin_client, url) for url in urls]
    assert after == before
    # Session and user, then the experiments, their trials, turns and seats (and the judges on a detail page).
    with django_assert_max_num_queries(6):
        admin_client.get(reverse(OVERVIEW_POLL))
    with django_assert_max_num_queries(7):
        admin_client.get(reverse(DETAIL_POLL, args=[built.pk]))
    with django_assert_max_num_queries(6):
        admin_client.get(reverse(OVERVIEW))
    with django_assert_max_num_queries(7):
        admin_client.get(reverse(DETAIL, args=[built.pk]))


def test_names_and_participant_ids_are_escaped(admin_client, make_model_config, make_experiment, judge):
    experiment = make_experiment(make_model_config("m"), name="<script>alert('name')</script>")
    invite = Invite.objects.create(experiment=experiment, max_uses=1, expires_at=timezone.now() + timedelta(days=1))
    Seat.objects.create(
        invite=invite,
        experiment=experiment,
        number=1,
        judge=judge,
        participant_id="<img src=x onerror=alert(1)>",
        taken_at=timezone.now(),
    )
    experiment_launch(experiment=experiment)
    for url in (reverse(OVERVIEW), reverse(OVERVIEW_POLL), reverse(DETAIL, args=[experiment.pk])):
        page = admin_client.get(url).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page
    page = admin_client.get(reverse(DETAIL_POLL, args=[experiment.pk])).content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page


def test_a_projection_needs_enough_verdicts():
    assert dashboard.projection(remaining=0, verdicts=0, hours=6).text == "nothing left to judge"
    few = dashboard.projection(remaining=40, verdicts=4, hours=6)
    assert few.state == "no data" and few.low is None
    assert few.text == "not enough data (4 verdicts in the last 6 h; a projection needs 5)"
    assert dashboard.projection(remaining=40, verdicts=9, hours=0).state == "no data"


def test_a_projection_of_one_trial_is_worded_in_the_singular():
    assert dashboard.projection(remaining=1, verdicts=5, hours=1).basis.startswith("1 trial left at the pace")


def test_a_projection_is_the_range_of_the_pace():
    p = dashboard.projection(remaining=20, verdicts=10, hours=2)
    # Exact 95% Poisson interval of 10 events: 4.795 to 18.39 (Garwood); 20 trials at 10 verdicts in 2 h is 4 h.
    assert p.low / timedelta(hours=1) == pytest.approx(20 * 2 / 18.390, rel=1e-3)
    assert p.high / timedelta(hours=1) == pytest.approx(20 * 2 / 4.7954, rel=1e-3)
    assert p.low < timedelta(hours=4) < p.high
    assert p.text == "2.2 h to 8.3 h"
    assert p.basis.startswith("20 trials left at the pace of the last 2 h (since launch) (10 verdicts, 5.0 an hour")
    # More data at the same pace: a narrower range around the same point.
    q = dashboard.projection(remaining=20, verdicts=1000, hours=200)
    assert q.low < timedelta(hours=4) < q.high and (q.high - q.low) < (p.high - p.low) / 5
    assert math.isclose((q.low + q.high) / 2 / timedelta(hours=1), 4, rel_tol=0.02)


def test_the_eta_of_an_experiment_counts_the_verdicts_of_the_window(built, judge, django_user_model):
    """``now`` is passed in: verdicts older than the window do not count, and a young study's window is its age."""
    launched, User = built.launched_at, django_user_model
    Verdict.objects.all().update(created_at=launched + timedelta(minutes=30))
    # Seen 1 h after launch: 2 verdicts in that hour, not enough.
    (p,) = dashboard.experiments_progress(now=launched + timedelta(hours=1), experiment_id=built.pk)
    assert (p.eta.state, p.eta.verdicts, p.eta.hours) == ("no data", 2, 1)
    # Give 8 more verdicts, on practice trials of new judges (any role counts for the pace), 5 h after launch.
    trials = Trial.objects.filter(experiment=built, status=Trial.Status.GENERATING, role=Trial.Role.STUDY)
    assert trials.count() == 1
    generating = trials.get()
    new = [
        Verdict.objects.create(
            trial=Trial.objects.create(
                experiment=built,
                question=generating.question,
                judge=User.objects.create_user(username=f"v{i}"),
                honest_side="A",
                answer_a_index=0,
                answer_b_index=1,
                first_speaker="A",
                queue_position=0,
                status=Trial.Status.JUDGED,
                role=Trial.Role.PRACTICE,
            ),
            judge=judge,
            chosen="A",
            probability=0.6,
            rationale="r",
            seconds_on_page=10,
        ).pk
        for i in range(8)
    ]
    Verdict.objects.filter(pk__in=new).update(created_at=launched + timedelta(hours=5))
    (p,) = dashboard.experiments_progress(now=launched + timedelta(hours=5, minutes=30), experiment_id=built.pk)
    assert (p.eta.state, p.eta.verdicts, p.eta.hours, p.eta.remaining) == ("projected", 10, 5.5, 5)
    assert p.eta.low < timedelta(hours=5 * 5.5 / 10) < p.eta.high
    # Seen 7 h after the first two verdicts: they are out of the 6 h window; 8 verdicts in the last 6 h.
    (p,) = dashboard.experiments_progress(now=launched + timedelta(hours=6, minutes=31), experiment_id=built.pk)
    assert (p.eta.verdicts, p.eta.hours) == (8, 6)
    # Closed: no projection.
    Experiment.objects.filter(pk=built.pk).update(status=Experiment.Status.CLOSED)
    (p,) = dashboard.experiments_progress(now=launched + timedelta(hours=7), experiment_id=built.pk)
    assert p.eta.text == "closed"


def test_a_draft_is_listed_without_figures(admin_client, make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), name="Draft study")
    (p,) = dashboard.experiments_progress(now=timezone.now(), experiment_id=experiment.pk)
    assert p.eta.text == "not launched" and p.study == 0 and p.turns_total == 0
    detail = admin_client.get(reverse(DETAIL, args=[experiment.pk])).content.decode()
    assert "No trials yet: the launch plans each judge's trials." in detail


def test_the_experiment_list_and_the_admin_home_link_the_dashboard(admin_client):
    url = reverse(OVERVIEW)
    assert f'href="{url}"' in admin_client.get(reverse("admin:judging_experiment_changelist")).content.decode()
    assert f'href="{url}"' in admin_client.get(reverse("admin:index")).content.decode()
