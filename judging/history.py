"""A judge's history: their judged trials across experiments, with the truth and their score where they may see
them (judging.feedback), their running accuracy, mean score and calibration.

Two queries whatever the number of verdicts: the latest ``HISTORY_ROWS`` verdicts with their trials, and one
grouped count for the totals. Attention checks are listed and counted like any study trial: leaving them out
would tell the judge which trials were checks (the ones missing). Practice trials are listed as practice (the
judge was told they were) and counted apart from the rest. Experiments are not named: a name chosen by the
researchers may describe the design (docs/feedback.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db.models import Case, Count, F, IntegerField, Q, Sum, Value, When

from . import feedback, scoring
from .models import Trial, Verdict

# The page lists this many of the latest verdicts; the totals count every verdict.
HISTORY_ROWS = 200
# Calibration bins of the judge's stated probability for the answer they chose (lower bounds, the last closed).
BIN_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# A bin with fewer verdicts than this is shown as too few to tell anything.
FEW = 10
Z95 = 1.959964


@dataclass(frozen=True)
class Row:
    trial_id: int
    question: str
    answers: dict
    chosen: str
    probability: float
    rationale: str
    judged_at: object
    practice: bool
    outcome: feedback.Outcome | None  # None: not shown (yet)


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int
    right: int
    stated: float  # mean stated probability in the bin

    @property
    def share(self) -> float:
        return self.right / self.count

    @property
    def few(self) -> bool:
        return self.count < FEW

    @property
    def interval(self) -> tuple[float, float]:
        """A 95% Wilson interval for the share right (honest at small counts, never outside [0, 1])."""
        return wilson(self.right, self.count)


@dataclass(frozen=True)
class MeanScore:
    """The judge's mean score under one scoring rule: rules score on different scales, so they are never pooled."""

    rule: str
    total: float
    count: int

    @property
    def shown(self) -> str:
        return scoring.display(self.total / self.count)

    @property
    def scale(self) -> str:
        return scoring.scale_note(self.rule)


@dataclass(frozen=True)
class Totals:
    count: int
    right: int
    scores: tuple[MeanScore, ...]  # one per scoring rule met, of the verdicts with a score

    @property
    def accuracy(self) -> float | None:
        return self.right / self.count if self.count else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.right, self.count)


def wilson(right: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = right / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _bin_of() -> Case:
    """The calibration bin of a verdict's probability, as an index into BIN_EDGES (p = 1.0 in the last)."""
    return Case(
        *(When(probability__lt=high, then=Value(i)) for i, high in enumerate(BIN_EDGES[1:-1])),
        default=Value(len(BIN_EDGES) - 2),
        output_field=IntegerField(),
    )


def judge_history(judge) -> dict:
    """What the judge's history page shows: ``rows`` (latest first), ``shown_rows`` of ``total`` verdicts,
    ``totals`` and ``calibration`` over the study trials whose truth the judge may see, ``practice`` totals,
    and ``hidden`` (verdicts whose truth is not shown yet)."""
    verdicts = Verdict.objects.filter(judge=judge, trial__judge=judge)
    latest = (
        verdicts.select_related("trial__question", "trial__experiment")
        .only(
            "chosen",
            "probability",
            "rationale",
            "score",
            "created_at",
            "trial__id",
            "trial__honest_side",
            "trial__answer_a_index",
            "trial__answer_b_index",
            "trial__role",
            "trial__question__text",
            "trial__question__choices",
            "trial__experiment__status",
            "trial__experiment__feedback",
            "trial__experiment__scoring_rule",
            "trial__experiment__round_penalty",
        )
        .order_by("-created_at", "-pk")[:HISTORY_ROWS]
    )
    rows = []
    for verdict in latest:
        trial = verdict.trial
        rows.append(
            Row(
                trial_id=trial.pk,
                question=trial.question.text,
                answers={"A": trial.answer_text("A"), "B": trial.answer_text("B")},
                chosen=verdict.chosen,
                probability=verdict.probability,
                rationale=verdict.rationale,
                judged_at=verdict.created_at,
                practice=trial.role == Trial.Role.PRACTICE,
                outcome=feedback.outcome(trial, verdict),
            )
        )
    # Only what the judge may see is counted right or wrong: the other groups give their size alone.
    groups = verdicts.values(
        shown=Case(When(feedback.revealed_q("trial__"), then=Value(1)), default=Value(0), output_field=IntegerField()),
        practice=Case(
            When(trial__role=Trial.Role.PRACTICE, then=Value(1)), default=Value(0), output_field=IntegerField()
        ),
        bin=_bin_of(),
        rule=F("trial__experiment__scoring_rule"),
    ).annotate(
        n=Count("id"),
        right=Count("id", filter=Q(chosen=F("trial__honest_side"))),
        score_sum=Sum("score"),
        scored=Count("score"),
        stated=Sum("probability"),
    )
    study, practice = _Sum(), _Sum()
    calibration: dict[int, list] = {}
    total = hidden = 0
    for group in groups:
        total += group["n"]
        if not group["shown"]:
            hidden += group["n"]
            continue
        (practice if group["practice"] else study).add(group)
        if not group["practice"]:
            counts = calibration.setdefault(group["bin"], [0, 0, 0.0])
            counts[0] += group["n"]
            counts[1] += group["right"]
            counts[2] += group["stated"]
    bins = [
        Bin(low=BIN_EDGES[i], high=BIN_EDGES[i + 1], count=c[0], right=c[1], stated=c[2] / c[0])
        for i, c in sorted(calibration.items())
    ]
    return {
        "rows": rows,
        "shown_rows": len(rows),
        "total": total,
        "hidden": hidden,
        "totals": study.totals(),
        "practice": practice.totals(),
        "calibration": bins,
        "few": FEW,
    }


class _Sum:
    def __init__(self):
        self.count = self.right = 0
        self.scores: dict[str, list] = {}  # rule: [sum, count]

    def add(self, group: dict) -> None:
        self.count += group["n"]
        self.right += group["right"]
        if group["scored"]:
            per_rule = self.scores.setdefault(group["rule"], [0.0, 0])
            per_rule[0] += group["score_sum"]
            per_rule[1] += group["scored"]

    def totals(self) -> Totals:
        scores = tuple(MeanScore(rule, total, count) for rule, (total, count) in sorted(self.scores.items()))
        return Totals(count=self.count, right=self.right, scores=scores)
