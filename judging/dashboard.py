"""The researchers' progress dashboard (docs/dashboard.md): per experiment, its turns and trials by status and a
projected time to completion; per judge of one experiment, their progress and last activity.

Every figure comes from aggregate queries grouped by experiment (or by judge): a page costs the same few queries
whatever the numbers of experiments, trials, turns or judges, so its poll every ``POLL_SECONDS`` stays cheap.
Callers pass ``now`` (the server's clock, read once by the view), so the figures depend on nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q, Sum
from scipy.stats import chi2

from .models import Experiment, Seat, Trial, Turn
from .protocols import registry

# How often the pages ask for fresh figures.
POLL_SECONDS = 10
# The pace of the projection: verdicts in this window before now (or since launch, if later) ...
RATE_WINDOW = timedelta(hours=6)
# ... of which at least this many, else "not enough data" (a rate from 1 or 2 verdicts projects nothing).
MIN_VERDICTS = 5
# The range's confidence: the exact (Garwood) Poisson interval of the window's count.
LEVEL = 0.95

S = Trial.Status
STUDY, PRACTICE, ATTENTION = Trial.Role.STUDY, Trial.Role.PRACTICE, Trial.Role.ATTENTION
# A trial that may still be judged: waiting for its turns, or ready (opened or not).
OPEN_STATUSES = [S.GENERATING, S.READY]


def mode_label(experiment: Experiment) -> str:
    """The experiment's mode, short, saying where arms are live whatever the mode (sandwiching)."""
    always_live = {a for a in experiment.conditions if registry.PROTOCOLS[registry.ARMS[a].protocol].always_live}
    if experiment.mode == Experiment.Mode.LIVE or always_live == set(experiment.conditions):
        return "live"
    return "pre-generated" + (" (sandwiching live)" if always_live else "")


def readable(duration: timedelta) -> str:
    """A duration in the unit a person reads it in: minutes, hours or days."""
    minutes = duration.total_seconds() / 60
    if minutes < 90:
        return f"{max(1, round(minutes))} min"
    if minutes < 48 * 60:
        return f"{_one_decimal(minutes / 60)} h"
    return f"{_one_decimal(minutes / 1440)} days"


