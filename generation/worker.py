"""A worker's generation loops: serve every ready turn on a queue, one model configuration at a time."""

from __future__ import annotations

import time

from django.conf import settings

from .selection import LiveTurnNews, ready_turns
from .session import GenerationSession


def generate_batch(
    experiment_id: int | None = None, batch_size: int | None = None, queue: str | None = None, claimed_by: str = ""
) -> int:
    """Claim up to ``batch_size`` ready turns once, generate them, record them; returns turns written.

    One step at a time, for commands and tests; workers run ``generate_ready_turns``.
    """
    batch_size = batch_size or settings.GENERATION_BATCH_SIZE
    configs, by_config = {}, {}
    for turn in ready_turns(experiment_id, limit=batch_size, queue=queue):
        configs[turn.model_config_id] = turn.model_config
        by_config.setdefault(turn.model_config_id, []).append(turn.pk)
    written = 0
    for config_id, group in by_config.items():

        def pick(limit, urgent=0, pregenerated=None, group=group):
            taken = group[:limit]
            del group[:limit]
            return taken

        written += GenerationSession(configs[config_id], pick, claimed_by, turns_at_once=len(group)).run()
    return written


def generate_ready_turns(
    queue: str | None = None, claimed_by: str = "", max_seconds: float | None = None, on_backlog=None, should_stop=None
) -> int:
    """A worker's generation loop: generate every ready turn on ``queue``, continuously, until none
    are ready or ``max_seconds`` (default GENERATION_SESSION_SECONDS) have passed; returns turns written.

    It serves every experiment on the queue, live trials first, so a judge's question joins the
    batch being written whatever experiment that batch is for. One model configuration at a time:
    that of the first ready turn; a live turn of another model on the same queue ends the current
    session as soon as its running turns are done (one queue per model avoids that wait).
    ``on_backlog()`` is called once if more turns are ready than this worker has room for, so that
    another worker can be asked to help. Once ``should_stop()`` is true (the worker is shutting
    down) no new turns are taken; those being written are finished.
    """
    deadline = time.monotonic() + (max_seconds or settings.GENERATION_SESSION_SECONDS)

    def over() -> bool:
        return time.monotonic() >= deadline or (should_stop is not None and should_stop())

    written = 0
    backlog_reported = False
    news = LiveTurnNews()
    while not over():
        first = ready_turns(limit=1, queue=queue)
        if not first:
            break
        config = first[0].model_config

        def pick(limit, urgent=0, pregenerated=None, config=config):
            """Up to ``limit`` turns, up to ``urgent`` more of live trials (they pause pre-generated rows), and of
            those at most ``pregenerated`` (None: any number) of trials that are not live."""
            nonlocal backlog_reported
            if over():
                return []
            if not limit and not news.any():  # a take for live turns alone, and none new since the last full look
                return []
            pregenerated = limit if pregenerated is None else min(limit, pregenerated)
            if not pregenerated:  # only live turns may start: in rows kept for them, or by pausing pre-generated ones
                turns = news.look(ready_turns, limit=limit + urgent, queue=queue, live_only=True)
            else:
                turns = news.look(ready_turns, limit=limit + urgent + 1, queue=queue)  # every model's, live first
            mine = [turn for turn in turns if turn.model_config_id == config.pk]
            live = [turn.pk for turn in mine if turn.trial.live][: limit + urgent]
            others = [turn.pk for turn in mine if not turn.trial.live]
            room = max(0, min(limit - len(live), pregenerated))
            # Ready turns this session leaves (no room, or another model's): another worker may help, once.
            if len(turns) > len(live) + room and on_backlog is not None and not backlog_reported:
                backlog_reported = True
                on_backlog()
            if turns and turns[0].trial.live and turns[0].model_config_id != config.pk:
                return []  # a judge waits on another model of this queue: finish this batch, then serve it
            return live + others[:room]

        session = GenerationSession(config, pick, claimed_by)
        written += session.run()
        # Nothing claimed: another worker took what was ready. Failed: the caller retries after a pause.
        if not session.claimed or session.failed:
            break
    return written
