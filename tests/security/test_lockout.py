"""Login throttling (django-axes): the judge login, the admin login and HTTP Basic on the export URL each lock
after DEBATE_LOGIN_FAILURE_LIMIT wrong passwords; the right password is refused while locked; a researcher
unlocks from the admin; the lock ends by itself after the cool-off (the clock is moved, never waited for)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

pytestmark = pytest.mark.django_db

LIMIT = settings.AXES_FAILURE_LIMIT


@pytest.fixture
def researcher(django_user_model):
    return django_user_model.objects.create_user(
        username="rita", password="researcher-pass-1", is_staff=True, is_superuser=True
    )


@pytest.fixture
def unlocker(django_user_model):
    """Another researcher, already logged in, who unlocks the account from the admin."""
    user = django_user_model.objects.create_superuser(username="ulla", password="unlock-pass-1")
    client = Client()
    client.force_login(user)
    return client


def judge_login(client, password):
    return client.post("/accounts/login/", {"username": "judy", "password": password})


def admin_login(client, password):
    return client.post("/admin/login/?next=/admin/", {"username": "rita", "password": password})


def basic_export(client, password, experiment_id=1):
    token = base64.b64encode(f"rita:{password}".encode()).decode()
    return client.get(f"/results/export/?experiment={experiment_id}", HTTP_AUTHORIZATION=f"Basic {token}")


def logged_in(reply) -> bool:
    return reply.status_code == 302 and "/login/" not in reply["Location"]


def unlock_in_admin(unlocker) -> None:
    """Axes > Access attempts: select the attempts and delete them (the documented unlock)."""
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    reply = unlocker.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", ACTION_CHECKBOX_NAME: ids, "post": "yes"}
    )
    assert reply.status_code == 302
    assert not AccessAttempt.objects.exists()


def test_the_judge_login_locks_refuses_the_right_password_and_an_admin_unlocks(judge, unlocker):
    client = Client()
    for _ in range(LIMIT - 1):
        reply = judge_login(client, "wrong")
        assert reply.status_code == 200 and b"did not match" in reply.content
    reply = judge_login(client, "wrong")
    assert reply.status_code == 429 and b"Too many failed logins" in reply.content
    assert reply["Retry-After"] == str(settings.AXES_COOLOFF_TIME.seconds)
    right = judge_login(client, "judge-pass-123")
    assert right.status_code == 429 and not logged_in(right)
    assert "_auth_user_id" not in client.session

    unlock_in_admin(unlocker)
    assert logged_in(judge_login(client, "judge-pass-123"))


def test_a_lock_ends_after_the_cool_off(judge, monkeypatch):
    from axes.handlers import proxy
    from django.utils import timezone

    start, moved = timezone.now(), timedelta()
    monkeypatch.setattr(proxy, "now", lambda: start + moved)  # axes' clock for each attempt, frozen but for moves
    client = Client()
    for _ in range(LIMIT):
        judge_login(client, "wrong")
    moved = settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    assert judge_login(client, "judge-pass-123").status_code == 429  # still locked (and the lock restarts)
    moved += settings.AXES_COOLOFF_TIME + timedelta(seconds=1)
    assert logged_in(judge_login(client, "judge-pass-123"))


def test_the_admin_login_locks_refuses_the_right_password_and_an_admin_unlocks(researcher, unlocker):
    client = Client()
    for _ in range(LIMIT):
        reply = admin_login(client, "wrong")
    assert reply.status_code == 429
    assert admin_login(client, "researcher-pass-1").status_code == 429
    assert client.get("/admin/").status_code == 302  # still not logged in

    unlock_in_admin(unlocker)
    assert logged_in(admin_login(client, "researcher-pass-1"))
    assert client.get("/admin/").status_code == 200


def test_http_basic_on_the_export_url_locks_refuses_the_right_password_and_an_admin_unlocks(
    researcher, unlocker, ready_trial
):
    client = Client()
    experiment_id = ready_trial.experiment_id
    for _ in range(LIMIT - 1):
        assert basic_export(client, "wrong", experiment_id).status_code == 401
    locked = basic_export(client, "wrong", experiment_id)
    assert locked.status_code == 429 and "Too many failed logins" in locked.json()["error"]
    right = basic_export(client, "researcher-pass-1", experiment_id)
    assert right.status_code == 429 and "Retry-After" in right

    unlock_in_admin(unlocker)
    reply = basic_export(client, "researcher-pass-1", experiment_id)
    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/csv")


def test_a_username_is_locked_from_every_address_and_an_address_for_every_username(judge, other_judge):
    for n in range(LIMIT):
        judge_login(Client(REMOTE_ADDR=f"10.0.0.{n}"), "wrong")  # one username, many addresses
    assert judge_login(Client(REMOTE_ADDR="10.0.1.1"), "judge-pass-123").status_code == 429

    attacker = Client(REMOTE_ADDR="10.0.2.2")
    for n in range(LIMIT):
        attacker.post("/accounts/login/", {"username": f"guess{n}", "password": "wrong"})
    assert attacker.post("/accounts/login/", {"username": "otto", "password": "judge-pass-456"}).status_code == 429
    assert logged_in(
        Client(REMOTE_ADDR="10.0.3.3").post("/accounts/login/", {"username": "otto", "password": "judge-pass-456"})
    )


def test_axes_reset_unlocks_from_the_command_line(judge):
    from django.core.management import call_command

    client = Client()
    for _ in range(LIMIT):
        judge_login(client, "wrong")
    assert judge_login(client, "judge-pass-123").status_code == 429
    call_command("axes_reset_username", "judy")
    call_command("axes_reset_ip", "127.0.0.1")
    assert logged_in(judge_login(client, "judge-pass-123"))