def _one_decimal(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


@dataclass(frozen=True)
class Projection:
    """Time to judge the ``remaining`` trials at the pace of the last ``hours`` (``verdicts`` given in them).

    A projection, not a statistic: ``low``-``high`` is what the remaining trials take at the ends of the 95% exact
    Poisson interval of that pace. It assumes the pace holds (the same judges keep coming at the same rate) and
    leaves out the chance timing of the remaining verdicts themselves; see docs/dashboard.md."""

    state: str  # "draft", "closed", "complete", "no data" or "projected"
    remaining: int = 0
    verdicts: int = 0
    hours: float = 0.0
    low: timedelta | None = None
    high: timedelta | None = None

    @property
    def text(self) -> str:
        if self.state == "draft":
            return "not launched"
        if self.state == "closed":
            return "closed"
        if self.state == "complete":
            return "nothing left to judge"
        if self.state == "no data":
            verdicts = f"{self.verdicts} verdict{'s' * (self.verdicts != 1)}"
            return f"not enough data ({verdicts} in {self._window}; a projection needs {MIN_VERDICTS})"
        return f"{readable(self.low)} to {readable(self.high)}"

    @property
    def basis(self) -> str:
        """What the projection rests on, said beside it."""
        if self.state != "projected":
            return ""
        return (
            f"{self.remaining} trial{'s' * (self.remaining != 1)} left at the pace of {self._window} "
            f"({self.verdicts} verdicts, {self.verdicts / self.hours:.1f} an hour; 95% Poisson range)"
        )

    @property
    def _window(self) -> str:
        window = timedelta(hours=self.hours)
        return f"the last {readable(window)}" + (" (since launch)" if window < RATE_WINDOW else "")


def projection(*, remaining: int, verdicts: int, hours: float) -> Projection:
    """The time ``remaining`` trials take at a pace of ``verdicts`` in ``hours``, as a range (``Projection``)."""
    if remaining == 0:
        return Projection("complete")
    if verdicts < MIN_VERDICTS or hours <= 0:
        return Projection("no data", remaining=remaining, verdicts=verdicts, hours=hours)
    alpha = 1 - LEVEL
    # Exact interval of a Poisson mean from one count (Garwood 1936), as verdicts in the window.
    mean_low = chi2.ppf(alpha / 2, 2 * verdicts) / 2
    mean_high = chi2.ppf(1 - alpha / 2, 2 * verdicts + 2) / 2
    return Projection(
        "projected",
        remaining=remaining,
        verdicts=verdicts,
        hours=hours,
        low=timedelta(hours=remaining * hours / mean_high),
        high=timedelta(hours=remaining * hours / mean_low),
    )


@dataclass
class ExperimentProgress:
    """One experiment's figures. Trial counts are of study trials (what the analysis reads) unless named
    otherwise; turn counts are of every trial's debater turns (judges' questions are not generated)."""

    experiment: Experiment
    mode: str
    # Debater turns by status (as they exist: a live trial's are made round by round once its judge opens it).
    turns_done: int = 0
    turns_pending: int = 0
    turns_running: int = 0
    turns_failed: int = 0
    # Live trials (any role) not opened yet: their turns do not exist until their judge starts them.
    live_not_started: int = 0
    live_trials: int = 0
    study: int = 0
    generating: int = 0  # waiting for their turns
    waiting: int = 0  # ready, not opened by their judge yet
    in_progress: int = 0  # opened, not judged
    judged: int = 0
    skipped: int = 0
    failed: int = 0
    withdrawn: int = 0
    practice: int = 0
    practice_judged: int = 0
    attention: int = 0
    attention_judged: int = 0
    judges: int = 0  # the experiment's judges (invite seats included, taken or not)
    seats: int = 0
    seats_taken: int = 0
    # Trials (any role) still to judge, and those of them whose judge is an invite seat nobody has taken yet.
    remaining: int = 0
    remaining_untaken: int = 0
    last_verdict: datetime | None = None
    eta: Projection = field(default_factory=lambda: Projection("draft"))

    @property
    def turns_total(self) -> int:
        return self.turns_done + self.turns_pending + self.turns_running + self.turns_failed


def _trial_counts(trials, since: datetime, group: str) -> dict:
    """Trials counted by status and role, grouped by ``group`` (one query)."""
    study = Q(role=STUDY)
    return {
        row[group]: row
        for row in trials.values(group)
        .annotate(
            study=Count("id", filter=study),
            generating=Count("id", filter=study & Q(status=S.GENERATING)),
            waiting=Count("id", filter=study & Q(status=S.READY, opened_at__isnull=True)),
            in_progress=Count("id", filter=study & Q(status=S.READY, opened_at__isnull=False)),
            judged=Count("id", filter=study & Q(status=S.JUDGED)),
            skipped=Count("id", filter=study & Q(status=S.SKIPPED)),
            failed=Count("id", filter=study & Q(status=S.FAILED)),
            withdrawn=Count("id", filter=study & Q(status=S.WITHDRAWN)),
            practice=Count("id", filter=Q(role=PRACTICE)),
            practice_judged=Count("id", filter=Q(role=PRACTICE, status=S.JUDGED)),
            attention=Count("id", filter=Q(role=ATTENTION)),
            attention_judged=Count("id", filter=Q(role=ATTENTION, status=S.JUDGED)),
            live_trials=Count("id", filter=Q(live=True)),
            live_not_started=Count("id", filter=Q(live=True, status=S.READY, opened_at__isnull=True)),
            remaining=Count("id", filter=Q(status__in=OPEN_STATUSES)),
            remaining_untaken=Count(
                "id",
                filter=Q(status__in=OPEN_STATUSES, judge__seat__isnull=False, judge__seat__taken_at__isnull=True),
            ),
            # Verdicts of every role: the pace at which judges get through their queues.
            recent_verdicts=Count("verdict", filter=Q(verdict__created_at__gte=since)),
            last_verdict=Max("verdict__created_at"),
        )
        .order_by()
    }


def experiments_progress(*, now: datetime, experiment_id: int | None = None) -> list[ExperimentProgress]:
    """Every experiment's progress, newest first (or one experiment's: an empty list if there is none).

    Four queries whatever the size: the experiments, their trials, their turns and their invite seats."""
    experiments = Experiment.objects.only(
        "id", "name", "status", "mode", "conditions", "launched_at", "closed_at", "planned_judgments"
    ).annotate(n_judges=Count("judges"))
    if experiment_id is not None:
        experiments = experiments.filter(pk=experiment_id)
    experiments = list(experiments.order_by("-pk"))
    if not experiments:
        return []
    ids = [e.pk for e in experiments]
    trials = _trial_counts(Trial.objects.filter(experiment_id__in=ids), now - RATE_WINDOW, "experiment_id")
    turns = {
        row["trial__experiment_id"]: row
        for row in Turn.objects.filter(trial__experiment_id__in=ids)
        .exclude(speaker="judge")
        .values("trial__experiment_id")
        .annotate(
            **{
                f"turns_{status}": Count("id", filter=Q(status=status))
                for status in ("done", "pending", "running", "failed")
            }
        )
        .order_by()
    }
    seats = {
        row["experiment_id"]: row
        for row in Seat.objects.filter(experiment_id__in=ids)
        .values("experiment_id")
        .annotate(seats=Count("id"), seats_taken=Count("id", filter=Q(taken_at__isnull=False)))
        .order_by()
    }
    names = set(ExperimentProgress.__dataclass_fields__)
    result = []
    for experiment in experiments:
        counts = trials.get(experiment.pk, {}) | turns.get(experiment.pk, {}) | seats.get(experiment.pk, {})
        progress = ExperimentProgress(
            experiment,
            mode_label(experiment),
            judges=experiment.n_judges,
            **{k: v for k, v in counts.items() if k in names},
        )
        progress.eta = _eta(experiment, progress, counts.get("recent_verdicts", 0), now)
        result.append(progress)
    return result


def _eta(experiment: Experiment, progress: ExperimentProgress, recent_verdicts: int, now: datetime) -> Projection:
    if experiment.status == Experiment.Status.DRAFT or experiment.launched_at is None:
        return Projection("draft")
    if experiment.status == Experiment.Status.CLOSED:
        return Projection("closed")
    # The window is at most the time since launch: a study two hours old has two hours of pace, not six.
    hours = min(RATE_WINDOW, max(now - experiment.launched_at, timedelta(0))).total_seconds() / 3600
    return projection(remaining=progress.remaining, verdicts=recent_verdicts, hours=hours)


@dataclass
class JudgeProgress:
    """One judge's trials in one experiment (``study``/``judged``: study trials; the others: every role)."""

    judge_id: int
    username: str
    participant_id: str  # a crowd participant's id (researchers only), else ""
    seat_taken: bool | None  # None: not an invite seat
    study: int = 0
    judged: int = 0
    practice_judged: int = 0
    attention_judged: int = 0
    in_progress: int = 0
    waiting: int = 0
    generating: int = 0
    skipped: int = 0
    failed: int = 0
    withdrawn: int = 0
    active_seconds: float = 0.0
    last_activity: datetime | None = None
    idle: timedelta | None = None  # since the last activity

    @property
    def active_minutes(self) -> int:
        return round(self.active_seconds / 60)

    @property
    def idle_text(self) -> str:
        if self.idle is None:
            return "never active"
        return "just now" if self.idle < timedelta(minutes=1) else f"{readable(self.idle)} ago"


COUNTED = (
    "study",
    "judged",
    "practice_judged",
    "attention_judged",
    "in_progress",
    "waiting",
    "generating",
    "skipped",
    "failed",
    "withdrawn",
)


def judges_progress(experiment_id: int, *, now: datetime) -> list[JudgeProgress]:
    """Each judge's progress in one experiment (one query), the most recently active first.

    Last activity: the latest of their opening a trial, a verdict, a skip and a heartbeat of an open trial page."""
    rows = (
        Trial.objects.filter(experiment_id=experiment_id)
        .values("judge_id", "judge__username", "judge__seat__participant_id", "judge__seat__taken_at")
        .annotate(
            study=Count("id", filter=Q(role=STUDY)),
            judged=Count("id", filter=Q(role=STUDY, status=S.JUDGED)),
            practice_judged=Count("id", filter=Q(role=PRACTICE, status=S.JUDGED)),
            attention_judged=Count("id", filter=Q(role=ATTENTION, status=S.JUDGED)),
            in_progress=Count("id", filter=Q(status=S.READY, opened_at__isnull=False)),
            waiting=Count("id", filter=Q(status=S.READY, opened_at__isnull=True)),
            generating=Count("id", filter=Q(status=S.GENERATING)),
            skipped=Count("id", filter=Q(status=S.SKIPPED)),
            failed=Count("id", filter=Q(status=S.FAILED)),
            withdrawn=Count("id", filter=Q(status=S.WITHDRAWN)),
            active=Sum("active_time__seconds"),
            opened=Max("opened_at"),
            verdict=Max("verdict__created_at"),
            skip=Max("skipped_at"),
            beat=Max("active_time__beat_at"),
        )
        .order_by("judge__username")
    )
    judges = []
    for row in rows:
        moments = [row[k] for k in ("opened", "verdict", "skip", "beat") if row[k] is not None]
        participant = row["judge__seat__participant_id"]  # None: no seat (the left join found none)
        judges.append(
            JudgeProgress(
                judge_id=row["judge_id"],
                username=row["judge__username"],
                participant_id=participant or "",
                seat_taken=None if participant is None else row["judge__seat__taken_at"] is not None,
                active_seconds=row["active"] or 0.0,
                last_activity=(last := max(moments, default=None)),
                idle=None if last is None else max(now - last, timedelta(0)),
                **{k: row[k] for k in COUNTED if k in row},
            )
        )
    # The most recently active first; judges never active last; ties by name.
    judges.sort(key=lambda j: (j.last_activity is None, -j.last_activity.timestamp() if j.last_activity else 0.0))
    return judges
