"""Judge-facing pages. Every trial lookup is filtered by the logged-in judge,
and every page is built from selectors.judge_view_of_trial only."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import ratelimit, selectors, services
from .debater_selectors import is_debater
from .models import Trial, Turn

# What no judge page reads, left in the database: a live page is polled every 0.4 s. A turn's prompt holds the
# whole passage; best-of-N candidates hold their texts.
TURN_FIELDS_UNREAD = ("prompt", "model_settings", "candidates", "error")


def _own_trial(request, trial_id: int) -> Trial:
    trial = (
        Trial.objects.filter(pk=trial_id, judge=request.user)
        .exclude(status=Trial.Status.GENERATING)
        .exclude(status=Trial.Status.FAILED)
        .select_related("question", "experiment")
        .defer("experiment__provenance")
        # Read once for the judge's view and the protocol's replay; in transcript order, without the default
        # ordering's joins (a turn's is by trial, whose is by experiment).
        .prefetch_related(Prefetch("turns", queryset=Turn.objects.defer(*TURN_FIELDS_UNREAD).order_by("index")))
        .order_by("pk")
        .first()
    )
    if trial is None:
        raise Http404("No such trial in your queue.")
    return trial


def _queue_page(request, *, error: str | None = None, status: int = 200, skip_reason: str = ""):
    """The judge's queue: only its first trial can be opened or skipped; the rest are listed in order."""
    trials = list(selectors.judge_queue(request.user))
    # While trials are being prepared, queue.js reloads the page once the ready ones change.
    refresh = {"ready": [t.pk for t in trials], "url": reverse("judging:queue_json")}
    return render(
        request,
        "judging/queue.html",
        {
            "next_trial": trials[0] if trials else None,
            "later_trials": trials[1:],
            "progress": selectors.judge_progress(request.user),
            "refresh": refresh,
            "error": error,
            "skip_reason": skip_reason,
        },
        status=status,
    )


def _queue_refusal(request, refusal: services.TrialRefused, **page):
    """A refused open, start or skip: 404 for a trial not in the judge's queue (so ids leak nothing), else
    the queue with the reason."""
    if refusal.status == 404:
        raise Http404(str(refusal)) from None
    return _queue_page(request, error=str(refusal), status=refusal.status, **page)


@login_required
def queue(request):
    # A human debater who judges nothing is sent to the speeches due from them.
    if not Trial.objects.filter(judge=request.user).exists() and is_debater(request.user):
        return redirect("judging:debater_speeches")
    return _queue_page(request)


@login_required
def queue_json(request):
    """For the queue page to refresh itself while trials are being prepared (ids in queue order)."""
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
@require_POST
def skip_trial(request, trial_id: int):
    """Skip the judge's next trial with a reason; a refusal is shown on the queue, the reason kept."""
    reason = request.POST.get("reason", "")
    try:
        services.trial_skip(trial_id=trial_id, judge=request.user, reason=reason)
    except services.TrialRefused as refusal:
        return _queue_refusal(request, refusal, skip_reason=reason)
    messages.success(request, "Trial skipped. Your reason has been recorded.")
    return redirect("judging:queue")


class Refused(Exception):
    """A read of a trial the judge may not see now (answered 409 with the message)."""


def _opened_trial(request, trial_id: int) -> Trial:
    """The judge's trial for the views that read or act on an open trial: one they have not opened (a
    later trial of their queue) or skipped is refused (409), so its transcript cannot be read ahead."""
    trial = _own_trial(request, trial_id)
    if trial.status == Trial.Status.SKIPPED:
        raise Refused("you skipped this trial")
    if trial.opened_at is None and trial.status != Trial.Status.JUDGED:
        raise Refused(services.NOT_NEXT)
    # The judge's polls are what notice a dead worker within seconds (no query unless one is found).
    if services.dead_live_claims_release(trial):
        trial = _own_trial(request, trial_id)  # its released turns, as they are now
    return trial


def _trial_context(trial: Trial) -> dict:
    """What the trial page and its live partials are rendered from: the judge's view and nothing else."""
    view = selectors.judge_view_of_trial(trial)
    # The wording that differs between protocols lives in one fragment per protocol.
    return {"trial": view, "protocol_text": trial.protocol_spec.page_template, "live_tag": _live_tag(view)}


