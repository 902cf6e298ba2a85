"""A generation session's liveness: a daemon thread that refreshes the claims the session holds every
CLAIM_HEARTBEAT_SECONDS, whatever its generation loop is doing.

The loop itself can be blocked for a long time by one step (a model load, a long prefill, a scoring model),
so a refresh between its steps could not tell a busy worker from a dead one. This thread can: while the
process lives, its turns' ``claimed_at`` stays within seconds of now, so a live trial's turn whose claim is
older than LIVE_DEAD_CLAIM_SECONDS belongs to a dead worker and is released at once
(``judging.services.dead_live_claims_release``).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from judging.models import Turn

log = logging.getLogger(__name__)

# How long ``stop`` waits for a beat in progress to end (a database that hangs must not hang the worker;
# the thread is a daemon, and a late beat writes only claims that are still held).
STOP_WAIT_SECONDS = 30


def single_process_database() -> bool:
    """Whether the database lives in this process only (in-memory SQLite: the tests'), where the heartbeat stays
    off: no other process can find a claim stale, and a second connection's writes would make this process's
    own queries fail (SQLite's shared-cache table locks are not waited for: "database table is locked")."""
    return connection.vendor == "sqlite" and connection.is_in_memory_db()


class ClaimHeartbeat:
    """Refreshes ``claimed_at`` of the turns ``claims_held()`` names, as (turn id, claim token) pairs, every
    ``period`` seconds (default CLAIM_HEARTBEAT_SECONDS) in its own thread, on its own database connection.

    ``claims_held`` is called from that thread: it must return a snapshot, not a view of data the caller's
    thread changes. Each write goes through ``held(token)``, so a claim released meanwhile (its turn given to
    another worker) is never refreshed. Use ``start()`` and ``stop()``, or ``with ClaimHeartbeat(...):``.
    """

    def __init__(self, claims_held: Callable[[], Iterable[tuple[int, str]]], period: float | None = None):
        self.claims_held = claims_held
        self.period = period if period is not None else settings.CLAIM_HEARTBEAT_SECONDS
        self.beats = 0  # completed beats (for tests and logs)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claim-heartbeat", daemon=True)

    def start(self) -> ClaimHeartbeat:
        if single_process_database():
            return self
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and wait for the thread to end (its database connection closed)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_SECONDS)
            if self._thread.is_alive():
                log.warning("the claim heartbeat did not stop within %d s (a database call hangs?)", STOP_WAIT_SECONDS)

    def __enter__(self) -> ClaimHeartbeat:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def beat(self) -> int:
        """Refresh the held claims now; returns the turns refreshed."""
        turn_ids_by_token = defaultdict(list)
        for turn_id, token in self.claims_held():
            turn_ids_by_token[token].append(turn_id)
        now = timezone.now()
        return sum(
            Turn.objects.filter(pk__in=turn_ids).held(token).update(claimed_at=now)
            for token, turn_ids in turn_ids_by_token.items()
        )

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.period):
                try:
                    self.beat()
                    self.beats += 1
                except Exception as exc:  # the database is away for a moment: try again at the next beat
                    log.warning("could not refresh the claims of the turns being written: %s", exc)
                    connections.close_all()  # a broken connection is opened afresh next time
        finally:
            connections.close_all()  # this thread's connections only (Django's are per thread)
