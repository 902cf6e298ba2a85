"""Attrition: what became of every assigned trial, per arm, and whether arms lose trials alike.

Pure Python + numpy; no Django. Rows are shaped like the trials export (docs/exports.md): one per
trial, failed, skipped and unjudged ones included. The rules are written out in docs/attrition.md.

Each trial has exactly one outcome:

- ``judged``: it has a verdict.
- ``failed``: its generation failed for good (status ``failed``). A failed trial stays in the data
  even when a replacement was made for it; the replacement is a trial of its own in the same arm.
- ``skipped``: its judge skipped it, giving a reason (status ``skipped``).
- ``abandoned``: opened, neither judged nor skipped, and the study is closed.
- ``not_reached``: never opened, and the study is closed.
- ``in_progress`` / ``waiting``: the same two while the study is still running: not lost, only not
  settled yet.
- ``not_qualified``: withdrawn because its judge did not qualify on their practice trials (status
  ``withdrawn``, docs/onboarding.md). Neither lost nor settled: the judge was screened out on practice,
  before any study trial, whatever its arm, so it cannot make arms lose differently; it is counted apart
  (it changes who the results describe: judges who qualified).

Lost = failed + skipped + abandoned + not reached. An arm's *lost share* is lost / settled, where
settled = judged + lost (trials still in progress or waiting are left out until they settle).

Whether arms differ in the share they lose is a permutation test of the arm labels *within each
judge* (of each experiment), with Pearson's chi-square of the arm x (lost, kept) table as the
statistic. Losses are clustered by judge (a judge who stops, or skips a lot, loses many trials at
once), and the planner randomises arms within each judge (a Latin square over the judge's shuffled
questions), so permuting within judges follows the randomisation actually used and holds each
judge's number of losses fixed: a judge who loses many trials cannot by themselves make arms look
different. The p-value of a plain chi-square test would treat the trials as independent, and can
be far too small when a few judges lose many trials (tested).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from judging.protocols.registry import CONDITIONS

# A difference in lost shares at this level warns.
ALPHA = 0.05
# An arm losing more than this share of its settled trials warns, whatever the others lose: the
# "5-and-20" rule of thumb (Schulz & Grimes 2002, Lancet 359:781): under 5% loss little bias, above
# 20% a serious threat to validity.
MAX_LOSS_SHARE = 0.20
PERMUTATIONS = 2000
SEED = 12345

OUTCOMES = ("judged", "failed", "skipped", "abandoned", "not_reached", "in_progress", "waiting", "not_qualified")
LOST = ("failed", "skipped", "abandoned", "not_reached")


@dataclass(frozen=True)
class ArmAttrition:
    """What became of one arm's trials (``arm`` is the trial's condition, e.g. ``assisted-honest``)."""

    arm: str
    assigned: int  # every trial of the arm: planned ones and replacements
    replacements: int  # of which made to replace a failed trial
    opened: int  # opened by their judge (judged trials included)
    judged: int = 0
    failed: int = 0
    skipped: int = 0
    abandoned: int = 0
    not_reached: int = 0
    in_progress: int = 0
    waiting: int = 0
    not_qualified: int = 0  # withdrawn: the judge did not qualify (neither lost nor settled)

    @property
    def lost(self) -> int:
        return self.failed + self.skipped + self.abandoned + self.not_reached

    @property
    def settled(self) -> int:
        return self.judged + self.lost

    @property
    def lost_share(self) -> float | None:
        """Lost / settled; None while nothing is settled."""
        return self.lost / self.settled if self.settled else None


@dataclass(frozen=True)
class LossTest:
    """Whether arms lose different shares of their settled trials (permutation test within judges)."""

    statistic: float  # Pearson chi-square of the arm x (lost, kept) table
    p_value: float  # (1 + permutations at least as extreme) / (1 + permutations)
    permutations: int
    strata: int  # the judges (of each experiment) the arm labels were permuted within


@dataclass(frozen=True)
class AttritionReport:
    arms: tuple[ArmAttrition, ...]
    total: ArmAttrition
    test: LossTest | None
    note: str  # why there is no test, when there is none
    warnings: tuple[str, ...]
    closed: bool | None  # data collection over for every trial's experiment, for none, or None: for some


def outcome(row: dict, *, closed: bool) -> str:
    """The one outcome of a trial row (see the module docstring)."""
    if row.get("verdict"):
        return "judged"
    status = row.get("status")
    if status in ("failed", "skipped"):
        return status
    if status == "withdrawn":
        return "not_qualified"
    if row.get("opened_at"):
        return "abandoned" if closed else "in_progress"
    return "not_reached" if closed else "waiting"


def arm_of(row: dict) -> str:
    return row.get("condition") or row.get("protocol") or "unknown"


def _arm_order(arm: str):
    # The registry's order (debate, consultancy, sandwiching's naive, honest, misleading), unknown last.
    return (CONDITIONS.index(arm), arm) if arm in CONDITIONS else (len(CONDITIONS), arm)


def _summary(arm: str, rows: list[dict], outcomes: list[str]) -> ArmAttrition:
    counts = {name: outcomes.count(name) for name in OUTCOMES}
    return ArmAttrition(
        arm=arm,
        assigned=len(rows),
        replacements=sum(1 for r in rows if r.get("replaces_trial_id")),
        opened=sum(1 for r, o in zip(rows, outcomes) if r.get("opened_at") or o == "judged"),
        **counts,
    )


def chi_square(lost_by_arm: np.ndarray, settled_by_arm: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of arm x (lost, kept) tables; ``lost_by_arm`` may hold many tables
    (one per row) sharing the margins ``settled_by_arm``. 0 when nothing or everything was lost."""
    total, lost = settled_by_arm.sum(), lost_by_arm.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = settled_by_arm * lost / total
        # (l - e)^2 / e + (l - e)^2 / (n - e) for each arm, summed: its lost and its kept cell.
        cell = (lost_by_arm - expected) ** 2 * settled_by_arm / (expected * (settled_by_arm - expected))
    # A cell with nothing expected (nothing lost, or everything) adds nothing.
    return np.where(np.isfinite(cell), cell, 0.0).sum(axis=-1)