def _live_tag(view: dict) -> str:
    """A tag of what the live partials show: the judge's view they are rendered from, and the code that renders
    it. The page's live status carries it and htmx's ptag extension sends it back with each poll (HX-PTag); a poll
    whose page already shows the same is answered 304 without rendering anything."""
    shown = json.dumps([settings.PLATFORM_COMMIT, view], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(shown.encode(), digest_size=16).hexdigest()


def _live_partials(request, trial: Trial, context: dict | None = None):
    context = context or _trial_context(trial)
    response = render(request, "judging/partials/live.html", context)
    response["HX-PTag"] = context["live_tag"]
    return response


@login_required
def trial_page(request, trial_id: int, error: str | None = None, status: int = 200, form: dict | None = None):
    trial = _own_trial(request, trial_id)
    if trial.status == Trial.Status.SKIPPED:
        return _queue_page(request, error="You skipped this trial.", status=409)
    if trial.status == Trial.Status.READY and trial.opened_at is None:
        # Viewing changes nothing: the judge starts the trial (and its clock, and a live debate) with a POST.
        try:
            services.trial_check_next(trial)
        except services.TrialRefused as refusal:  # not the judge's next trial
            return _queue_refusal(request, refusal)
        return render(
            request,
            "judging/trial_start.html",
            _trial_context(trial) | {"progress": selectors.judge_progress(request.user), "error": error},
            status=status,
        )
    return render(
        request,
        "judging/trial.html",
        _trial_context(trial)
        | {
            "progress": selectors.judge_progress(request.user),
            "error": error,
            "form": form or {},
            "config": {
                "idle_seconds": settings.JUDGE_IDLE_SECONDS,
                "beat_seconds": settings.JUDGE_BEAT_SECONDS,
                # A judged trial's time is no longer counted: its page sends no beats.
                "beat_url": None if trial.status == Trial.Status.JUDGED else reverse("judging:beat", args=[trial.pk]),
            },
        },
        status=status,
    )


@login_required
@require_POST
def start_trial(request, trial_id: int):
    """The judge starts their next trial: from now its time counts, and a live debate's first round begins."""
    trial = _own_trial(request, trial_id)
    if trial.status == Trial.Status.SKIPPED:
        return _queue_page(request, error="You skipped this trial.", status=409)
    try:
        services.trial_open(trial=trial)
    except services.TrialRefused as refusal:  # not the judge's next trial: nothing was started
        return _queue_refusal(request, refusal)
    return redirect("judging:trial", trial_id=trial.pk)


@login_required
def trial_state(request, trial_id: int):
    """The judge's view of a trial as JSON."""
    try:
        trial = _opened_trial(request, trial_id)
    except Refused as refusal:
        return JsonResponse({"error": str(refusal)}, status=409)
    return JsonResponse(selectors.judge_view_of_trial(trial))


@login_required
@require_GET
def trial_live(request, trial_id: int):
    """The live partials of the trial page (transcript, status, moves, verdict), polled while debaters speak."""
    try:
        trial = _opened_trial(request, trial_id)
    except Refused as refusal:
        return HttpResponse(str(refusal), status=409, content_type="text/plain; charset=utf-8")
    context = _trial_context(trial)
    if request.headers.get("HX-PTag") == context["live_tag"]:
        return HttpResponseNotModified()  # htmx swaps nothing: the page shows this already
    return _live_partials(request, trial, context)


@login_required
@require_POST
def live_move(request, trial_id: int):
    """A judge's move in a live trial: ask, continue, end, or lean.

    Answered with the live partials (htmx), the judge's view as JSON (Accept: application/json), or a redirect
    to the trial page (a plain form post). A refused move is answered with {"error": ...} and its status, except
    on a plain form post, where it becomes a message on the trial page.
    """
    to = request.POST.get("addressed_to", "both")
    addressed_to = {"both": ("A", "B"), "A": ("A",), "B": ("B",)}.get(to, ())
    action, text = request.POST.get("action", ""), request.POST.get("text", "")
    if action == "ask" and not text.strip():
        action = "continue"  # the question is optional: "Ask and continue" without one goes on to the next round
    wants_json = "application/json" in request.headers.get("Accept", "")
    try:
        if wait := ratelimit.wait_seconds("move", request.user):
            raise services.MoveRefused(ratelimit.refusal_message("move", wait), status=429)
        services.live_move(
            trial_id=trial_id,
            judge=request.user,
            action=action,
            text=text,
            addressed_to=addressed_to,
            chosen=request.POST.get("chosen"),
            probability=request.POST.get("probability"),
        )
    except services.MoveRefused as refusal:
        if refusal.status == 404:
            raise Http404(str(refusal)) from None
        if wants_json or request.htmx:
            return JsonResponse({"error": str(refusal)}, status=refusal.status)
        messages.error(request, str(refusal))
        return redirect("judging:trial", trial_id=trial_id)
    if request.htmx:
        return _live_partials(request, _own_trial(request, trial_id))
    if wants_json:
        return JsonResponse(selectors.judge_view_of_trial(_own_trial(request, trial_id)))
    return redirect("judging:trial", trial_id=trial_id)


@login_required
@require_POST
def active_time_beat(request, trial_id: int):
    """A heartbeat of the open trial page (trial.js): the server counts the judge's active time from these.
    Answered 204, or {"error": ...} with the refusal's status; the page ignores either."""
    try:
        services.active_time_beat(
            trial_id=trial_id,
            judge=request.user,
            page=request.POST.get("page"),
            seq=request.POST.get("seq"),
            fresh=request.POST.get("fresh") == "1",
        )
    except services.BeatRefused as refusal:
        return JsonResponse({"error": str(refusal)}, status=refusal.status)
    return HttpResponse(status=204)


@login_required
@require_POST
def submit_verdict(request, trial_id: int):
    form = {
        "chosen": request.POST.get("chosen", ""),
        "probability": request.POST.get("probability", ""),
        "rationale": request.POST.get("rationale", ""),
    }
    try:
        if wait := ratelimit.wait_seconds("verdict", request.user):
            raise services.VerdictRefused(ratelimit.refusal_message("verdict", wait), status=429)
        services.verdict_submit(
            trial_id=trial_id,
            judge=request.user,
            chosen=form["chosen"],
            probability=form["probability"],
            rationale=form["rationale"],
        )
    except services.VerdictRefused as refusal:
        if refusal.status == 404:
            raise Http404(str(refusal)) from None
        return trial_page(request, trial_id, error=str(refusal), status=refusal.status, form=form)
    messages.success(request, "Verdict saved.")
    return redirect("judging:next")
