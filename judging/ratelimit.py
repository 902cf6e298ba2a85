"""Rate limits on posts, per judge (live moves, verdicts) or per address (joins by invite links): at most N in each
window of S seconds (settings.RATE_LIMITS).

A fixed window counted in Django's cache (Redis where several web processes serve, see settings.CACHES), keyed
by the user and the window's number (windows of S seconds from the epoch). Time is the server's clock,
``django.utils.timezone.now``, so a test moves it (the ``server_clock`` fixture) instead of waiting."""

from __future__ import annotations

import math

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

KEEP_SECONDS = 3600


def wait_seconds(scope: str, user) -> int:
    """Count this post; 0 if it is within the limit, else the seconds until the judge may post again."""
    return wait_seconds_for(scope, user.pk)


def wait_seconds_for(scope: str, who) -> int:
    """``wait_seconds`` for posts counted by anything that names who sends them (a user's id, an address)."""
    limit, window = settings.RATE_LIMITS[scope]
    now = timezone.now().timestamp()
    number = math.floor(now / window)
    key = f"ratelimit:{scope}:{who}:{window}:{number}"
    # The first post of the window creates its counter. The cache's expiry (its own clock) only clears old
    # counters away: an hour's margin, so no counter goes while its window is still open.
    cache.add(key, 0, timeout=window + KEEP_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # cleared between add and incr
        cache.set(key, 1, timeout=window + KEEP_SECONDS)
        count = 1
    if count <= limit:
        return 0
    return max(1, math.ceil((number + 1) * window - now))


def refusal(scope: str, seconds: int, refused: type[Exception]) -> Exception:
    """The refusal of a post beyond the limit: a ``refused`` (message, status 429) that knows when to try again."""
    error = refused(refusal_message(scope, seconds), 429)
    error.retry_after = seconds
    return error


def with_retry_after(response, error: Exception):
    """``response`` with the Retry-After header (RFC 9110) where ``error`` is a rate-limit refusal: the seconds until
    the posts are counted afresh, so a script or client can wait without parsing the message."""
    if seconds := getattr(error, "retry_after", None):
        response["Retry-After"] = str(seconds)
    return response


def refusal_message(scope: str, seconds: int) -> str:
    limit, window = settings.RATE_LIMITS[scope]
    what = {"move": "moves", "verdict": "verdict submissions", "join": "attempts to join from your address"}[scope]
    return (
        f"Too many {what} in a short time (at most {limit} in {window} seconds). "
        f"Please wait {seconds} second{'s' if seconds != 1 else ''} and try again; nothing was changed."
    )
