"""Invite links (account and crowd-platform), their seats and the crowd completion code (docs/recruitment.md)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from judging import recruitment
from judging.models import Experiment, Invite, Seat, Trial
from judging.services import experiment_launch, trial_open, trial_skip, verdict_submit

pytestmark = pytest.mark.django_db
User = get_user_model()

PID = "5f1a2b3c4d5e6f7a8b9c0d1e"  # a Prolific participant id: 24 hex digits


@pytest.fixture
def draft(make_model_config, make_experiment):
    """A draft of naive-judge trials (no debaters: live, judgeable at launch), with no judges yet."""
    return make_experiment(make_model_config("m"), judges=[], conditions=["naive"], num_questions=4)


def make_invite(experiment, kind=Invite.Kind.CROWD, max_uses=2, **fields):
    defaults = {"expires_at": timezone.now() + timedelta(days=7), "completion_code": "C0DE42", "completion_url": ""}
    return recruitment.invite_create(experiment=experiment, kind=kind, max_uses=max_uses, **(defaults | fields))


def join_url(invite, **query):
    from urllib.parse import urlencode

    return reverse("join", args=[invite.token]) + (f"?{urlencode(query)}" if query else "")


def nothing_taken(invite) -> bool:
    return not invite.seats.filter(taken_at__isnull=False).exists() and not invite.seats.filter(judge__is_active=True)


def test_an_invite_makes_its_seats_as_judges_that_cannot_log_in_and_the_launch_plans_their_trials(draft, client):
    invite = make_invite(draft, max_uses=2)
    seats = list(invite.seats.select_related("judge"))
    assert [s.number for s in seats] == [1, 2]
    assert set(draft.judges.all()) == {s.judge for s in seats}
    assert all(not s.judge.is_active and not s.judge.has_usable_password() for s in seats)
    assert len(invite.token) >= 32
    assert experiment_launch(experiment=draft) == 4
    assert {s.judge_id: s.judge.trials.count() for s in seats} == {seats[0].judge_id: 2, seats[1].judge_id: 2}


def test_no_invite_for_a_launched_experiment_nor_a_past_expiry_and_nothing_is_made(draft, judge):
    with pytest.raises(recruitment.InviteError, match="in the past"):
        make_invite(draft, expires_at=timezone.now() - timedelta(minutes=1))
    draft.judges.set([judge])
    experiment_launch(experiment=draft)
    users = User.objects.count()
    with pytest.raises(recruitment.InviteError, match="has been launched.*Invite judges before launching"):
        make_invite(draft)
    assert (Invite.objects.count(), Seat.objects.count(), User.objects.count()) == (0, 0, users)


def test_an_account_invite_lets_a_newcomer_choose_a_name_and_password_and_lands_on_their_queue(draft, client):
    invite = make_invite(draft, kind=Invite.Kind.ACCOUNT, max_uses=2)
    experiment_launch(experiment=draft)
    page = client.get(join_url(invite))
    assert page.status_code == 200 and "Create your judge account" in page.content.decode()
    assert nothing_taken(invite)  # viewing changes nothing
    form = {"username": "newjudge", "password1": "long-enough-1", "password2": "long-enough-1"}
    response = client.post(join_url(invite), form, follow=True)
    assert response.redirect_chain == [(reverse("judging:queue"), 302)]
    assert "Welcome, newjudge" in response.content.decode()
    seat = invite.seats.get(number=1)
    assert seat.judge.username == "newjudge" and seat.judge.is_active and seat.taken_at is not None
    assert "Start next trial" in response.content.decode()  # the seat's planned trials
    assert User.objects.get(username="newjudge").check_password("long-enough-1")


@pytest.mark.parametrize(
    "form, message",
    [
        ({"username": "judy", "password1": "long-enough-1", "password2": "long-enough-1"}, "is taken"),
        ({"username": "JUDY", "password1": "long-enough-1", "password2": "long-enough-1"}, "is taken"),
        ({"username": "bad name!", "password1": "long-enough-1", "password2": "long-enough-1"}, "valid username"),
        ({"username": "newjudge", "password1": "short", "password2": "short"}, "too short"),
        ({"username": "newjudge", "password1": "long-enough-1", "password2": "long-enough-2"}, "differ"),
    ],
)
def test_a_refused_account_form_says_why_and_takes_no_seat(draft, client, judge, form, message):
    invite = make_invite(draft, kind=Invite.Kind.ACCOUNT)
    response = client.post(join_url(invite), form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert nothing_taken(invite) and not User.objects.filter(username="newjudge").exists()
    assert "_auth_user_id" not in client.session


def test_invalid_expired_and_used_up_links_get_a_clear_page_and_nothing_is_created(draft, client, server_clock):
    form = {"username": "first", "password1": "long-enough-1", "password2": "long-enough-1"}
    response = client.post(reverse("join", args=["not-a-real-token"]), form)
    assert response.status_code == 404 and "This invite link is not valid" in response.content.decode()

    invite = make_invite(draft, kind=Invite.Kind.ACCOUNT, max_uses=1)
    assert client.post(join_url(invite), form).status_code == 302
    client.logout()
    second = form | {"username": "second"}
    for response in (client.get(join_url(invite)), client.post(join_url(invite), second)):
        assert response.status_code == 410 and "All 1 places of this invite are taken" in response.content.decode()
    assert not User.objects.filter(username="second").exists()

    later = make_invite(draft, kind=Invite.Kind.ACCOUNT, max_uses=1)
    server_clock.advance(8 * 24 * 3600)
    for response in (client.get(join_url(later)), client.post(join_url(later), second)):
        assert response.status_code == 410 and "This invite link expired on" in response.content.decode()
    assert nothing_taken(later) and not User.objects.filter(username="second").exists()


def test_joins_are_throttled_per_address(draft, client, settings):
    settings.RATE_LIMITS = settings.RATE_LIMITS | {"join": (2, 600)}
    invite = make_invite(draft, max_uses=5)
    for n in range(2):
        assert client.post(join_url(invite, PROLIFIC_PID=f"p{n}")).status_code == 302
    response = client.post(join_url(invite, PROLIFIC_PID="p9"))
    assert response.status_code == 429 and "Too many attempts to join" in response.content.decode()
    assert 0 < int(response["Retry-After"]) <= 600  # the window's rest (windows start on the clock's multiples)
    assert not Seat.objects.filter(participant_id="p9").exists()


def test_a_crowd_participant_joins_by_the_link_and_a_reused_id_resumes_the_same_account(draft, client):
    invite = make_invite(draft, max_uses=2)
    experiment_launch(experiment=draft)
    query = {"PROLIFIC_PID": PID, "STUDY_ID": "study-1", "SESSION_ID": "session-1"}
    page = client.get(join_url(invite, **query))
    assert page.status_code == 200 and "Join the study" in page.content.decode()
    assert nothing_taken(invite)
    response = client.post(join_url(invite, **query), follow=True)
    assert response.redirect_chain == [(reverse("judging:queue"), 302)]
    seat = Seat.objects.get(participant_id=PID)
    assert (seat.study_id, seat.session_id, seat.number) == ("study-1", "session-1", 1)
    assert not seat.judge.has_usable_password()  # passwordless: the link with their id brings them back
    assert PID not in response.content.decode()  # researchers only

    returning = client.__class__()
    assert "Welcome back" in returning.get(join_url(invite, PROLIFIC_PID=PID)).content.decode()
    returning.post(join_url(invite, PROLIFIC_PID=PID, SESSION_ID="session-2"))
    assert int(returning.session["_auth_user_id"]) == seat.judge_id
    assert Seat.objects.filter(taken_at__isnull=False).count() == 1

    worker = client.__class__()
    worker.post(join_url(invite, workerId="A1B2C3D4E5F6G7"))  # MTurk's parameter: the next seat
    assert Seat.objects.get(participant_id="A1B2C3D4E5F6G7").number == 2


def test_a_seated_participant_comes_back_after_expiry_but_nobody_new_joins(draft, client, server_clock):
    invite = make_invite(draft, max_uses=2)
    client.post(join_url(invite, participant_id="early"))
    server_clock.advance(8 * 24 * 3600)
    again = client.__class__()
    assert again.post(join_url(invite, participant_id="early")).status_code == 302
    late = client.__class__().post(join_url(invite, participant_id="late"))
    assert late.status_code == 410 and not Seat.objects.filter(participant_id="late").exists()


@pytest.mark.parametrize(
    "query, message",
    [
        ({}, "needs your participant id"),
        ({"PROLIFIC_PID": "x<script>"}, "participant id is not valid"),
        ({"PROLIFIC_PID": "a" * 129}, "participant id is not valid"),
        ({"PROLIFIC_PID": "one", "workerId": "two"}, "more than one participant id"),
    ],
)
def test_a_crowd_link_without_a_usable_participant_id_is_refused(draft, client, query, message):
    invite = make_invite(draft)
    for response in (client.get(join_url(invite, **query)), client.post(join_url(invite, **query))):
        assert response.status_code == 400 and message in response.content.decode()
    assert nothing_taken(invite)


def test_links_of_the_other_kind_are_refused(draft, client):
    crowd, account = make_invite(draft), make_invite(draft, kind=Invite.Kind.ACCOUNT)
    with pytest.raises(recruitment.JoinRefused, match="crowd platform"):
        recruitment.seat_take_account(token=crowd.token, username="x", password="long-enough-1")
    with pytest.raises(recruitment.JoinRefused, match="choosing an account"):
        recruitment.seat_take_crowd(token=account.token, participant=recruitment.Participant("p1"))


def test_a_participant_id_is_unique_within_the_experiment_across_its_invites(draft):
    first, second = make_invite(draft), make_invite(draft)
    judge, resumed = recruitment.seat_take_crowd(token=first.token, participant=recruitment.Participant("same"))
    assert not resumed
    again, resumed = recruitment.seat_take_crowd(token=second.token, participant=recruitment.Participant("same"))
    assert resumed and again == judge and Seat.objects.filter(participant_id="same").count() == 1


def test_the_completion_code_shows_once_the_participants_trials_are_done(draft, client):
    invite = make_invite(draft, max_uses=2, completion_url="https://app.prolific.com/submissions/complete?cc=C0DE42")
    client.post(join_url(invite, PROLIFIC_PID=PID))
    queue = client.get(reverse("judging:queue")).content.decode()
    assert "has not started yet" in queue and "C0DE42" not in queue

    experiment_launch(experiment=draft)
    judge = Seat.objects.get(participant_id=PID).judge
    first, second = Trial.objects.queue_of(judge)
    trial_open(trial=first)
    verdict_submit(trial_id=first.pk, judge=judge, chosen="A", probability=0.7, rationale="r")
    assert "C0DE42" not in client.get(reverse("judging:queue")).content.decode()  # one trial left
    trial_skip(trial_id=second.pk, judge=judge, reason="could not read it")
    queue = client.get(reverse("judging:queue")).content.decode()
    assert 'id="completion-code">C0DE42<' in queue
    assert 'href="https://app.prolific.com/submissions/complete?cc=C0DE42"' in queue


def test_a_judge_who_joined_by_no_invite_sees_no_completion_notice(ready_trial, client, judge):
    client.force_login(judge)
    assert 'id="completion"' not in client.get(reverse("judging:queue")).content.decode()


def test_the_admin_creates_an_invite_on_a_draft_and_shows_its_link(draft, admin_client, make_experiment):
    expires = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    post = {
        "experiment": draft.pk,
        "kind": "crowd",
        "label": "Prolific pilot",
        "max_uses": 3,
        "expires_at_0": expires[:10],
        "expires_at_1": expires[11:],
        "completion_code": "C0DE42",
        "completion_url": "",
        "seats-TOTAL_FORMS": "0",
        "seats-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:judging_invite_add"), post)
    assert response.status_code == 302, response.content.decode()[-3000:]
    invite = Invite.objects.get()
    assert invite.seats.count() == 3 and draft.judges.count() == 3
    page = admin_client.get(reverse("admin:judging_invite_change", args=[invite.pk])).content.decode()
    assert f"http://testserver/join/{invite.token}/" in page
    assert AuditEvent.objects.filter(kind="admin-edit", summary__contains="Prolific pilot").exists()

    Experiment.objects.filter(pk=draft.pk).update(status=Experiment.Status.LAUNCHED)
    response = admin_client.post(reverse("admin:judging_invite_add"), post)
    assert response.status_code == 200 and "Choose a draft experiment" in response.content.decode()
    assert Invite.objects.count() == 1
