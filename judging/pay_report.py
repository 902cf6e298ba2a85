"""The time and pay report of an experiment's judges (docs/recruitment.md): per judge, trials, active time (the
server-clock ActiveTime of each trial) and pay: a base rate per active hour, and a bonus from the scoring rule.

The bonus pays for the score the judge is shown (judging/scoring.py: the experiment's rule, in its own units, round
penalty included) above the score of saying 50%: ``bonus = per_point × max(0, Σ (score − score at 50%))``. An affine
function of a proper score is proper, so the bonus keeps the judge's incentive to report what they believe; only the
floor at 0 (nobody owes money) departs from it, for a judge whose total is below chance."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum

from . import scoring
from .models import Experiment, Seat, Trial

CENT = Decimal("0.01")

# Column name → kind, in order (the CSV's header; judging.exports.iter_csv writes it).
COLUMNS = {
    "judge": "str",
    "participant_id": "str",
    "trials": "int",
    "judged": "int",
    "skipped": "int",
    "active_seconds": "float",
    "active_hours": "float",
    "scored_verdicts": "int",
    "score_total": "float",
    "points_above_chance": "float",
    "base_pay": "decimal",
    "bonus": "decimal",
    "total_pay": "decimal",
}


@dataclass(frozen=True)
class Rates:
    per_active_hour: Decimal
    per_point: Decimal


def chance_score(experiment: Experiment) -> float:
    """The score of a verdict at 50%, right or wrong (the bonus counts points above it)."""
    return scoring.score(experiment.scoring_rule, 0.5)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def pay_rows(experiment: Experiment, rates: Rates) -> list[dict]:
    """One row per judge of the experiment (the experiment's judges and anyone with a trial in it), by username.
    Seats of invites that nobody has taken yet are left out: nobody is paid for them."""
    User = get_user_model()
    per_judge = {
        row["judge_id"]: row
        # Every trial the judge worked on, practice included (docs/onboarding.md); not those withdrawn when they did
        # not qualify, which they never saw. The bonus leaves practice out (its scores are shown to teach); attention
        # checks count like the study trials they must look like.
        for row in Trial.objects.filter(experiment=experiment)
        .exclude(status=Trial.Status.WITHDRAWN)
        .values("judge_id")
        .annotate(
            trials=Count("id"),
            judged=Count("id", filter=Q(status=Trial.Status.JUDGED)),
            skipped=Count("id", filter=Q(status=Trial.Status.SKIPPED)),
            active_seconds=Sum("active_time__seconds"),
            scored_verdicts=Count("verdict__score", filter=~Q(role=Trial.Role.PRACTICE)),
            score_total=Sum("verdict__score", filter=~Q(role=Trial.Role.PRACTICE)),
        )
        .order_by()
    }
    judges = User.objects.filter(Q(judged_experiments=experiment) | Q(pk__in=per_judge)).distinct()
    untaken = Seat.objects.filter(experiment=experiment, taken_at__isnull=True).values("judge_id")
    participants = dict(
        Seat.objects.filter(experiment=experiment).exclude(participant_id="").values_list("judge_id", "participant_id")
    )
    chance = chance_score(experiment)
    rows = []
    for judge in judges.exclude(pk__in=untaken).order_by("username"):
        counts = per_judge.get(judge.pk, {})
        active_seconds = counts.get("active_seconds") or 0.0
        scored = counts.get("scored_verdicts", 0)
        score_total = counts.get("score_total") or 0.0
        above_chance = score_total - scored * chance
        base = _money(Decimal(str(active_seconds)) / 3600 * rates.per_active_hour)
        bonus = _money(max(Decimal(0), Decimal(str(above_chance)) * rates.per_point))
        rows.append(
            {
                "judge": judge.get_username(),
                "participant_id": participants.get(judge.pk, ""),
                "trials": counts.get("trials", 0),
                "judged": counts.get("judged", 0),
                "skipped": counts.get("skipped", 0),
                "active_seconds": round(active_seconds, 1),
                "active_hours": round(active_seconds / 3600, 4),
                "scored_verdicts": scored,
                "score_total": round(score_total, 4),
                "points_above_chance": round(above_chance, 4),
                "base_pay": base,
                "bonus": bonus,
                "total_pay": base + bonus,
            }
        )
    return rows
