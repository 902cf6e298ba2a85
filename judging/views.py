"""Judge-facing pages. Every trial lookup is filtered by the logged-in judge,
and every page is built from selectors.judge_view_of_trial only."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import Http404, HttpResponse, HttpResponseNotModified, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from . import (
    feedback,
    history,
    live_stream,
    live_tag,
    orientation,
    ratelimit,
    readiness,
    selectors,
    services,
    trial_read,
)
from .debater_selectors import is_debater
from .models import Question, Trial


def _own_trial(request, trial_id: int) -> Trial:
    """The judge's trial with its question, experiment and turns in transcript order (judging.trial_read: read on
    every page, move and pushed render of a live trial, without the ORM's compile)."""
    trial = trial_read.judge_trial(trial_id, request.user.pk)
    if trial is None:
        raise Http404("No such trial in your queue.")
    return trial


def _queue_page(request, *, error: str | None = None, status: int = 200, skip_reason: str = ""):
    """The judge's queue: only its first trial can be opened or skipped; the rest are listed in order."""
    trials = list(selectors.judge_queue(request.user))
    orientation.queue_badges(trials)  # what kind of trial each is, live or not, about how long it takes
    # A judge who did not qualify and has nothing else to judge is thanked (docs/onboarding.md).
    if not trials and not error and (not_qualified := selectors.not_qualified(request.user)):
        return render(request, "judging/not_qualified.html", {"onboardings": not_qualified})
    # While trials are being prepared, queue.js reloads the page once the ready ones change.
    refresh = {"ready": [t.pk for t in trials], "url": reverse("judging:queue_json")}
    progress = selectors.judge_progress(request.user)
    return render(
        request,
        "judging/queue.html",
        {
            "next_trial": trials[0] if trials else None,
            "later_trials": trials[1:],
            "progress": progress,
            "readiness": _readiness_text(request.user, progress),
            "refresh": refresh,
            "error": error,
            "skip_reason": skip_reason,
        },
        status=status,
    )


def _queue_refusal(request, refusal: services.TrialRefused, **page):
    """A refused open, start or skip: 404 for a trial not in the judge's queue (so ids leak nothing), the
    study's instructions where they are still to be confirmed, else the queue with the reason."""
    if isinstance(refusal, services.InstructionsFirst):
        return redirect("judging:instructions", experiment_id=refusal.experiment_id)
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
def instructions(request, experiment_id: int):
    """A study's instructions and its protocols' rules, which the judge confirms (a POST) before their first trial."""
    if request.method == "POST":
        try:
            services.instructions_confirm(experiment_id=experiment_id, judge=request.user)
        except services.TrialRefused as refusal:
            raise Http404(str(refusal)) from None
        return redirect("judging:next")
    page = selectors.instructions_page(experiment_id, request.user)
    if page is None:
        raise Http404("No such study in your queue.")
    # Each protocol's own explanation, from its page fragment (the one a trial page shows), once per wording.
    rules = [
        render_to_string(
            "judging/partials/protocol_rules.html", {"protocol_text": template, "trial": view}, request=request
        )  # kept as rendered: a str method (strip) would make it plain text, shown escaped as "<p>…"
        for template, view in page.pop("examples")
    ]
    return render(request, "judging/instructions.html", page | {"rules": list(dict.fromkeys(rules))})


@login_required
def queue_json(request):
    """For the queue page to refresh itself while trials are being prepared (ids in queue order)."""
    progress = selectors.judge_progress(request.user)
    return JsonResponse(
        {
            "progress": progress,
            "ready": [t.pk for t in selectors.judge_queue(request.user)],
            "readiness": _readiness_text(request.user, progress),
        }
    )


