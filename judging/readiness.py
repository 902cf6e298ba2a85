"""When a judge's next trial being prepared should be ready: the speeches still to write before it, at the pace the
worker kept over the last minutes. Shown in the judge's queue and printed by the demo (``manage.py demo_progress``).

An approximation, said as one (README *Demo*):

- The judge's next trial is their pre-generated trial being prepared with the lowest id: the worker writes live
  trials' turns first, then by trial id (``generation.selection.ready_turns``).
- The speeches before it are the model-written turns not yet done (pending or running) of live trials being judged
  and of trials being prepared with an id up to it, on the model queues its own turns use (another queue's worker
  runs beside it, not before it). A round's turns wait for the round before, so the worker interleaves trials; the
  count is what it must write, not the order it writes in.
- The pace is the turns done on those queues in the last ``WINDOW``, over the time since the first of them was
  started (its ``finished_at`` less the longest ``wall_seconds`` among them: the worker runs several rows at once,
  so time per turn is measured across them, not from one turn's seconds) or since the window began, if later.
  Idle time since the last turn slows the pace, as it should. Below ``MIN_TURNS`` there is no estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q, Subquery

from .dashboard import readable
from .models import Experiment, Trial, Turn

WINDOW = timedelta(minutes=10)
MIN_TURNS = 3
NO_ESTIMATE = "no estimate yet: the first speeches are being written"


@dataclass(frozen=True)
class Readiness:
    """The speeches ``left`` before the next trial is ready (``written`` of them done already), and the pace."""

    left: int
    written: int
    finished: int  # turns done in the window, the pace's sample
    seconds_per_turn: float | None  # None: too few turns to say

    @property
    def eta(self) -> timedelta | None:
        if self.seconds_per_turn is None:
            return None
        return timedelta(seconds=self.left * self.seconds_per_turn)

    @property
    def text(self) -> str | None:
        """The wait in words ("about 4 min", "less than a minute"); None without an estimate."""
        if self.eta is None:
            return None
        if self.eta < timedelta(minutes=1):
            return "less than a minute"
        return f"about {readable(self.eta)}"

    def line(self, what: str) -> str:
        """``what`` ready in the wait ("the next one ready in about 4 min"), or ``NO_ESTIMATE``."""
        return NO_ESTIMATE if self.text is None else f"{what} ready in {self.text}"


def estimate(
    *,
    left: int,
    written: int,
    finished: int,
    first_finished: datetime | None,
    longest_seconds: float | None,
    now: datetime,
) -> Readiness:
    """The readiness of ``left`` turns at the pace of ``finished`` turns done in the ``WINDOW`` before ``now``, the
    first of them done at ``first_finished`` after at most ``longest_seconds`` of generation."""
    if finished < MIN_TURNS or first_finished is None:
        return Readiness(left, written, finished, None)
    started = max(now - WINDOW, first_finished - timedelta(seconds=longest_seconds or 0))
    seconds = (now - started).total_seconds()
    if seconds <= 0:  # a clock behind the turns' own: nothing to measure with
        return Readiness(left, written, finished, None)
    return Readiness(left, written, finished, seconds / finished)


def judge_readiness(judge, now: datetime) -> Readiness:
    """The readiness of ``judge``'s next trial being prepared, in one query. Where none is, nothing matches: no
    turns left and no pace (``NO_ESTIMATE``)."""
    target = Subquery(
        Trial.objects.filter(
            judge=judge,
            status=Trial.Status.GENERATING,
            live=False,
            experiment__status=Experiment.Status.LAUNCHED,
        )
        .order_by("id")
        .values("id")[:1]
    )
    queues = Turn.objects.filter(trial_id=target, model_config__isnull=False).values("model_config__queue")
    # What the worker writes before the target: live trials being judged, and trials being prepared up to it
    # (of launched experiments, as generation.selection.trials_with_pending_turns).
    before = Q(trial__live=True, trial__status=Trial.Status.READY) | Q(
        trial__status=Trial.Status.GENERATING, trial_id__lte=target
    )
    open_turn = Q(status__in=[Turn.Status.PENDING, Turn.Status.RUNNING], author__isnull=True)
    done_before = Q(status=Turn.Status.DONE, trial__status=Trial.Status.GENERATING, trial_id__lte=target)
    window = Q(status=Turn.Status.DONE, finished_at__gt=now - WINDOW, finished_at__lte=now)
    figures = Turn.objects.filter(
        Q(before, open_turn) | done_before | window,
        trial__experiment__status=Experiment.Status.LAUNCHED,
        model_config__queue__in=queues,
    ).aggregate(
        left=Count("id", filter=Q(before, open_turn)),
        written=Count("id", filter=done_before),
        finished=Count("id", filter=window),
        first_finished=Min("finished_at", filter=window),
        longest_seconds=Max("wall_seconds", filter=window),
    )
    return estimate(**figures, now=now)
