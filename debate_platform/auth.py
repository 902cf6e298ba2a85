"""The logged-in user of each request, read from the cache instead of the database.

Django reads the session's user from the database on every request (``ModelBackend.get_user``); a judge's live page
polls every 0.4 s, and that read was a quarter of a poll's time in the web workers (issue 12's load test). Where
the cache is shared by every process (Redis: ``USER_CACHE_SECONDS`` > 0, set in settings), this backend keeps each
user there for up to ``USER_CACHE_SECONDS`` and drops it whenever the user is saved or deleted (a password change, a
deactivation, a new last login): at once, and again when the saving transaction commits, so that a request that
read the old row in between cannot leave it cached. A changed password therefore ends the user's other sessions
at their first request after the commit (Django checks the session's hash against the user read here). A change
made without saving the model (a queryset ``update()`` of users, which this code base does not make) takes effect
within ``USER_CACHE_SECONDS``. Where the cache is per process, nothing is cached (one process's save could not
drop another's copy). The backend is configured either way, so sessions (which store the path of the backend that
logged them in) survive a change of cache.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.db import transaction


def _key(user_id) -> str:
    return f"auth:user:{user_id}"


class CachedModelBackend(ModelBackend):
    """Django's ModelBackend (passwords, permissions, ``is_active``), its ``get_user`` served from the cache."""

    def get_user(self, user_id):
        if not settings.USER_CACHE_SECONDS:
            return super().get_user(user_id)
        user = cache.get(_key(user_id))
        if user is None:
            user = super().get_user(user_id)
            if user is not None:
                cache.set(_key(user_id), user, settings.USER_CACHE_SECONDS)
        return user


def forget_user(user_id) -> None:
    """Drop a saved or deleted user from the cache (debate_platform.receivers): at once, and again when the saving
    transaction commits."""
    key = _key(user_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))  # at once where no transaction is open
