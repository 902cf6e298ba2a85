"""Agreement between judges who judged the same question in the same condition. Pure numpy.

A *unit* is one question judged in one condition of one experiment by two or more judges (the
planner puts a question's judgments in different arms where it can, so units appear when an
experiment has more judgments per question than arms). Each trial's transcript is generated for that
trial, so judges of a unit read different debates of the same question under the same protocol:
agreement says how reproducible a question's verdict is under the arm, transcript included.

The label is truth-relative: whether the judge chose the correct answer. Not the A/B position: the
planner draws each trial's honest side on its own, so two judges who pick the same answer pick the same
letter only half the time, and agreement on letters measures position habits, not judgments (on the
same simulated studies letter alpha is about 0 while alpha on correctness is about 0.3;
tests/results/test_agreement.py). On a question with more than two choices the incorrect answer may
differ between trials; "chose the correct answer" still means the same thing in every trial.

- Krippendorff's alpha (nominal): 1 - (n - 1) D_o / D_e, D_o = sum over units of the pairs of values
  that disagree within the unit / (m_u - 1), D_e = the pairs of all pairable values that disagree
  (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"). Any number of judges per unit.
- Fleiss' kappa, only where every unit has the same number of judges (its definition needs that).

Both estimate the same population figure, Var_q(P(correct | q)) / (p (1 - p)): how much of the
variation in correctness lies between questions. Intervals: estimate +/- t * SE with the SE from a
bootstrap of whole questions (all of a question's units together; G / (G - 1) as everywhere,
t with G - 1 df), cut to [-1, 1]. Judges are not resampled: a judge appears in a unit once and
agreement is defined between judges, so there is no judge-level sum to reweight; on studies simulated
through the planner with judges of different skill the question bootstrap alone covers the population
figure at the stated rate (benchmarks/agreement_validity.py, docs/benchmarks.md). A figure whose
interval cannot be estimated (every unit unanimous in every resample) is not reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from judging.protocols.registry import ARMS

from .accuracy import arm_of
from .inference import RESAMPLES, SEED, Estimate, TwoWayBootstrap, unknown, wald_estimate

CATEGORIES = 2  # chose the correct answer (1) or not (0)


def correctness(row) -> int:
    """The label agreement is computed on: 1 when the judge chose the correct answer."""
    return 1 if row["correct"] else 0


@dataclass(frozen=True)
class Units:
    """Overlapping units and their verdicts: each verdict's unit, question, judge and value."""

    unit: np.ndarray
    questions: list[str]
    judges: list[str]
    values: np.ndarray
    categories: int = CATEGORIES

    @property
    def counts(self) -> np.ndarray:
        """Values by category in each unit (units x categories)."""
        out = np.zeros((len(self), self.categories))
        np.add.at(out, (self.unit, self.values), 1)
        return out

    @property
    def raters(self) -> np.ndarray:
        return np.bincount(self.unit, minlength=len(self)).astype(float)

    def __len__(self) -> int:
        return int(self.unit.max()) + 1 if len(self.unit) else 0


def overlapping_units(rows, label=correctness, *, categories: int = CATEGORIES) -> Units:
    """Judged rows grouped by (experiment, condition, question); units with two or more verdicts."""
    grouped = defaultdict(list)
    for r in rows:
        if r.get("verdict"):
            grouped[(r.get("experiment_id"), r.get("condition") or r.get("protocol"), r["question_id"])].append(r)
    keys = sorted((key for key, v in grouped.items() if len(v) >= 2), key=lambda key: tuple(map(str, key)))
    members = [(k, r) for k, key in enumerate(keys) for r in grouped[key]]
    return Units(
        unit=np.array([k for k, _ in members], dtype=int),
        questions=[str(r["question_id"]) for _, r in members],
        judges=[str(r["judge"]) for _, r in members],
        values=np.array([label(r) for _, r in members], dtype=int),
        categories=categories,
    )


def alpha_from_sums(pairable, disagreeing, category_totals) -> np.ndarray:
    """Krippendorff's nominal alpha from (weighted) sums over units: pairable values n, within-unit
    disagreement sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1), and each category's total n_c (last axis).
    NaN where every value falls in one category (no expected disagreement)."""
    pairable = np.asarray(pairable, float)
    expected = pairable**2 - (np.asarray(category_totals, float) ** 2).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            expected > 0, 1.0 - (pairable - 1.0) * disagreeing / np.where(expected > 0, expected, 1), np.nan
        )


