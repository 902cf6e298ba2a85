"""Recruiting judges by invite links (docs/recruitment.md): every write of invites and seats goes through here.

Judges must exist when an experiment is launched: the launch plans every trial for the judges it has then
(judging.assignment.plan_trials balances questions, arms and sides over them), and a launched plan is never
changed. So an invite makes its judge accounts when it is created, on a draft experiment: ``max_uses`` seats,
inactive accounts that cannot log in, added to the experiment's judges and planned at launch like any judge.
A newcomer following the link takes the next free seat: the account becomes theirs (a username and password
they choose, or, from a crowd platform, their participant id and no password) and they land on their queue,
with the trials the launch planned for that seat. A seat nobody takes leaves its trials unjudged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Experiment, Invite, Seat, Trial

MAX_SEATS_PER_INVITE = 1000
# Where crowd platforms put the participant's id in the link: Prolific's PROLIFIC_PID, MTurk's workerId (an
# external question's URL), and a generic name for anything else. Study and session ids as Prolific names them.
PARTICIPANT_PARAMETERS = ("PROLIFIC_PID", "workerId", "participant_id")
STUDY_PARAMETERS = ("STUDY_ID", "assignmentId")
SESSION_PARAMETERS = ("SESSION_ID", "hitId")
# Ids are short tokens (Prolific: 24 hex digits; MTurk: upper-case letters and digits); anything else is refused.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class InviteError(ValueError):
    """An invite that cannot be created as asked."""


class JoinRefused(ValueError):
    """A join that is refused; nothing was created or changed. ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


INVALID_LINK = JoinRefused(
    "This invite link is not valid. Check that you copied the whole link, or ask the researcher for a new one.", 404
)


def seat_username(invite: Invite, number: int) -> str:
    return f"invite{invite.pk}-seat{number}"


def invite_refusal(experiment: Experiment, max_uses: int, expires_at) -> str | None:
    """Why such an invite cannot be made (the admin's form shows it), or None."""
    if experiment.status != Experiment.Status.DRAFT:
        return (
            f"experiment {experiment.name!r} has been launched: its trials were planned for the judges it had then, "
            "so newcomers would get none. Invite judges before launching (or a new experiment for more judges)."
        )
    if not 1 <= max_uses <= MAX_SEATS_PER_INVITE:
        return f"an invite has from 1 to {MAX_SEATS_PER_INVITE} places, not {max_uses}"
    if expires_at <= timezone.now():
        return "the expiry is in the past: nobody could join"
    return None


def invite_create(
    *,
    experiment: Experiment,
    kind: str,
    max_uses: int,
    expires_at,
    label: str = "",
    completion_code: str = "",
    completion_url: str = "",
) -> Invite:
    """An invite with its ``max_uses`` seats, added to the draft experiment's judges; all of it or nothing."""
    User = get_user_model()
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if refusal := invite_refusal(experiment, max_uses, expires_at):
            raise InviteError(refusal)
        invite = Invite.objects.create(
            experiment=experiment,
            kind=kind,
            max_uses=max_uses,
            expires_at=expires_at,
            label=label,
            completion_code=completion_code,
            completion_url=completion_url,
        )
        names = [seat_username(invite, n) for n in range(1, max_uses + 1)]
        if taken := list(User.objects.filter(username__in=names).values_list("username", flat=True)[:5]):
            raise InviteError(f"usernames needed for the seats are taken: {', '.join(taken)}")
        for number, name in enumerate(names, start=1):
            judge = User(username=name, is_active=False)  # nobody can log in to a seat until it is taken
            judge.set_unusable_password()
            judge.save()
            Seat.objects.create(invite=invite, experiment=experiment, number=number, judge=judge)
        experiment.judges.add(*User.objects.filter(username__in=names))
    return invite


def _open_invite(token: str) -> Invite:
    """The invite of a link, locked, so two newcomers never take the same seat (the invite's row only: its
    experiment locked too would hold every judge's move and beat of it while a newcomer's password is hashed)."""
    invite = Invite.objects.select_for_update(of=("self",)).select_related("experiment").filter(token=token).first()
    if invite is None:
        raise INVALID_LINK
    return invite


def refusal_to_join(invite: Invite) -> JoinRefused | None:
    """Why nobody new may join by this invite now (expired, or every place taken), or None."""
    if invite.expires_at <= timezone.now():
        return JoinRefused(
            f"This invite link expired on {invite.expires_at.astimezone(UTC):%Y-%m-%d at %H:%M} UTC. Nothing was "
            "created; ask the researcher for a new link.",
            410,
        )
    if not invite.seats.filter(taken_at__isnull=True).exists():
        return JoinRefused(
            f"All {invite.max_uses} places of this invite are taken. Nothing was created; ask the researcher for "
            "a new link.",
            410,
        )
    return None


def invite_for_link(token: str) -> Invite:
    """The invite a link names, for the page that asks the newcomer to join (nothing is locked or written)."""
    invite = Invite.objects.select_related("experiment").filter(token=token).first()
    if invite is None:
        raise INVALID_LINK
    return invite


