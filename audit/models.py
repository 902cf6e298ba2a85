from django.conf import settings
from django.db import models
from django.utils import timezone


class Kind(models.TextChoices):
    LAUNCH = "launch", "launch"
    EXPORT = "export", "export"
    ADMIN_ACTION = "admin-action", "admin action"
    ADMIN_EDIT = "admin-edit", "admin add, change or delete"
    USER = "user", "user or permission change"


class AuditEvent(models.Model):
    """One thing a researcher (or a command) did. Written by ``audit.record`` only; never changed or deleted
    through the admin."""

    Kind = Kind

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept when the user is deleted; empty where no one was logged in (a management command, the shell).
    actor_name = models.CharField(max_length=150, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    summary = models.TextField()
    detail = models.JSONField(default=dict, blank=True)
    # The request it came from; empty for a management command, the shell or a worker.
    path = models.CharField(max_length=500, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    # The django.contrib.admin LogEntry this event copies (admin edits), so each is copied once.
    log_entry_id = models.PositiveIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=Kind.values),
                name="audit_event_kind_known",
            )
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or '(no user)'}: {self.summary}"
