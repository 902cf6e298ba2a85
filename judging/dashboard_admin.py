"""The progress dashboard's pages in the admin (docs/dashboard.md), beside the experiment list: every experiment's
progress, and one experiment's with a row per judge. Each page polls its own body every few seconds (htmx); the
figures are judging.dashboard's."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from . import dashboard


def _may_view(request) -> bool:
    user = request.user
    return user.is_active and user.is_staff and user.has_perm("judging.view_experiment")


def _poll(view):
    """A poll: a plain 403 to anyone who may not see it (never the login page, which htmx would swap into the
    dashboard when a session ends; the page itself sends them to log in again at its next load)."""

    def poll(request, *args, **kwargs):
        if not _may_view(request):
            return HttpResponseForbidden("Log in again as a researcher to see the dashboard.")
        return view(request, *args, **kwargs)

    return poll


def urls(model_admin) -> list:
    """The dashboard's URLs, under the experiment list (``admin:judging_experiment_dashboard`` and the rest)."""
    site = model_admin.admin_site

    def page(view):
        def guarded(request, *args, **kwargs):
            if not _may_view(request):
                raise PermissionDenied
            return view(request, *args, context=site.each_context(request), **kwargs)

        return site.admin_view(guarded)

    return [
        path("dashboard/", page(overview), name="judging_experiment_dashboard"),
        path("dashboard/poll/", _poll(overview), name="judging_experiment_dashboard_poll"),
        path("dashboard/<int:experiment_id>/", page(detail), name="judging_experiment_dashboard_detail"),
        path("dashboard/<int:experiment_id>/poll/", _poll(detail), name="judging_experiment_dashboard_detail_poll"),
    ]


def _numbers(now) -> dict:
    return {
        "now": now,
        "poll_seconds": dashboard.POLL_SECONDS,
        "window": dashboard.readable(dashboard.RATE_WINDOW),
        "min_verdicts": dashboard.MIN_VERDICTS,
    }


def overview(request, context=None):
    """Every experiment's progress (the page, or its body alone when ``context`` is None: the poll)."""
    now = timezone.now()
    body = {"progress": dashboard.experiments_progress(now=now)} | _numbers(now)
    if context is None:
        return render(request, "admin/judging/experiment/dashboard_rows.html", body)
    return render(
        request, "admin/judging/experiment/dashboard.html", context | body | {"title": "Experiments: live progress"}
    )


def detail(request, experiment_id: int, context=None):
    """One experiment's progress with a row per judge (the page, or its body alone: the poll)."""
    now = timezone.now()
    found = dashboard.experiments_progress(now=now, experiment_id=experiment_id)
    if not found:
        raise Http404("No such experiment.")
    body = {"p": found[0], "judges": dashboard.judges_progress(experiment_id, now=now)} | _numbers(now)
    if context is None:
        return render(request, "admin/judging/experiment/dashboard_detail_body.html", body)
    title = f"Experiment {experiment_id}: live progress"
    return render(request, "admin/judging/experiment/dashboard_detail.html", context | body | {"title": title})
