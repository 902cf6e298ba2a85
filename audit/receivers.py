"""Audit events from signals: the admin's log entries as they are written, and every change of users, groups
and permissions by any path (admin, shell, createsuperuser, changepassword), by whoever the request's user is."""

from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from .recording import Kind, copy_log_entry, record

User = get_user_model()
# What is recorded of a user's change (a password is recorded as changed, never its hash).
WATCHED = ("username", "is_active", "is_staff", "is_superuser", "password")


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_copy_log_entry")
def log_entry_saved(sender, instance, created, **kwargs):
    if created:
        copy_log_entry(instance)


@receiver(pre_save, sender=User, dispatch_uid="audit_user_before")
def user_before(sender, instance, update_fields=None, **kwargs):
    if instance.pk is None or (update_fields is not None and not set(update_fields) & set(WATCHED)):
        return  # a new user, or a save of other fields only (a login's last_login)
    instance._audit_before = User.objects.filter(pk=instance.pk).values(*WATCHED).first()


@receiver(post_save, sender=User, dispatch_uid="audit_user_saved")
def user_saved(sender, instance, created, **kwargs):
    name = instance.get_username()
    if created:
        flags = {f: getattr(instance, f) for f in ("is_active", "is_staff", "is_superuser")}
        record(Kind.USER, f"User “{name}” created", user=name, **flags)
        return
    before, instance._audit_before = getattr(instance, "_audit_before", None), None
    if not before:
        return
    changed = {f: [before[f], getattr(instance, f)] for f in WATCHED[:-1] if before[f] != getattr(instance, f)}
    parts = [f"{f} {old} → {new}" for f, (old, new) in changed.items()]
    if before["password"] != instance.password:
        changed["password"] = "changed"
        parts.append("password changed")
    if parts:
        record(Kind.USER, f"User “{name}” changed: {', '.join(parts)}", user=name, changed=changed)


@receiver(post_delete, sender=User, dispatch_uid="audit_user_deleted")
def user_deleted(sender, instance, **kwargs):
    record(Kind.USER, f"User “{instance.get_username()}” deleted", user=instance.get_username())


@receiver(post_save, sender=Group, dispatch_uid="audit_group_saved")
def group_saved(sender, instance, created, **kwargs):
    record(Kind.USER, f"Group “{instance.name}” {'created' if created else 'saved'}", group=instance.name)


@receiver(post_delete, sender=Group, dispatch_uid="audit_group_deleted")
def group_deleted(sender, instance, **kwargs):
    record(Kind.USER, f"Group “{instance.name}” deleted", group=instance.name)


def _label(obj) -> str:
    if isinstance(obj, Permission):
        return f"{obj.content_type.app_label}.{obj.codename}"
    return obj.get_username() if isinstance(obj, User) else str(obj)


# What a relation is called from each of its sides: (forward, reverse).
RELATIONS = {
    "groups": ("groups", "members"),
    "user_permissions": ("permissions", "users given it"),
    "permissions": ("permissions", "groups given it"),
}


def _membership_changed(relation: str, sender, instance, action, reverse, model, pk_set, **kwargs):
    """A user's groups or permissions, or a group's permissions, added, removed or cleared (from either side)."""
    if action == "pre_clear":  # clear() names no rows: the ones there now are removed
        rows = sender.objects.filter(**{type(instance)._meta.model_name: instance.pk})
        pk_set, action = set(rows.values_list(model._meta.model_name, flat=True)), "post_remove"
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    names = sorted(_label(o) for o in model.objects.filter(pk__in=pk_set))
    side = RELATIONS[relation][1 if reverse else 0]
    kind = str(type(instance)._meta.verbose_name)
    verb = "added" if action == "post_add" else "removed"
    summary = f"{kind.capitalize()} “{_label(instance)}”: {side} {verb}: {', '.join(names)}"
    record(Kind.USER, summary, **{kind: _label(instance), side: names, "added": action == "post_add"})


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="audit_user_groups")
def user_groups_changed(**kwargs):
    _membership_changed("groups", **kwargs)


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="audit_user_permissions")
def user_permissions_changed(**kwargs):
    _membership_changed("user_permissions", **kwargs)


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="audit_group_permissions")
def group_permissions_changed(**kwargs):
    _membership_changed("permissions", **kwargs)