def kappa_from_sums(units, agreement_sum, category_totals, raters: int) -> np.ndarray:
    """Fleiss' kappa from sums over units (each with ``raters`` values): the number of units, the sum of
    each unit's agreement P_u = (sum_c n_uc^2 - m) / (m (m - 1)), and each category's total."""
    units = np.asarray(units, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = agreement_sum / units
        shares = np.asarray(category_totals, float) / (units * raters)[..., None]
        chance = (shares**2).sum(axis=-1)
        return np.where(chance < 1, (observed - chance) / np.where(chance < 1, 1 - chance, 1), np.nan)


def _unit_columns(units: Units) -> dict[str, np.ndarray]:
    """Each unit's contribution to the sums both statistics are built from."""
    m, squares = units.raters, (units.counts**2).sum(axis=1)
    return {
        "pairable": m,
        "disagreeing": (m**2 - squares) / (m - 1),
        "agreement": (squares - m) / (m * (m - 1)),
        "units": np.ones(len(units)),
    }


def krippendorff_alpha(units: Units) -> float:
    c = _unit_columns(units)
    return float(alpha_from_sums(c["pairable"].sum(), c["disagreeing"].sum(), units.counts.sum(axis=0)))


def fleiss_kappa(units: Units) -> float:
    raters = {int(m) for m in units.raters}
    if len(raters) != 1:
        raise ValueError(f"Fleiss' kappa needs the same number of judges in every unit, not {sorted(raters)}")
    c = _unit_columns(units)
    return float(kappa_from_sums(len(units), c["agreement"].sum(), units.counts.sum(axis=0), raters.pop()))


@dataclass(frozen=True)
class Agreement:
    """Agreement within one arm (or condition): its overlapping units and the two statistics."""

    group: str
    units: int
    verdicts: int
    questions: int
    raters: tuple[int, int]  # fewest and most judges in a unit
    pairs_agreeing: float  # the share of within-unit pairs of verdicts that agree (no chance correction)
    alpha: Estimate
    kappa: Estimate | None  # None: units have different numbers of judges


INTERVAL_METHOD = "estimate ± t × SE from a bootstrap of questions"


def agreement(units: Units, group: str = "", *, resamples: int = RESAMPLES, seed: int = SEED) -> Agreement | None:
    """Alpha (and kappa where every unit has as many judges) with question-bootstrap intervals;
    None without overlapping units."""
    if not len(units):
        return None
    columns = _unit_columns(units)
    counts = units.counts
    unit_questions = [""] * len(units)
    for k, question in zip(units.unit, units.questions):
        unit_questions[k] = question
    # One row per unit, labelled by its question and no judge: the bootstrap resamples whole questions
    # (every unit of a question together) and draws each resample's sums of the units' columns jointly.
    boot = TwoWayBootstrap(unit_questions, [None] * len(units), resamples=resamples, seed=seed)
    names = ["pairable", "disagreeing", "agreement", "units"]
    sums = boot.sums_draws("question", np.column_stack([columns[name] for name in names] + [counts]))
    draws, total_draws = dict(zip(names, sums.T[: len(names)])), sums[:, len(names) :]
    n = len(units.values)

    def estimate(value: float, resampled: np.ndarray) -> Estimate:
        if not np.isfinite(value):
            return unknown(
                n,
                "every verdict in these units is alike (all correct or all wrong): "
                "agreement beyond chance is undefined",
            )
        e = wald_estimate(value, boot.spread(lambda scheme: resampled, None, by_question_only=True), n)
        if not e.has_interval:
            return unknown(n, "no interval: the figure did not vary between resamples (every unit unanimous)")
        return replace(e.within(-1.0, 1.0), method=INTERVAL_METHOD)

    raters = sorted({int(m) for m in units.raters})
    kappa = None
    if len(raters) == 1:
        kappa_draws = kappa_from_sums(draws["units"], draws["agreement"], total_draws, raters[0])
        kappa = estimate(fleiss_kappa(units), kappa_draws)
    pairs = (units.raters * (units.raters - 1) / 2).sum()
    return Agreement(
        group=group,
        units=len(units),
        verdicts=n,
        questions=len(set(units.questions)),
        raters=(raters[0], raters[-1]),
        pairs_agreeing=float((counts * (counts - 1) / 2).sum() / pairs),
        alpha=estimate(
            krippendorff_alpha(units), alpha_from_sums(draws["pairable"], draws["disagreeing"], total_draws)
        ),
        kappa=kappa,
    )


def agreement_by_arm(rows, *, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Agreement | None]:
    """Per arm present in the verdicts (registry order), and per condition of arms with two: the
    arm's agreement, or None where no question was judged twice in one of its conditions."""
    judged = [r for r in rows if r.get("verdict")]
    out: dict[str, Agreement | None] = {}
    for arm in ARMS.values():
        in_arm = [r for r in judged if arm_of(r) == arm.value]
        if not in_arm:
            continue
        out[arm.value] = agreement(overlapping_units(in_arm), arm.value, resamples=resamples, seed=seed)
        if len(arm.conditions) < 2:
            continue
        for condition in arm.conditions:
            of_condition = [r for r in in_arm if r.get("condition") == condition]
            if of_condition:
                label = f"{arm.value}: {condition}"
                out[label] = agreement(overlapping_units(of_condition), label, resamples=resamples, seed=seed)
    return out
