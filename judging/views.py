"""Judge-facing pages. Every trial lookup is filtered by the logged-in judge,
and every page is built from selectors.judge_view_of_trial only."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import selectors, services
from .models import Trial


def _own_trial(request, trial_id: int) -> Trial:
    trial = (
        Trial.objects.filter(pk=trial_id, judge=request.user)
        .exclude(status=Trial.Status.GENERATING)
        .exclude(status=Trial.Status.FAILED)
        .select_related("question", "experiment")
        .first()
    )
    if trial is None:
        raise Http404("No such trial in your queue.")
    return trial


@login_required
def queue(request):
    return render(
        request,
        "judging/queue.html",
        {"trials": selectors.judge_queue(request.user), "progress": selectors.judge_progress(request.user)},
    )


@login_required
def queue_json(request):
    """For the queue page to refresh itself while trials are being prepared."""
    return JsonResponse(
        {
            "progress": selectors.judge_progress(request.user),
            "ready": [t.pk for t in selectors.judge_queue(request.user)],
        }
    )


@login_required
def next_trial(request):
    trial = selectors.judge_queue(request.user).first()
    if trial is None:
        return redirect("judging:queue")
    return redirect("judging:trial", trial_id=trial.pk)


@login_required
def trial_page(request, trial_id: int, error: str | None = None, status: int = 200, form: dict | None = None):
    trial = _own_trial(request, trial_id)
    if trial.status == Trial.Status.READY:
        services.trial_open(trial=trial)
    return render(
        request,
        "judging/trial.html",
        {
            "trial": selectors.judge_view_of_trial(trial),
            "progress": selectors.judge_progress(request.user),
            "error": error,
            "form": form or {},
            "idle_seconds": settings.JUDGE_IDLE_SECONDS,
        },
        status=status,
    )


@login_required
def trial_state(request, trial_id: int):
    """The judge's view of a trial as JSON, polled by the live trial page."""
    return JsonResponse(selectors.judge_view_of_trial(_own_trial(request, trial_id)))


@login_required
@require_POST
def live_move(request, trial_id: int):
    """A judge's move in a live trial: ask, continue, end, or lean."""
    to = request.POST.get("addressed_to", "both")
    addressed_to = {"both": ("A", "B"), "A": ("A",), "B": ("B",)}.get(to, ())
    wants_json = "application/json" in request.headers.get("Accept", "")
    try:
        services.live_move(
            trial_id=trial_id,
            judge=request.user,
            action=request.POST.get("action", ""),
            text=request.POST.get("text", ""),
            addressed_to=addressed_to,
            probability=request.POST.get("probability"),
        )
    except services.MoveRefused as refusal:
        if refusal.status == 404:
            raise Http404(str(refusal)) from None
        if wants_json:
            return JsonResponse({"error": str(refusal)}, status=refusal.status)
        messages.error(request, str(refusal))
        return redirect("judging:trial", trial_id=trial_id)
    if wants_json:
        return JsonResponse(selectors.judge_view_of_trial(_own_trial(request, trial_id)))
    return redirect("judging:trial", trial_id=trial_id)


@login_required
@require_POST
def submit_verdict(request, trial_id: int):
    form = {
        "chosen": request.POST.get("chosen", ""),
        "probability": request.POST.get("probability", ""),
        "rationale": request.POST.get("rationale", ""),
    }
    try:
        services.verdict_submit(
            trial_id=trial_id,
            judge=request.user,
            chosen=form["chosen"],
            probability=form["probability"],
            rationale=form["rationale"],
            active_seconds=request.POST.get("active_seconds"),
            active_by_round=request.POST.get("active_by_round"),
        )
    except services.VerdictRefused as refusal:
        if refusal.status == 404:
            raise Http404(str(refusal)) from None
        return trial_page(request, trial_id, error=str(refusal), status=refusal.status, form=form)
    messages.success(request, "Verdict saved.")
    return redirect("judging:next")