def _next_free_seat(invite: Invite) -> Seat:
    if refusal := refusal_to_join(invite):
        raise refusal
    return invite.seats.filter(taken_at__isnull=True).select_related("judge").order_by("number").first()


def _messages(error: ValidationError) -> str:
    return " ".join(error.messages)


def seat_take_account(*, token: str, username: str, password: str):
    """Join by an account invite: the next free seat becomes the newcomer's account (their username and
    password). Returns the judge; refused (JoinRefused) with nothing changed."""
    User = get_user_model()
    username = username.strip()
    with transaction.atomic():
        invite = _open_invite(token)
        if invite.kind != Invite.Kind.ACCOUNT:
            raise JoinRefused("This link is for a crowd platform: open it from the study's page there.")
        seat = _next_free_seat(invite)
        judge = seat.judge
        try:
            User.username_validator(username)
            if not username or len(username) > User._meta.get_field("username").max_length:
                raise ValidationError("Choose a username of 1 to 150 characters.")
            if User.objects.filter(username__iexact=username).exclude(pk=judge.pk).exists():
                raise ValidationError(f"The username {username!r} is taken: choose another.")
            judge.username = username
            password_validation.validate_password(password, judge)
        except ValidationError as error:
            raise JoinRefused(_messages(error)) from None
        judge.set_password(password)
        judge.is_active = True
        try:
            with transaction.atomic():
                judge.save()
        except IntegrityError:  # the same username chosen at the same moment by someone else
            raise JoinRefused(f"The username {username!r} is taken: choose another.") from None
        seat.taken_at = timezone.now()
        seat.save(update_fields=["taken_at"])
    return judge


@dataclass(frozen=True)
class Participant:
    """Who a crowd platform sends: their id, and the study and session it names (blank where it names none)."""

    participant_id: str
    study_id: str = ""
    session_id: str = ""


def _one_of(query, names: tuple[str, ...], what: str) -> str:
    values = {query.get(name, "").strip() for name in names} - {""}
    if len(values) > 1:
        raise JoinRefused(f"The link gives more than one {what}: open it again from the study's page.")
    value = values.pop() if values else ""
    if value and not ID_PATTERN.fullmatch(value):
        raise JoinRefused(f"The link's {what} is not valid (letters, digits and _ . : - only, at most 128).")
    return value


def participant_from(query) -> Participant:
    """The participant a crowd platform's link names (``?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...``, or
    ``?workerId=...``, or ``?participant_id=...``)."""
    participant_id = _one_of(query, PARTICIPANT_PARAMETERS, "participant id")
    if not participant_id:
        raise JoinRefused(
            "This link needs your participant id from the crowd platform (such as PROLIFIC_PID or workerId). "
            "Open the study from the platform's page, not a copied link."
        )
    return Participant(
        participant_id, _one_of(query, STUDY_PARAMETERS, "study id"), _one_of(query, SESSION_PARAMETERS, "session id")
    )


def seat_take_crowd(*, token: str, participant: Participant):
    """Join, or come back, by a crowd invite. A participant id already seated in the experiment gets its own
    seat back (never a second one), even after the link expired; a new one takes the next free seat.
    Returns (judge, resumed)."""
    for _ in range(2):  # a race with the same id on another invite of the experiment: its seat is taken then
        try:
            with transaction.atomic():
                invite = _open_invite(token)
                if invite.kind != Invite.Kind.CROWD:
                    raise JoinRefused("This link is for choosing an account, not for a crowd platform.")
                own = Seat.objects.filter(experiment=invite.experiment, participant_id=participant.participant_id)
                if seat := own.select_related("judge").first():
                    return seat.judge, True
                seat = _next_free_seat(invite)
                seat.participant_id = participant.participant_id
                seat.study_id = participant.study_id
                seat.session_id = participant.session_id
                seat.taken_at = timezone.now()
                seat.save()
                seat.judge.is_active = True
                seat.judge.save(update_fields=["is_active"])
                return seat.judge, False
        except IntegrityError:
            continue
    raise JoinRefused("Joining clashed with another request for the same participant: please try again.", 409)


@dataclass(frozen=True)
class Completion:
    """What a judge who joined by an invite is told about finishing: whether their queue is done, and then
    the completion code and link their invite gives."""

    started: bool  # the experiment has been launched
    done: bool
    code: str
    url: str


def completion_of(judge) -> Completion | None:
    """For a judge who took a seat: whether they are done (the experiment launched, and none of their trials in
    it is left to judge or being prepared), with the invite's completion code and link. None for other users."""
    seat = Seat.objects.filter(judge=judge, taken_at__isnull=False).select_related("invite__experiment").first()
    if seat is None:
        return None
    invite = seat.invite
    started = invite.experiment.status != Experiment.Status.DRAFT
    trials = Trial.objects.filter(experiment=invite.experiment, judge=judge)
    left = trials.filter(status__in=[Trial.Status.READY, Trial.Status.GENERATING])
    # A closed experiment takes no more verdicts: its judges are done, whatever was left in their queue.
    closed = invite.experiment.status == Experiment.Status.CLOSED
    done = started and trials.exists() and (closed or not left.exists())
    return Completion(started=started, done=done, code=invite.completion_code, url=invite.completion_url)
