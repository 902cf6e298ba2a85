"""Per-judge quality: what each judge did, and flags for behaviour no careful human produces.

For researchers only (the analysis page and its CSV); judges never see any of it. Each figure is a
judge's own, so its interval resamples that judge's questions (one judge is the one described, not a
sample of judges). Records as ``results.measure.verdict_records``.

Flags, each explained in words where it is shown:
- **reads faster than a human can**: characters shown (question, both answers, every finished speech)
  per active second, as a ratio of sums, with the lower end of its 95% interval above
  ``READING_CEILING_CHARS_PER_MINUTE``. Adults read about 1,000 characters a minute (987 +- 118 in
  English, 17 languages alike: Trauzettel-Klosinski & Dietz 2012, the IReST texts; about 240 words a
  minute, Brysbaert 2019); the ceiling, 2,500 a minute (about 600 words), is above the fastest readers
  who still understand what they read, so a judge above it has not read what was shown.
- **verdicts seconds after opening**: verdicts given within ``FAST_VERDICT_SECONDS`` of first opening the
  trial (server clock, every visit counted), too soon to have read even the question and answers.
- **always the same answer position**: the share of verdicts for answer A, with an exact two-sided
  binomial test against one half, Holm-adjusted across the judges shown, at ``POSITION_ALPHA``. The planner
  draws the honest side in balanced blocks per judge, so an attentive judge, right or wrong, picks A
  about half the time.
- **fails attention checks**: attention checks (docs/onboarding.md: easy questions with unambiguous answers,
  hidden among the study trials) judged right in fewer than ``ATTENTION_PASS_SHARE`` of them, once the judge
  has judged at least ``ATTENTION_MIN_CHECKS`` and got at least ``ATTENTION_MIN_SLIPS`` wrong (one slip never
  flags). Their accuracy is shown with its exact (Clopper-Pearson) interval and count; the checks themselves are
  never part of any other figure here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import binomtest, quantile_test

from .analysis import share_correct
from .inference import CONFIDENCE, Estimate, TwoWayBootstrap, holm, unknown

READING_CEILING_CHARS_PER_MINUTE = 2500
FAST_VERDICT_SECONDS = 10
POSITION_ALPHA = 0.05
# An attentive reader gets nearly every easy check right; one slip in five is tolerated, and one slip never flags a
# judge on its own (2 of 3 and 3 of 4 are below 80%, and most careful judges would slip once sooner or later).
ATTENTION_PASS_SHARE = 0.8
ATTENTION_MIN_CHECKS = 3
ATTENTION_MIN_SLIPS = 2


@dataclass(frozen=True)
class JudgeQuality:
    judge: str
    verdicts: int
    accuracy: Estimate
    median_active_seconds: Estimate  # over timed verdicts; order-statistic interval
    reading_rate: Estimate  # characters shown per minute of active time (ratio of sums)
    fast_verdicts: int  # verdicts within FAST_VERDICT_SECONDS of opening
    share_a: Estimate  # share of verdicts for answer A; exact (Clopper-Pearson) interval
    position_p: float
    position_p_adjusted: float  # Holm across the judges of the panel
    attention: Estimate  # share of the judge's attention checks judged right (n: how many); exact interval
    flags: tuple[str, ...]


def median_seconds(seconds) -> Estimate:
    """The median with its distribution-free interval (order statistics: scipy's quantile test)."""
    seconds = np.asarray(seconds, float)
    if not len(seconds):
        return unknown(0, "no timed verdicts")
    value = float(np.median(seconds))
    interval = quantile_test(seconds, q=value, p=0.5).confidence_interval(CONFIDENCE)
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return Estimate(value, math.nan, math.nan, len(seconds), method="too few timed verdicts for an interval")
    return Estimate(value, float(interval.low), float(interval.high), len(seconds), method="order statistics")


def reading_rate(records) -> Estimate:
    """Characters shown per minute of active time, all characters over all minutes, with the ratio's
    interval resampling the judge's questions."""
    timed = [r for r in records if r["seconds"] is not None]
    if not timed or sum(r["seconds"] for r in timed) <= 0:
        return unknown(len(timed), "no active time measured")
    boot = TwoWayBootstrap.of_rows(timed)
    rate = boot.ratio([r["characters"] for r in timed], [r["seconds"] / 60.0 for r in timed])
    if not rate.has_interval or rate.value <= 0:
        return rate
    # A rate is positive, and skewed at a few verdicts: its interval is taken on the log scale (the delta
    # method: the same standard error relative to the rate), so it never reaches below zero.
    relative = (rate.high - rate.low) / 2 / rate.value
    return replace(
        rate,
        low=rate.value * math.exp(-relative),
        high=rate.value * math.exp(relative),
        method=f"{rate.method}, on the log scale",
    )


def share_of_a(chosen_a: int, n: int) -> tuple[Estimate, float]:
    test = binomtest(chosen_a, n, 0.5)
    interval = test.proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return Estimate(
        chosen_a / n, interval.low, interval.high, n, method="exact binomial (Clopper-Pearson)"
    ), test.pvalue


def attention_accuracy(records) -> Estimate:
    """Share of attention checks judged right, with its exact (Clopper-Pearson) interval."""
    if not records:
        return unknown(0, "no attention checks judged")
    right = sum(bool(r["correct"]) for r in records)
    interval = binomtest(right, len(records), 0.5).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return Estimate(
        right / len(records), interval.low, interval.high, len(records), method="exact binomial (Clopper-Pearson)"
    )


def _flags(q: JudgeQuality, judges: int) -> tuple[str, ...]:
    flags = []
    rate = q.reading_rate
    # The lower end of the interval above the ceiling; with no interval because every timed verdict
    # read at the same rate (or there is one), that rate.
    slowest = rate.low if rate.has_interval else rate.value
    if rate.estimable and slowest > READING_CEILING_CHARS_PER_MINUTE:
        spread = (
            f"95% interval {rate.low:,.0f} – {rate.high:,.0f}" if rate.has_interval else "no interval: " + rate.method
        )
        flags.append(
            f"reads faster than a human can: {rate.value:,.0f} characters a minute of active time "
            f"({spread}), above the ceiling of {READING_CEILING_CHARS_PER_MINUTE:,} (adults read about 1,000)"
        )
    if q.fast_verdicts:
        flags.append(
            f"{q.fast_verdicts} verdict{'s' if q.fast_verdicts != 1 else ''} within {FAST_VERDICT_SECONDS} s of "
            "opening the trial: too soon to have read the question and answers"
        )
    if q.position_p_adjusted <= POSITION_ALPHA:
        chose_a = round(q.share_a.value * q.verdicts)
        flags.append(
            f"answer position: chose A in {chose_a} of {q.verdicts} verdicts, where sides are drawn at random "
            f"(exact binomial test, Holm-adjusted across {judges} judge{'s' if judges != 1 else ''}: "
            f"p = {q.position_p_adjusted:.2g})"
        )
    checks = q.attention
    slips = checks.n - round(checks.value * checks.n) if checks.n else 0
    if checks.n >= ATTENTION_MIN_CHECKS and checks.value < ATTENTION_PASS_SHARE and slips >= ATTENTION_MIN_SLIPS:
        flags.append(
            f"attention checks: {round(checks.value * checks.n)} of {checks.n} right, below "
            f"{ATTENTION_PASS_SHARE:.0%} (easy questions with unambiguous answers, hidden among the study trials)"
        )
    return tuple(flags)


def judge_quality(records, attention_records=()) -> list[JudgeQuality]:
    """One row per judge (by name) with study verdicts, with flags. ``records``: the study's verdicts;
    ``attention_records``: the attention checks' (``verdict_records(..., role="attention")``), read for their
    accuracy and flag only."""
    by_judge: dict[str, list[dict]] = {}
    for r in records:
        by_judge.setdefault(r["judge"], []).append(r)
    checks: dict[str, list[dict]] = {}
    for r in attention_records:
        checks.setdefault(r["judge"], []).append(r)
    position = {}
    for judge, own in by_judge.items():
        position[judge] = share_of_a(sum(r["chosen"] == "A" for r in own), len(own))
    adjusted = holm({judge: p for judge, (_, p) in position.items()})
    panel = []
    for judge in sorted(by_judge):
        own = by_judge[judge]
        share_a, p = position[judge]
        row = JudgeQuality(
            judge=judge,
            verdicts=len(own),
            accuracy=share_correct(own),
            median_active_seconds=median_seconds([r["seconds"] for r in own if r["seconds"] is not None]),
            reading_rate=reading_rate(own),
            fast_verdicts=sum(r["seconds_on_page"] < FAST_VERDICT_SECONDS for r in own),
            share_a=share_a,
            position_p=p,
            position_p_adjusted=adjusted[judge],
            attention=attention_accuracy(checks.get(judge, [])),
            flags=(),
        )
        panel.append(replace(row, flags=_flags(row, len(by_judge))))
    return panel


FAST_COLUMN = f"verdicts_within_{FAST_VERDICT_SECONDS}_s_of_opening"
INTERVAL_FIGURES = ("accuracy", "median_active_seconds", "characters_per_active_minute", "share_answer_a")
PANEL_COLUMNS = [
    "judge",
    "verdicts",
    *(f"{name}{end}" for name in INTERVAL_FIGURES[:3] for end in ("", "_low", "_high")),
    FAST_COLUMN,
    *(f"share_answer_a{end}" for end in ("", "_low", "_high")),
    "position_p",
    "position_p_holm",
    "attention_checks",
    *(f"attention_accuracy{end}" for end in ("", "_low", "_high")),
    "flags",
]


def _interval_columns(name: str, e: Estimate) -> dict:
    """A figure and its interval as CSV columns; a figure with no interval is left empty (not reported)."""
    if not e.has_interval:
        return {name: None, f"{name}_low": None, f"{name}_high": None}
    return {name: e.value, f"{name}_low": e.low, f"{name}_high": e.high}


def panel_rows(panel: list[JudgeQuality]):
    """The panel as CSV rows (one per judge, in ``PANEL_COLUMNS`` order), flags joined by ' | '."""
    for q in panel:
        yield {
            "judge": q.judge,
            "verdicts": q.verdicts,
            **_interval_columns("accuracy", q.accuracy),
            **_interval_columns("median_active_seconds", q.median_active_seconds),
            **_interval_columns("characters_per_active_minute", q.reading_rate),
            FAST_COLUMN: q.fast_verdicts,
            **_interval_columns("share_answer_a", q.share_a),
            "position_p": q.position_p,
            "position_p_holm": q.position_p_adjusted,
            "attention_checks": q.attention.n,
            **_interval_columns("attention_accuracy", q.attention),
            "flags": " | ".join(q.flags),
        }