def loss_test(arms, lost, strata, *, permutations: int = PERMUTATIONS, seed: int = SEED) -> LossTest:
    """Permutation test that arms lose the same share: arm labels shuffled within each stratum.

    ``arms`` (arm index per settled trial), ``lost`` (bool per trial) and ``strata`` (a hashable per
    trial: its judge) are parallel sequences. Every stratum keeps its number of trials of each arm
    and its losses, so arm totals and the overall loss are the same in every permutation.
    """
    arms, lost = np.asarray(arms, dtype=int), np.asarray(lost, dtype=bool)
    n_arms = int(arms.max()) + 1
    settled = np.bincount(arms, minlength=n_arms).astype(float)
    observed = chi_square(np.bincount(arms[lost], minlength=n_arms).astype(float), settled)
    rng = np.random.default_rng(seed)
    groups: dict = defaultdict(list)
    for i, stratum in enumerate(strata):
        groups[stratum].append(i)
    lost_by_arm = np.zeros((permutations, n_arms))
    for indices in groups.values():
        stratum_lost = int(lost[indices].sum())
        if stratum_lost == 0:
            continue  # a stratum without losses adds nothing to any arm's losses
        # Shuffling the stratum's arm labels and counting them over its lost trials draws its losses'
        # arms without replacement from its trials: a multivariate hypergeometric draw per permutation.
        trials_by_arm = np.bincount(arms[indices], minlength=n_arms)
        lost_by_arm += rng.multivariate_hypergeometric(trials_by_arm, stratum_lost, size=permutations)
    statistics = chi_square(lost_by_arm, settled)
    # A tolerance so that permutations equal to the observed table are not lost to rounding.
    extreme = int((statistics >= observed - 1e-9 * max(1.0, observed)).sum())
    return LossTest(
        statistic=float(observed),
        p_value=(1 + extreme) / (1 + permutations),
        permutations=permutations,
        strata=len(groups),
    )


def attrition_report(
    rows,
    *,
    closed: bool | Collection[int] = False,
    alpha: float = ALPHA,
    max_loss_share: float = MAX_LOSS_SHARE,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
) -> AttritionReport:
    """The per-arm attrition table, the test of equal loss, and the warnings (plain text).

    ``rows``: trials-export rows of one or more experiments. ``closed``: data collection is over (True), or
    over for the experiments whose ids it holds: their trials opened and not judged count as abandoned
    and their trials never opened as not reached (both lost); while it runs they are in progress /
    waiting and left out of the comparison. Experiments pooled on one page may differ: a closed one's
    losses are losses whether or not the others still run (a row without an ``experiment_id`` counts as
    running unless ``closed`` is True).
    """
    # The export's order (experiment, trial id), so that the same data give the same p-value.
    rows = sorted(rows, key=lambda r: (r.get("experiment_id") or 0, r.get("trial_id") or 0))
    row_closed = [closed if isinstance(closed, bool) else r.get("experiment_id") in closed for r in rows]
    outcomes = [outcome(r, closed=c) for r, c in zip(rows, row_closed)]
    by_arm: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_arm[arm_of(row)].append(i)
    names = sorted(by_arm, key=_arm_order)
    arms = tuple(_summary(a, [rows[i] for i in by_arm[a]], [outcomes[i] for i in by_arm[a]]) for a in names)
    total = _summary("all arms", rows, outcomes)

    settled = [i for i, o in enumerate(outcomes) if o == "judged" or o in LOST]
    settled_arms = {arm_of(rows[i]) for i in settled}
    test, note = None, ""
    if len(settled_arms) < 2:
        note = "Fewer than two arms have settled trials: there is no difference in losses to test."
    elif not any(outcomes[i] in LOST for i in settled):
        note = "No trial has been lost."
    else:
        index = {name: k for k, name in enumerate(sorted(settled_arms, key=_arm_order))}
        test = loss_test(
            [index[arm_of(rows[i])] for i in settled],
            [outcomes[i] in LOST for i in settled],
            [(rows[i].get("experiment_id"), rows[i].get("judge")) for i in settled],
            permutations=permutations,
            seed=seed,
        )

    warnings = []
    if test is not None and test.p_value < alpha:
        shares = ", ".join(f"{a.arm} {a.lost} of {a.settled}" for a in arms if a.settled)
        warnings.append(
            f"Arms lose different shares of their trials (p = {test.p_value:.3g}, permutation test within "
            f"judges; lost: {shares}). The missing trials are not missing at random between arms, so "
            "differences between arms may come from which trials were lost rather than from the arms."
        )
    for arm in arms:
        if arm.lost_share is not None and arm.lost_share > max_loss_share:
            warnings.append(
                f"{arm.arm} lost {arm.lost} of its {arm.settled} settled trials ({arm.lost_share:.0%}, more than "
                f"{max_loss_share:.0%}): its figures describe only the trials that were not lost."
            )
    state = set(row_closed)
    return AttritionReport(
        arms=arms,
        total=total,
        test=test,
        note=note,
        warnings=tuple(warnings),
        closed=(state.pop() if len(state) == 1 else None) if rows else closed is True,
    )
