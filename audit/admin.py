"""The audit log in the admin: read-only (nobody adds, changes or deletes events), filterable, exportable as CSV
(the rows the list shows, with its filters and search)."""

from __future__ import annotations

import csv
import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.urls import path

from .models import AuditEvent
from .recording import Kind, record, sync_admin_log

CSV_COLUMNS = ["at", "actor", "kind", "summary", "detail", "path", "address"]


class _Echo:
    def write(self, value):
        return value


def csv_rows(events):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for e in events.iterator():
        yield writer.writerow(
            [e.at.isoformat(), e.actor_name, e.kind, e.summary, json.dumps(e.detail), e.path, e.address or ""]
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_name", "kind", "summary", "address"]
    list_filter = ["kind", "at"]
    search_fields = ["summary", "actor_name"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_csv), name="audit_auditevent_export")
        return [export] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        sync_admin_log()  # the admin's bulk deletions were logged without a signal
        return super().changelist_view(request, extra_context)

    def export_csv(self, request):
        """The events the list shows with the same filters and search (``export.csv?kind=launch``), as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        sync_admin_log()
        events = self.get_changelist_instance(request).get_queryset(request)
        record(
            Kind.EXPORT, f"Audit log exported ({events.count()} events)", table="audit", query=request.GET.urlencode()
        )
        response = StreamingHttpResponse(csv_rows(events), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return response


class AuditedActions:
    """ModelAdmin mixin: every admin action a researcher runs is recorded (its name, the objects selected), once
    it has run. Left out: deleting the selected objects (the admin's own log records each deletion), and actions
    marked ``audited = True``, which record what they did themselves (exports)."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        return {
            name: (func if _self_recorded(name, func) else _recorded(func, name, description), name, description)
            for name, (func, _, description) in actions.items()
        }


def _self_recorded(name: str, func) -> bool:
    return name == "delete_selected" or getattr(func, "audited", False)


def _recorded(func, name: str, description: str):
    def action(modeladmin, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True))
        response = func(modeladmin, request, queryset)
        label = modeladmin.model._meta
        summary = f"{description} ({label.verbose_name_plural} {', '.join(map(str, ids))})"
        record(Kind.ADMIN_ACTION, summary, action=name, model=label.label, ids=ids)
        return response

    return action
