"""Which pending turns may be generated now: those the trial's protocol says are due, live trials first.

A human debater's turn (one with an author) is never generated: it is left out here, with or without a
queue, and a trial waiting only on people is not re-sent by the reconciler."""

from __future__ import annotations

import math
import time

from django.db.models import Case, Max, Q, Value, When

from inference import base
from judging.models import Experiment, Trial, Turn
from judging.services import turns_due


def trials_with_pending_turns(experiment_id: int | None = None, *, queue: str | None = None):
    """Trials with turns still to generate: pre-generated ones being prepared, and live ones being judged; none
    of a closed experiment (judging.services.experiment_close: nobody will judge them). With ``queue``, only
    trials with such a turn of a model served on that queue."""
    live = Q(status=Trial.Status.READY, live=True)
    the_turn = {"turns__model_config__queue": queue} if queue is not None else {}
    # One filter() call, so all conditions hold for the same turn: a model's pending turn.
    trials = Trial.objects.filter(
        Q(status=Trial.Status.GENERATING) | live,
        turns__status=Turn.Status.PENDING,
        turns__author__isnull=True,
        experiment__status=Experiment.Status.LAUNCHED,
        **the_turn,
    )
    if experiment_id is not None:
        trials = trials.filter(experiment_id=experiment_id)
    return trials.distinct()


def ready_turns(
    experiment_id: int | None = None, limit: int = 8, queue: str | None = None, live_only: bool = False
) -> list[Turn]:
    """Pending turns whose trial's protocol says they may be spoken now; live trials first.

    With ``queue``, only turns of models served on that queue; with ``live_only``, only live trials' (a
    full worker asks for those often: they may pause pre-generated work). Each turn comes with its trial
    and model configuration loaded. Trials are read a few at a time, so finding a handful of turns stays
    cheap however many are pending.
    """
    ready = []
    live_first = Case(When(live=True, then=Value(0)), default=Value(1))
    trials = trials_with_pending_turns(experiment_id, queue=queue)
    if live_only:
        trials = trials.filter(live=True)
    trial_ids = list(trials.order_by(live_first, "id").values_list("id", flat=True).distinct())
    chunk = max(16, 2 * limit)
    for start in range(0, len(trial_ids), chunk):
        chunk_ids = trial_ids[start : start + chunk]
        loaded = (
            Trial.objects.filter(pk__in=chunk_ids).select_related("experiment").prefetch_related("turns__model_config")
        )
        for trial in sorted(loaded, key=lambda t: chunk_ids.index(t.pk)):
            for turn in turns_due(trial):
                if turn.author_id is not None:  # a person writes it
                    continue
                if queue is not None and (turn.model_config is None or turn.model_config.queue != queue):
                    continue
                turn.trial = trial
                ready.append(turn)
                if len(ready) >= limit:
                    return ready
    return ready


def ready_turn_ids(experiment_id: int | None = None, limit: int = 8, queue: str | None = None) -> list[int]:
    """The ids of ``ready_turns``."""
    return [turn.pk for turn in ready_turns(experiment_id, limit=limit, queue=queue)]


class LiveTurnNews:
    """Whether a take for live turns alone may find one that the worker's last full look (``look``) did not: a
    pending live turn newer than every turn then, or TAKE_INTERVAL gone by (a turn also becomes due without being
    new: the speech before it finished on another worker, a claim was released). A busy worker asks for live turns
    every LIVE_TAKE_INTERVAL (inference.base.Taker); a judge's question makes new turns, so between full looks this
    one indexed query stands in for reading every live trial and replaying its protocol."""

    def __init__(self):
        self.newest, self.looked_at = 0, -math.inf

    def look(self, read, **kwargs):
        """``read(**kwargs)``: a full look for ready turns, after which what it could see is not news. The newest
        turn is noted first, so a turn made while the trials are read is news for the next take."""
        self.newest = Turn.objects.aggregate(newest=Max("id"))["newest"] or 0
        self.looked_at = time.monotonic()
        return read(**kwargs)

    def any(self) -> bool:
        if time.monotonic() - self.looked_at >= base.TAKE_INTERVAL:
            return True
        # Looser than trials_with_pending_turns (no trial or experiment status, any queue), and so cheaper by a join
        # or two (0.3 ms a join, every 0.05 s: more than the full looks a judge on another model's queue causes):
        # a false alarm costs one full look, which applies them all.
        return Turn.objects.filter(
            id__gt=self.newest, status=Turn.Status.PENDING, author__isnull=True, trial__live=True
        ).exists()