def _readiness_text(judge, progress: dict) -> str:
    """When the judge's next trial being prepared should be ready (judging.readiness), or "" when none is: one
    query, only while trials are being prepared."""
    if not progress["preparing"]:
        return ""
    return readiness.judge_readiness(judge, timezone.now()).line("the next one")


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
    # Only a live trial's opened page polls with the tag (partials/live_status.html): others need none.
    tag = live_tag.tag_of(trial, view) if trial.live and trial.opened_at is not None else ""
    # The wording that differs between protocols lives in one fragment per protocol.
    return {
        "trial": view,
        "protocol_text": trial.protocol_spec.page_template,
        "live_tag": tag,
        # The page follows a stream instead of polling (judging.live_stream), except where a person debates: the
        # feed cannot tag those pages (live_tag.tag_of).
        "live_push": settings.LIVE_PUSH and not trial.has_person,
    }


def _outcome_context(trial: Trial) -> dict:
    """A judged trial's page: the judge's answer, and its truth and score where judging.feedback allows."""
    if trial.status != Trial.Status.JUDGED:
        return {}
    verdict = trial.verdict
    return {"verdict_given": verdict, "outcome": feedback.outcome(trial, verdict), "outcome_later": feedback.NOT_YET}


def _live_partials(request, trial: Trial, context: dict | None = None):
    context = context or _trial_context(trial)
    response = render(request, "judging/partials/live.html", context)
    if context["live_tag"]:
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
            _trial_context(trial) | {"number": orientation.trial_number(trial), "error": error},
            status=status,
        )
    return render(
        request,
        "judging/trial.html",
        _trial_context(trial)
        | _outcome_context(trial)
        | {
            "number": orientation.trial_number(trial),
            "practice_status": selectors.practice_status(trial),
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
    """The live partials of the trial page (transcript, status, moves, verdict), polled while debaters speak.

    The poll first reads the trial's tag (judging.live_tag, one narrow query) and compares it with the page's: a
    page that shows what the database has is answered 304; one that lacks only the latest characters of the
    speeches being written gets those characters (JSON, appended by trial.js: nothing is rendered); any other
    reads the trial and gets the partials. trial.js asks for the partials (X-Live-Full) when it could not append.
    """
    # A page that could not append what it was sent asks for the whole partials, whatever its tag says.
    sent = "" if request.headers.get("X-Live-Full") else request.headers.get("HX-PTag", "")
    now = live_tag.current(trial_id, request.user.pk, dead_before=services.live_dead_claim_cutoff(timezone.now()))
    if sent and now is not None and not now.dead_claim:
        news = now.news_since(sent)
        if news is not None and not news:
            return HttpResponseNotModified()  # htmx swaps nothing: the page shows this already
        if news:
            return _live_news(now, news)
    try:
        trial = _opened_trial(request, trial_id)
    except Refused as refusal:
        return HttpResponse(str(refusal), status=409, content_type="text/plain; charset=utf-8")
    context = _trial_context(trial)
    if context["live_tag"] and sent == context["live_tag"]:
        return HttpResponseNotModified()  # changed and changed back, or written between the two reads
    return _live_partials(request, trial, context)


def _live_news(now: live_tag.Current, news: live_tag.News) -> HttpResponse:
    """A poll's reply with the news (``news_body``): htmx swaps nothing, trial.js applies it."""
    content = live_stream.escaped_json(news_body(now, news))
    return HttpResponse(content, content_type="application/json", headers={"HX-PTag": now.tag, "HX-Reswap": "none"})


def news_body(now: live_tag.Current, news: live_tag.News) -> dict:
    """The characters the speeches being written have grown by, for trial.js to append (by transcript position),
    where the page shows their text (live_tag.text_shown), and their lengths for the status line; a speech whose new
    characters finish a quote, whole, in text and marked quotes (trial.js replaces its text). A poll's reply or a
    pushed event (judging.live_stream)."""
    body = {
        "append": [{"index": i, "text": text} for i, text in news.append.items()] if now.text_shown else [],
        "chars": [{"index": i, "chars": len(text)} for i, text in now.writing.items()],
    }
    if news.rewrite:
        passage = Question.objects.values_list("passage", flat=True).get(pk=now.question_id)
        body["rewrite"] = [{"index": i, "segments": now.segments(i, passage)} for i in news.rewrite]
    return body


@login_required
@require_GET
async def trial_stream(request, trial_id: int):
    """The live trial page's updates pushed as server-sent events (judging.live_stream), where the web server is an
    ASGI server (settings.LIVE_PUSH; under WSGI a held stream would take a whole worker: 404, the page polls).

    Starts from the tag of what the page shows (``?tag=``, or ``Last-Event-ID`` when the browser reconnects). A trial
    the judge may not read is refused as a poll is (404, 409), before anything is streamed."""
    # Only under Django's ASGI handler: run by a WSGI handler, a stream would hold a whole thread for minutes.
    if not settings.LIVE_PUSH or not isinstance(request, ASGIRequest):
        raise Http404("this server does not push live updates")
    feed = live_stream.feed()
    try:
        judge_id = await feed.in_thread(_stream_judge, request, trial_id)
    except Refused as refusal:
        return HttpResponse(str(refusal), status=409, content_type="text/plain; charset=utf-8")
    page_tag = request.headers.get("Last-Event-ID") or request.GET.get("tag", "")
    # What this request read before (its user, on a cache miss) it read on a connection of its own thread, which
    # would be held until the stream ends: given back now. The stream reads in the feed's threads.
    await sync_to_async(connections.close_all)()
    events = live_stream.events(trial_id, judge_id, page_tag, news_body, lambda: pushed_partials(request, trial_id))
    # No caching and no buffering by a proxy (nginx honours X-Accel-Buffering) between the server and the page.
    return StreamingHttpResponse(
        events, content_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def pushed_partials(request, trial_id: int) -> tuple[str, str] | None:
    """The live partials a stream pushes (rendered as a poll renders them) and their tag; None when the judge may no
    longer read the trial."""
    try:
        trial = _opened_trial(request, trial_id)
    except (Refused, Http404):
        return None
    context = _trial_context(trial)
    return render_to_string("judging/partials/live.html", context, request), context["live_tag"]


def _stream_judge(request, trial_id: int) -> int:
    """The judge, once the trial is found to be their opened live trial by the poll's one query; else refused as a
    poll would be (Http404, Refused), or, where a person debates (the feed cannot tag the page), Refused."""
    judge = request.user.pk
    if live_tag.current(trial_id, judge, dead_before=services.live_dead_claim_cutoff(timezone.now())) is None:
        _opened_trial(request, trial_id)
        raise Refused("this trial's page is not pushed its updates: it polls")
    return judge


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
            raise ratelimit.refusal("move", wait, services.MoveRefused)
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
            return ratelimit.with_retry_after(JsonResponse({"error": str(refusal)}, status=refusal.status), refusal)
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
            raise ratelimit.refusal("verdict", wait, services.VerdictRefused)
        verdict = services.verdict_submit(
            trial_id=trial_id,
            judge=request.user,
            chosen=form["chosen"],
            probability=form["probability"],
            rationale=form["rationale"],
        )
    except services.VerdictRefused as refusal:
        if refusal.status == 404:
            raise Http404(str(refusal)) from None
        page = trial_page(request, trial_id, error=str(refusal), status=refusal.status, form=form)
        return ratelimit.with_retry_after(page, refusal)
    messages.success(request, "Verdict saved.")
    # Where the judge may see the answer now (immediate feedback, practice), their trial shows it before they go on.
    if feedback.revealed(verdict.trial):
        return redirect("judging:trial", trial_id=trial_id)
    return redirect("judging:next")


@login_required
def judge_history(request):
    """The judge's judged trials, their truth and scores where shown, running accuracy and calibration."""
    return render(request, "judging/history.html", history.judge_history(request.user))
