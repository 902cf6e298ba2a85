"""The audit log: launches, admin actions and edits, exports (admin, URL, command) and every change of users,
groups and permissions are recorded with who and when; the admin shows it read-only and exports it as CSV."""

from __future__ import annotations

import base64
import csv
import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent, Kind
from judging.models import ModelConfig

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(django_user_model):
    return django_user_model.objects.create_superuser(username="rita", password="researcher-pass-1")


@pytest.fixture
def admin(researcher):
    client = Client()
    client.force_login(researcher)
    return client


def events(kind):
    return list(AuditEvent.objects.filter(kind=kind).order_by("id"))


def run_action(client, model: str, action: str, ids) -> object:
    return client.post(f"/admin/judging/{model}/", {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids]})


def test_a_launch_from_the_admin_is_recorded_with_who_and_what(admin, make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), name="Pilot")
    assert run_action(admin, "experiment", "launch", [experiment.pk]).status_code == 302
    (launch,) = events(Kind.LAUNCH)
    assert launch.actor_name == "rita" and launch.detail["experiment"] == experiment.pk
    assert "Launched “Pilot”" in launch.summary and f"{experiment.trials.count()} trials" in launch.summary
    assert launch.path == "/admin/judging/experiment/" and launch.address == "127.0.0.1"
    (action,) = events(Kind.ADMIN_ACTION)
    assert action.detail == {"action": "launch", "model": "judging.Experiment", "ids": [experiment.pk]}

    run_action(admin, "experiment", "retry_failed", [experiment.pk])  # every other action too
    assert [e.detail["action"] for e in events(Kind.ADMIN_ACTION)] == ["launch", "retry_failed"]


def test_admin_edits_of_experiments_and_configurations_are_recorded(admin, make_model_config):
    config = make_model_config("m")
    reply = admin.get(f"/admin/judging/modelconfig/{config.pk}/change/")
    form = reply.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data |= {"temperature": "0.5", "name": "renamed"}
    assert admin.post(f"/admin/judging/modelconfig/{config.pk}/change/", data).status_code == 302
    (edit,) = events(Kind.ADMIN_EDIT)
    assert edit.actor_name == "rita" and "Changed model configuration “renamed”" in edit.summary
    assert "Temperature" in edit.summary and edit.detail["model"] == "judging.ModelConfig"

    # Deleting several at once: the admin logs them in one insert without signals; the list picks them up.
    others = [make_model_config(f"other{i}") for i in range(2)]
    admin.post(
        "/admin/judging/modelconfig/",
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(c.pk) for c in others], "post": "yes"},
    )
    assert not ModelConfig.objects.filter(pk__in=[c.pk for c in others]).exists()
    assert admin.get("/admin/audit/auditevent/").status_code == 200
    deleted = [e.summary for e in events(Kind.ADMIN_EDIT) if e.summary.startswith("Deleted")]
    assert sorted(deleted) == sorted(f"Deleted model configuration “{c.name}”" for c in others)


def test_exports_are_recorded_from_the_admin_the_url_and_the_command(admin, researcher, ready_trial, tmp_path):
    experiment_id = ready_trial.experiment_id
    run_action(admin, "experiment", "export_trials_csv", [experiment_id])
    token = base64.b64encode(b"rita:researcher-pass-1").decode()
    Client().get(f"/results/export/?experiment={experiment_id}&table=turns", HTTP_AUTHORIZATION=f"Basic {token}")
    call_command("export_results", str(experiment_id), "--table", "verdicts", "-o", str(tmp_path / "v.csv"))
    recorded = [(e.actor_name, e.detail["table"], e.detail["experiments"]) for e in events(Kind.EXPORT)]
    assert recorded == [
        ("rita", "trials", [experiment_id]),
        ("rita", "turns", [experiment_id]),
        ("", "verdicts", [experiment_id]),
    ]
    assert not events(Kind.ADMIN_ACTION)  # an export action records the export, not twice


def test_user_group_and_permission_changes_are_recorded_by_any_path(admin, researcher, django_user_model):
    judge = django_user_model.objects.create_user(username="judy", password="judge-pass-123")
    judge.is_staff = True
    judge.set_password("new-pass-456")
    judge.save()  # as from the shell: no one logged in
    reviewers = Group.objects.create(name="reviewers")
    judge.groups.add(reviewers)
    reviewers.permissions.add(Permission.objects.get(codename="view_experiment"))
    judge.user_permissions.add(Permission.objects.get(codename="add_experiment"))
    judge.groups.clear()
    summaries = [e.summary for e in events(Kind.USER)]
    assert "User “judy” created" in summaries
    assert "User “judy” changed: is_staff False → True, password changed" in summaries
    assert "User “judy”: groups added: reviewers" in summaries
    assert "Group “reviewers”: permissions added: judging.view_experiment" in summaries
    assert "User “judy”: permissions added: judging.add_experiment" in summaries
    assert "User “judy”: groups removed: reviewers" in summaries
    assert all(e.actor is None for e in events(Kind.USER))

    # From the admin: who did it is recorded.
    reply = admin.post(
        f"/admin/auth/user/{judge.pk}/change/",
        {
            "username": "judy",
            "is_active": "on",
            "is_superuser": "on",
            "date_joined_0": "2030-01-01",
            "date_joined_1": "00:00:00",
            "groups": [str(reviewers.pk)],
        },
    )
    assert reply.status_code == 302, reply.content[:2000]
    mine = [e.summary for e in events(Kind.USER) if e.actor_name == "rita"]
    assert "User “judy” changed: is_staff True → False, is_superuser False → True" in mine
    assert "User “judy”: groups added: reviewers" in mine
    assert any("Changed user “judy”" in e.summary for e in events(Kind.ADMIN_EDIT))

    # A login's last_login update is not a change.
    before = AuditEvent.objects.count()
    Client().post("/accounts/login/", {"username": "judy", "password": "new-pass-456"})
    assert AuditEvent.objects.count() == before


def test_the_audit_log_is_read_only_in_the_admin_and_exported_as_csv(admin, researcher, django_user_model):
    django_user_model.objects.create_user(username="judy", password="judge-pass-123")
    event = AuditEvent.objects.get(kind=Kind.USER, summary__contains="judy")
    assert admin.get("/admin/audit/auditevent/").status_code == 200
    assert admin.get("/admin/audit/auditevent/add/").status_code == 403
    assert admin.post(f"/admin/audit/auditevent/{event.pk}/change/", {"summary": "forged"}).status_code == 403
    assert admin.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.summary == "User “judy” created"
    changelist = admin.get("/admin/audit/auditevent/?kind__exact=user").content.decode()
    assert 'href="/admin/audit/auditevent/export.csv?kind__exact=user"' in changelist

    reply = admin.get("/admin/audit/auditevent/export.csv?kind__exact=user")
    assert reply["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(reply.streaming_content).decode())))
    assert {r["summary"] for r in rows} == {"User “rita” created", "User “judy” created"}
    assert list(rows[0]) == ["at", "actor", "kind", "summary", "detail", "path", "address"]
    (exported,) = events(Kind.EXPORT)  # exporting the log is recorded too
    assert exported.actor_name == "rita" and exported.detail["table"] == "audit"

    judge_client = Client()
    judge_client.force_login(django_user_model.objects.get(username="judy"))
    assert judge_client.get("/admin/audit/auditevent/export.csv").status_code == 302  # not staff: to the login
