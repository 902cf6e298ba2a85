"""Closing an experiment (services.experiment_close, the admin action): no more work is opened, judged, skipped,
moved or generated; what was judged stays in the analysis and the exports."""

import csv
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEvent
from generation.selection import ready_turns, trials_with_pending_turns
from generation.tasks import reconcile_generation
from judging import services
from judging.models import Experiment, Trial, Turn, Verdict
from tests.judging.pages import open_trial


def close(experiment):
    return services.experiment_close(experiment=experiment)


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def test_the_admin_action_closes_once_and_records_it(admin_client, ready_trial, make_model_config, make_experiment):
    experiment = ready_trial.experiment
    draft = make_experiment(make_model_config("m"), name="Still a draft")
    response = admin_client.post(
        "/admin/judging/experiment/", {"action": "close", "_selected_action": [experiment.pk, draft.pk]}, follow=True
    )
    page = response.content.decode()
    assert "Test experiment: closed; 4 trial(s) left unjudged stay in the data as attrition." in page
    assert "Still a draft: experiment &#x27;Still a draft&#x27; has not been launched: there is nothing to close" in (
        page
    )
    experiment.refresh_from_db()
    draft.refresh_from_db()
    assert experiment.status == Experiment.Status.CLOSED and experiment.closed_at is not None
    assert draft.status == Experiment.Status.DRAFT and draft.closed_at is None
    event = AuditEvent.objects.get(detail__action="close")
    assert event.kind == AuditEvent.Kind.ADMIN_ACTION and event.actor.is_superuser
    assert event.detail == {"action": "close", "experiment": experiment.pk, "unjudged": 4}
    # Closing again is refused, changes nothing and records nothing.
    closed_at = experiment.closed_at
    again = admin_client.post(
        "/admin/judging/experiment/", {"action": "close", "_selected_action": [experiment.pk]}, follow=True
    )
    assert "was closed on" in again.content.decode()
    experiment.refresh_from_db()
    assert experiment.closed_at == closed_at and AuditEvent.objects.filter(detail__action="close").count() == 1
    assert "Closed" in admin_client.get("/admin/judging/experiment/").content.decode()


def test_a_closed_experiment_takes_no_start_verdict_move_skip_or_beat(judge_client, ready_trial, judge, plan_first):
    experiment = ready_trial.experiment
    opened = ready_trial
    open_trial(judge_client, opened)
    following = experiment.trials.exclude(pk=opened.pk).order_by("queue_position").first()
    Trial.objects.filter(pk=following.pk).update(status=Trial.Status.READY)  # its debate written
    assert close(experiment) == 4
    # The queue no longer offers its trials, nor counts them as to come; starting the next one says why it cannot be.
    queue = judge_client.get(reverse("judging:queue")).content.decode()
    assert "Start next trial" not in queue and "being prepared" not in queue and "0 of 0 judged" in queue
    response = judge_client.post(reverse("judging:start", args=[following.pk]))
    assert response.status_code == 409 and "has been closed by the researchers" in response.content.decode()
    assert Trial.objects.get(pk=following.pk).opened_at is None
    # The trial in progress: its page says it is closed and offers no verdict form; a verdict is refused.
    page = judge_client.get(reverse("judging:trial", args=[opened.pk])).content.decode()
    assert "has been closed by the researchers" in page and 'id="verdict-form"' not in page
    verdict = judge_client.post(
        reverse("judging:verdict", args=[opened.pk]), {"chosen": "A", "probability": "0.8", "rationale": "late"}
    )
    assert verdict.status_code == 409 and "has been closed by the researchers" in verdict.content.decode()
    assert not Verdict.objects.exists()
    skip = judge_client.post(reverse("judging:skip", args=[opened.pk]), {"reason": "too late"})
    assert skip.status_code == 409 and Trial.objects.get(pk=opened.pk).status == Trial.Status.READY
    beat = judge_client.post(reverse("judging:beat", args=[opened.pk]), {"page": "p1", "seq": "1", "fresh": "1"})
    assert beat.status_code == 409 and "closed" in beat.json()["error"]


def test_a_closed_live_experiment_takes_no_moves_and_generates_nothing(live_experiment, judge):
    trial = live_experiment.trials.order_by("queue_position").first()
    services.trial_open(trial=trial)  # round 1 is pending
    assert trials_with_pending_turns(live_experiment.pk).exists()
    close(live_experiment)
    assert not trials_with_pending_turns(live_experiment.pk).exists() and ready_turns(live_experiment.pk) == []
    Turn.objects.filter(trial=trial).update(status=Turn.Status.DONE, text="Said.")
    with pytest.raises(services.MoveRefused, match="has been closed") as refused:
        services.live_move(trial_id=trial.pk, judge=judge, action="continue")
    assert refused.value.status == 409 and trial.turns.count() == 2


def test_reconcile_and_repairs_leave_a_closed_experiment_alone(make_model_config, make_experiment, eager_celery):
    experiment = make_experiment(make_model_config("m"))
    services.experiment_launch(experiment=experiment)
    failed = experiment.trials.order_by("pk").first()
    Turn.objects.filter(trial=failed).update(status=Turn.Status.FAILED)
    Trial.objects.filter(pk=failed.pk).update(status=Trial.Status.FAILED)
    close(experiment)
    assert reconcile_generation() == 0  # its pending turns are not sent to the workers again
    assert services.failed_turns_retry(experiment_id=experiment.pk) == 0
    assert Turn.objects.filter(trial=failed, status=Turn.Status.FAILED).count() == 4
    done = services.failed_trials_replace(experiment_id=experiment.pk)
    assert done.refused == ["the experiment is closed: it takes no new trials"]
    assert experiment.trials.count() == 4


def test_what_was_judged_before_the_close_is_exported_and_counted(judged_trial, admin_client):
    from results.measure import verdict_records

    experiment = judged_trial.experiment
    close(experiment)
    # The analysis reads it as before.
    assert [r["correct"] for r in verdict_records([experiment.pk])] == [True]
    assert admin_client.get(reverse("results:analysis") + f"?experiment={experiment.pk}").status_code == 200
    out = io.StringIO()
    call_command("export_results", str(experiment.pk), stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 4 and [r["verdict"] for r in rows if r["trial_id"] == str(judged_trial.pk)] == [
        judged_trial.honest_side
    ]
    out = io.StringIO()
    call_command("export_results", str(experiment.pk), "--table", "experiments", stdout=out)
    assert next(csv.DictReader(io.StringIO(out.getvalue())))["status"] == "closed"


def test_a_crowd_judge_of_a_closed_experiment_is_done(judge, ready_trial):
    from judging import recruitment

    experiment = ready_trial.experiment
    invite = _invite_with_seat_of(experiment, judge)
    assert recruitment.completion_of(judge).done is False
    close(experiment)
    completion = recruitment.completion_of(judge)
    assert completion.started and completion.done and completion.code == invite.completion_code


def _invite_with_seat_of(experiment, judge):
    from django.utils import timezone

    from judging.models import Invite, Seat

    invite = Invite.objects.create(
        experiment=experiment, max_uses=1, expires_at=timezone.now(), completion_code="DONE-123"
    )
    Seat.objects.create(invite=invite, experiment=experiment, number=1, judge=judge, taken_at=timezone.now())
    return invite
