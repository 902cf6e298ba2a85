"""Finding objects named on a management command's line."""

from django.core.management.base import CommandError


def by_id_or_name(model, ref: str, what: str):
    """The object whose primary key is ``ref`` (if it is a number) or whose name is ``ref``."""
    found = model.objects.filter(pk=int(ref)) if ref.isdigit() else model.objects.filter(name=ref)
    obj = found.first()
    if obj is None:
        raise CommandError(f"no {what} {ref!r}")
    return obj
