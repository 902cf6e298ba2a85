"""Calibration of judges' stated probabilities. Pure numpy; no Django.

Rows are shaped like the trials export (docs/exports.md): ``probability`` is the judge's probability
that the chosen answer is correct (0.5 to 1), ``correct`` whether it was, so the probability the judge
gave the correct answer is q = p if correct else 1 - p. Unjudged rows are ignored. docs/analysis.md
recomputes every figure here from an export with pandas (tests/results/test_calibration.py checks it).

- Reliability bins [0.5, 0.6), ..., [0.9, 1.0]: mean stated probability and share correct, the share
  with its two-way clustered Wilson interval (results.inference).
- Debiased ECE² (squared expected calibration error over those bins), the debiased estimator of
  Kumar, Liang & Ma (2019, "Verified uncertainty calibration", NeurIPS; after Bröcker 2012 and Ferro &
  Fricker 2012):

      ECE² = sum over bins b of (n_b / n) * [ (acc_b - conf_b)² - acc_b (1 - acc_b) / (n_b - 1) ]

  The plug-in ECE, sum (n_b / n) |acc_b - conf_b|, is biased upward at small n: the binomial noise of
  acc_b never averages out of an absolute value (a perfectly calibrated judge shows about 0.14 at
  n = 20). Squaring makes the noise additive, and acc_b (1 - acc_b) / (n_b - 1) is its unbiased
  estimate, so a calibrated judge's ECE² averages 0 and a single estimate may be slightly negative.
  Bins with fewer than 2 verdicts count 0: their noise cannot be estimated. sqrt(ECE²) is the
  root-mean-square gap between stated probability and accuracy. Its interval: estimate ± t × the
  two-way (question × judge) clustered standard error of the same statistic recomputed on each
  resample; for one judge, questions are the only cluster.
- Log score: mean ln q, q floored at judging.scoring.LOG_FLOOR, the floor judges are scored with.
- Brier score, two-class (the standard one): mean over verdicts of the sum over both answers of
  (forecast - outcome)², which is 2 (1 - q)²: 0 is perfect, 0.5 always saying 50%, 2 certain and wrong.
- Accuracy of the verdicts stated at 95% or more.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

import numpy as np

from judging.scoring import LOG_FLOOR

from .inference import RESAMPLES, Estimate, TwoWayBootstrap, unknown, wald_estimate

BIN_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0 + 1e-9)  # the last bin includes 1.0
HIGH_CONFIDENCE = 0.95
# A Brier or log score is a mean of small costs for right verdicts and large ones for wrong ones: its spread
# rests on the rarer of the two. With fewer than this many of it the interval is not given: on simulated
# judges 90% accurate with 20 verdicts each, the judges' own intervals covered 0.78-0.80 where 0.95 was
# asked, and pooled over 2 judges with 10 verdicts at 95%, 0.23-0.45; given only from 5, 0.94-0.98.
MIN_OF_EACH_OUTCOME = 5


def calibration(rows, *, resamples: int = RESAMPLES) -> dict:
    """Reliability bins, debiased ECE², log score, two-class Brier score and accuracy at high confidence.

    Every figure is pooled over the rows' judges and questions, with two-way clustered intervals (ECE²'s
    from ``resamples`` resamples: it is not linear in the verdicts).
    """
    rows = [r for r in rows if r.get("verdict")]
    if not rows:
        return {"n": 0}
    bootstrap = TwoWayBootstrap.of_rows(rows, resamples=resamples)
    stated = np.array([float(r["probability"]) for r in rows])
    correct = np.array([1.0 if r["correct"] else 0.0 for r in rows])
    given_to_correct = np.where(correct == 1.0, stated, 1.0 - stated)
    bins = []
    for low, high in zip(BIN_EDGES, BIN_EDGES[1:]):
        in_bin = (stated >= low) & (stated < high)
        if in_bin.any():
            accuracy = bootstrap.proportion(correct, in_bin)
            bins.append(
                {
                    "low": low,
                    "high": min(high, 1.0),
                    "n": int(in_bin.sum()),
                    "confidence": float(stated[in_bin].mean()),
                    "accuracy": accuracy.value,
                    "accuracy_low": accuracy.low,
                    "accuracy_high": accuracy.high,
                }
            )
    high_confidence = stated >= HIGH_CONFIDENCE
    scores = {
        "log_score": bootstrap.mean(np.log(np.maximum(given_to_correct, LOG_FLOOR))).within(np.log(LOG_FLOOR), 0.0),
        "brier": bootstrap.mean(2.0 * (1.0 - given_to_correct) ** 2).within(0.0, 2.0),
    }
    rarer = int(min(correct.sum(), len(correct) - correct.sum()))
    if rarer < MIN_OF_EACH_OUTCOME:
        why = f"no interval: {rarer} {'right' if correct.mean() < 0.5 else 'wrong'} verdict{'s' if rarer != 1 else ''}"
        scores = {name: replace(e, low=math.nan, high=math.nan, method=why) for name, e in scores.items()}
    return {
        "n": len(rows),
        "bins": bins,
        "ece2": debiased_ece2(stated, correct, bootstrap),
        **scores,
        "log_floor": LOG_FLOOR,
        "high_confidence_accuracy": bootstrap.proportion(correct, high_confidence) if high_confidence.any() else None,
    }


def calibration_by_judge(rows, *, resamples: int = RESAMPLES) -> dict:
    """``calibration`` of each judge's verdicts alone, by judge name."""
    by_judge = defaultdict(list)
    for row in rows:
        if row.get("verdict"):
            by_judge[row["judge"]].append(row)
    return {judge: calibration(judge_rows, resamples=resamples) for judge, judge_rows in sorted(by_judge.items())}


