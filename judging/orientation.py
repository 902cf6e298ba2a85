"""What orients a judge: a trial's number in its experiment, and the queue's badges (what kind of trial, live or
not, about how long it takes). Nothing here may tell apart what the judge must not know: an honest from a
misleading assistant, an honest from a dishonest consultant, an attention check from a study trial. So trials are
grouped only by what their page shows anyway: the protocol, and whether anyone speaks (docs/feedback.md).
"""

from __future__ import annotations

import statistics

from django.db.models import Case, Count, F, Q, Value, When, Window
from django.db.models.fields import BooleanField
from django.db.models.functions import RowNumber

from .models import Trial, Verdict
from .protocols.registry import ARM_OF_CONDITION, ARMS

# Expected minutes of a trial before any of its kind has been judged in the experiment: a reading of a few short
# speeches (debate, consultancy), a conversation of some questions (an assistant), a question alone.
DEFAULT_MINUTES = {"debate": 6, "consultancy": 5, "sandwich": 8, "sandwich-alone": 2}
DEFAULT_MINUTES_OTHER = 5  # a protocol added later, until it is given its own
# The median is taken over the latest verdicts of each kind in the experiment (bounded work per queue page).
RECENT_VERDICTS = 200
# Trials that are not shown to the judge at all: failed ones (a replacement takes their place), withdrawn ones.
NOT_SHOWN = (Trial.Status.FAILED, Trial.Status.WITHDRAWN)


def has_speaker(trial: Trial) -> bool:
    """Someone speaks in the trial (a judge alone in a sandwiching trial: nobody); the judge's page says so."""
    return ARMS[ARM_OF_CONDITION[trial.condition]].has_speaker


def kind(protocol: str, speaker: bool) -> str:
    """What a judge can tell of a trial before opening it: its protocol, and whether anyone speaks."""
    return protocol if speaker else f"{protocol}-alone"


def trial_number(trial: Trial) -> dict:
    """``{"k": k, "n": n}``: the trial is the judge's k-th of n in its experiment; practice trials are counted
    among practice trials, study trials and attention checks together (so a check is numbered like any trial).
    k counts the trials the judge finished (judged or skipped) before this one: for a judged trial, those
    finished before its verdict. One query."""
    mine = Trial.objects.filter(experiment_id=trial.experiment_id, judge_id=trial.judge_id).exclude(
        status__in=NOT_SHOWN
    )
    practice = trial.role == Trial.Role.PRACTICE
    mine = mine.filter(role=Trial.Role.PRACTICE) if practice else mine.exclude(role=Trial.Role.PRACTICE)
    finished = Q(status__in=[Trial.Status.JUDGED, Trial.Status.SKIPPED]) & ~Q(pk=trial.pk)
    if trial.status == Trial.Status.JUDGED:
        at = Verdict.objects.filter(trial_id=trial.pk).values("created_at")
        finished &= Q(verdict__created_at__lt=at) | Q(skipped_at__lt=at)
    counts = mine.aggregate(n=Count("id"), before=Count("id", filter=finished))
    return {"k": counts["before"] + 1, "n": counts["n"], "practice": practice}


def expected_minutes(trials) -> dict[tuple[int, str], tuple[int, bool]]:
    """``{(experiment id, kind): (minutes, measured)}`` for the experiments of ``trials``: the median active time
    of the latest RECENT_VERDICTS verdicts of that kind in the experiment (any judge; practice left out), rounded
    to whole minutes, at least 1; DEFAULT_MINUTES where none has been judged yet (measured False). One query."""
    experiment_ids = {t.experiment_id for t in trials}
    if not experiment_ids:
        return {}
    # Whether anyone speaks is the arm's (registry.ARMS), read from the trial's condition.
    speaker = Case(
        When(trial__condition__in=_conditions_without_speaker(), then=Value(False)),
        default=Value(True),
        output_field=BooleanField(),
    )
    recent = (
        Verdict.objects.filter(trial__experiment_id__in=experiment_ids, active_seconds__isnull=False)
        .exclude(trial__role=Trial.Role.PRACTICE)
        .annotate(
            experiment=F("trial__experiment_id"),
            protocol=F("trial__protocol"),
            speaker=speaker,
            recency=Window(
                RowNumber(),
                partition_by=[F("trial__experiment_id"), F("trial__protocol"), speaker],
                order_by=F("created_at").desc(),
            ),
        )
        .filter(recency__lte=RECENT_VERDICTS)
        .values_list("experiment", "protocol", "speaker", "active_seconds")
    )
    seconds: dict[tuple[int, str], list[float]] = {}
    for experiment_id, protocol, speaks, active in recent:
        seconds.setdefault((experiment_id, kind(protocol, speaks)), []).append(active)
    return {key: (max(1, round(statistics.median(values) / 60)), True) for key, values in seconds.items()}


def _conditions_without_speaker() -> list[str]:
    return [condition for condition, arm in ARM_OF_CONDITION.items() if not ARMS[arm].has_speaker]


def queue_badges(trials) -> None:
    """Give each of the queue's ``trials`` an ``orientation``: its protocol's page fragment (for the badge's words),
    whether anyone speaks, live, and the expected minutes (with whether they were measured)."""
    measured = expected_minutes(trials)
    for trial in trials:
        speaker = has_speaker(trial)
        key = kind(trial.protocol, speaker)
        minutes, from_data = measured.get(
            (trial.experiment_id, key), (DEFAULT_MINUTES.get(key, DEFAULT_MINUTES_OTHER), False)
        )
        trial.orientation = {
            "protocol_text": trial.protocol_spec.page_template,
            # What the protocol fragment's "badge" part reads (the names the trial page uses).
            "assisted": bool(trial.assistant_side),
            "nobody_speaks": not speaker,
            "live": trial.live and speaker,
            "minutes": minutes,
            "measured": from_data,
        }
