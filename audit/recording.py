"""Writing the audit log: ``record`` (called where researchers act), and the copy of the admin's own log."""

from __future__ import annotations

from contextvars import ContextVar

from axes.helpers import get_client_ip_address
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db import IntegrityError, transaction

from .models import AuditEvent

# The request being handled (set by AuditActorMiddleware); None in commands, the shell and workers.
current_request: ContextVar = ContextVar("audit_current_request", default=None)

Kind = AuditEvent.Kind


def record(kind: str, summary: str, *, actor=None, request=None, **detail) -> AuditEvent:
    """Write one event. The actor is the request's logged-in user unless given (HTTP Basic names its own);
    ``detail`` is stored as JSON (ids, table, format, ...)."""
    request = request if request is not None else current_request.get()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
    return AuditEvent.objects.create(
        kind=kind,
        summary=summary,
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        detail=detail,
        path=request.get_full_path()[:500] if request is not None else "",
        address=get_client_ip_address(request) if request is not None else None,
    )


def copy_log_entry(entry: LogEntry) -> None:
    """The admin's record of an add, change or delete (django.contrib.admin's LogEntry), as an audit event."""
    verb = {ADDITION: "Added", CHANGE: "Changed", DELETION: "Deleted"}.get(entry.action_flag, "Logged")
    what = entry.content_type.name if entry.content_type_id else "object"
    change = entry.get_change_message()
    try:
        with transaction.atomic():
            AuditEvent.objects.get_or_create(
                log_entry_id=entry.pk,
                defaults={
                    "at": entry.action_time,
                    "kind": Kind.ADMIN_EDIT,
                    "actor": entry.user,
                    "actor_name": entry.user.get_username(),
                    "summary": f"{verb} {what} “{entry.object_repr}”" + (f": {change}" if change else ""),
                    "detail": {
                        "model": entry.content_type.model_class()._meta.label if entry.content_type_id else "",
                        "object_id": entry.object_id,
                        "change": entry.change_message,
                    },
                },
            )
    except IntegrityError:  # copied meanwhile by another process
        pass


def sync_admin_log() -> None:
    """Copy every admin log entry not copied yet. Single entries are copied as they are saved (receivers.py);
    the admin writes the entries of a deletion of several objects in one bulk insert, which sends no signal."""
    copied = AuditEvent.objects.filter(log_entry_id__isnull=False).values("log_entry_id")
    for entry in LogEntry.objects.exclude(pk__in=copied).select_related("user", "content_type").order_by("pk"):
        copy_log_entry(entry)


def record_export(table: str, fmt: str, experiment_ids, *, actor=None) -> AuditEvent:
    """An export of experiments' data (admin action, export URL, export_results command)."""
    ids = sorted(experiment_ids)
    summary = f"Exported {table} as {fmt} of experiment{'s' if len(ids) != 1 else ''} {', '.join(map(str, ids))}"
    return record(Kind.EXPORT, summary, actor=actor, table=table, format=fmt, experiments=ids)