def debiased_ece2(stated, correct, bootstrap: TwoWayBootstrap) -> Estimate:
    """Kumar et al.'s debiased ECE² of verdicts (stated probability, 0/1 correct), rows as in ``bootstrap``."""
    stated, correct = np.asarray(stated, float), np.asarray(correct, float)
    masks = [(stated >= low) & (stated < high) for low, high in zip(BIN_EDGES, BIN_EDGES[1:])]
    if not any(m.sum() >= 2 for m in masks):
        # Every bin would count 0: that reads as perfect calibration where nothing was measured.
        return unknown(len(stated), "no probability bin holds two verdicts")
    ones = np.ones(len(stated))
    value = _ece2([(ones[m].sum(), correct[m].sum(), stated[m].sum()) for m in masks], len(stated))

    # Per bin: count, correct and stated sums; then the total count. Resampled in one matrix product.
    columns = np.column_stack([v * m for m in masks for v in (ones, correct, stated)] + [ones])

    def draws_of(scheme):
        # Each resample weights every verdict by its units' multiplicities; counts and sums are weighted alike.
        sums = bootstrap.sums_draws(scheme, columns)
        weighted = [tuple(sums[:, 3 * b + k] for k in range(3)) for b in range(len(masks))]
        return _ece2(weighted, sums[:, -1])

    return wald_estimate(float(value), bootstrap.spread(draws_of, None), len(stated))


def _ece2(bin_sums, total):
    """The estimator from per-bin (count, correct, stated) sums: plain sums or arrays of resampled ones."""
    ece2 = 0.0
    for count, n_correct, stated_sum in bin_sums:
        with np.errstate(divide="ignore", invalid="ignore"):  # empty or one-verdict bins are masked below
            accuracy = n_correct / count
            squared_gap = ((n_correct - stated_sum) / count) ** 2
            noise = accuracy * (1.0 - accuracy) / (count - 1)
            ece2 = ece2 + np.where(count >= 2, count / total * (squared_gap - noise), 0.0)
    return ece2
