"""Human debaters' pages: the speeches due from them, and the page where they write one with a quote tool.

Only users with the debater role (the 'debaters' group) reach these pages, and a turn only through its
author: anyone else, a judge included, gets 404. Every write goes through judging.services.speech_submit;
what a debater sees is built by judging.debater_selectors.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import debater_selectors, selectors, services
from .models import Turn


def debater_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not debater_selectors.is_debater(request.user):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapped


def _own_turn(request, turn_id: int) -> Turn:
    turn = (
        Turn.objects.filter(pk=turn_id, author=request.user)
        .exclude(speaker="judge")
        .select_related("trial__experiment", "trial__question")
        .first()
    )
    if turn is None:
        raise Http404("No such speech of yours.")
    return turn


@debater_required
@require_GET
def speeches(request):
    """The debater's queue: the speeches due from them now. It refreshes its list while they wait."""
    return render(request, "judging/debater/queue.html", {"speeches": debater_selectors.debater_speeches(request.user)})


@debater_required
@require_GET
def speeches_list(request):
    """The queue's list alone, polled by the queue page (htmx)."""
    return render(
        request,
        "judging/debater/partials/speeches.html",
        {"speeches": debater_selectors.debater_speeches(request.user)},
    )


def _writing_page(request, turn: Turn, *, text: str | None = None, error: str = "", status: int = 200):
    view = debater_selectors.debater_view_of_turn(turn)
    draft = view["text"] if text is None else text
    return render(
        request,
        "judging/debater/write.html",
        {"turn": view, "draft": draft, "check": debater_selectors.speech_check(turn, draft), "error": error},
        status=status,
    )


@debater_required
def write(request, turn_id: int):
    """GET: the writing page. POST: submit the speech; a refusal shows the page again with the text kept."""
    turn = _own_turn(request, turn_id)
    if request.method != "POST":
        return _writing_page(request, turn)
    text = request.POST.get("text", "")
    try:
        services.speech_submit(turn_id=turn.pk, person=request.user, text=text)
    except services.SpeechRefused as refusal:
        if refusal.status == 404:
            raise Http404(str(refusal)) from None
        turn.refresh_from_db()
        return _writing_page(request, turn, text=text, error=str(refusal), status=refusal.status)
    selectors.record_response_delays({turn.trial_id})  # a live judge's question: when its answer became visible
    messages.success(request, "Speech submitted.")
    return redirect("judging:debater_speeches")


@debater_required
@require_POST
def check(request, turn_id: int):
    """The quote tool: the draft's length and quotes checked against the passage (htmx, as the debater types)."""
    turn = _own_turn(request, turn_id)
    context = {"check": debater_selectors.speech_check(turn, request.POST.get("text", ""))}
    return render(request, "judging/debater/partials/check.html", context)
