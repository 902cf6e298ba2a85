"""The invite link's page (docs/recruitment.md): a newcomer joins an experiment as a judge, or a crowd participant
joins or comes back. Viewing the page changes nothing; joining is a POST (judging.recruitment does the writing)."""

from __future__ import annotations

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from . import ratelimit, recruitment
from .models import Invite, Seat

# Accounts made by invites log in by the project's password backend (the seat was just taken or resumed here):
# the last of the settings' backends (the first is django-axes', which only refuses locked-out logins).
BACKEND = settings.AUTHENTICATION_BACKENDS[-1]


def _refused(request, refusal: recruitment.JoinRefused):
    page = render(request, "judging/recruitment/refused.html", {"reason": str(refusal)}, status=refusal.status)
    return ratelimit.with_retry_after(page, refusal)


def _throttled(request):
    """A join post from an address that sent too many (counted before anything is looked up), else None."""
    if wait := ratelimit.wait_seconds_for("join", get_client_ip_address(request)):
        return ratelimit.refusal("join", wait, recruitment.JoinRefused)
    return None


@require_http_methods(["GET", "POST"])
def join(request, token: str):
    if request.method == "POST" and (refusal := _throttled(request)):
        return _refused(request, refusal)
    try:
        invite = recruitment.invite_for_link(token)
        if invite.kind == Invite.Kind.CROWD:
            return _join_crowd(request, invite)
        return _join_account(request, invite)
    except recruitment.JoinRefused as refusal:
        return _refused(request, refusal)


def _join_crowd(request, invite: Invite):
    # The participant comes in the link's query string, which the page's form posts back to.
    participant = recruitment.participant_from(request.GET)
    if request.method == "POST":
        judge, resumed = recruitment.seat_take_crowd(token=invite.token, participant=participant)
        login(request, judge, backend=BACKEND)
        messages.success(request, "Welcome back." if resumed else "Welcome! Your trials are below.")
        return redirect("judging:queue")
    returning = Seat.objects.filter(experiment=invite.experiment, participant_id=participant.participant_id).exists()
    if not returning and (refusal := recruitment.refusal_to_join(invite)):
        raise refusal
    return render(request, "judging/recruitment/join_crowd.html", {"invite": invite, "returning": returning})


def _join_account(request, invite: Invite):
    error, username = "", request.POST.get("username", "")
    if request.method == "POST":
        password = request.POST.get("password1", "")
        if password != request.POST.get("password2", ""):
            error = "The two passwords differ: type the same password twice."
        else:
            try:
                judge = recruitment.seat_take_account(token=invite.token, username=username, password=password)
            except recruitment.JoinRefused as refusal:
                if refusal.status != 400:  # the link itself is refused (expired, full): not the form's fault
                    raise
                error = str(refusal)
            else:
                login(request, judge, backend=BACKEND)
                messages.success(request, f"Welcome, {judge.get_username()}! Your trials are below.")
                return redirect("judging:queue")
    elif refusal := recruitment.refusal_to_join(invite):
        raise refusal
    return render(
        request,
        "judging/recruitment/join_account.html",
        {"invite": invite, "error": error, "username": username},
        status=400 if error else 200,
    )
