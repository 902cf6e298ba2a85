"""Cluster-aware inference for judged trials. Pure numpy + scipy; no Django.

Judgments are not independent: one judge judges many trials and one question is judged many times.
Every interval here accounts for both. The variance of a statistic is the two-way cluster-robust one
of Cameron, Gelbach & Miller (2011, "Robust inference with multiway clustering"),

    V = V_question + V_judge - V_cell

each term a one-way cluster bootstrap variance (resample questions; resample judges; resample
question x judge cells), floored at max(V_question, V_judge). The pigeonhole bootstrap (Owen & Eckles
2012) counts the residual variance twice: on the platform's designs it covered 100% where 95% was
asked, at a heavy cost in power (docs/analysis.md, tests/results/test_inference_validity.py).
Observations with no judge (a model answering alone) are resampled by question only.

Each term carries the small-sample factor G / (G - 1) of its G clusters, and intervals use a t
quantile with Welch-Satterthwaite degrees of freedom, not z: with 6 judges, the judges' share of V
is known from 6 clusters only, and z-intervals covered 91% where 95% was asked.

- A level (a share of correct verdicts) gets a Wilson score interval at the *effective* sample size,
  n / design effect, the design effect being V over the binomial variance. So the interval is as wide
  as the clustering makes it, and never collapses to [1, 1] in a small cell.
- A difference between two groups of rows (arms, answer positions, models), a mean of other values
  and a ratio of means are resampled jointly within each resample: estimate +/- t * sqrt(V).
- One-sided tests use the same variances and degrees of freedom (a score test for a level against
  a fixed value, a Wald test for a difference).

A fixed seed makes every page reproducible; docs/analysis.md recomputes each figure from an export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import t as student_t

RESAMPLES = 2000
SEED = 12345
CONFIDENCE = 0.95
RESAMPLED_UNITS = (
    "questions and judges (two-way cluster-robust variance from question, judge and cell bootstraps; "
    "Wilson score intervals at the effective sample size for shares)"
)


@dataclass(frozen=True)
class Spread:
    """A statistic's two-way variance and the degrees of freedom it is known with."""

    variance: float
    df: float

    def quantile(self, confidence: float = CONFIDENCE) -> float:
        return float(student_t.ppf(0.5 + confidence / 2, self.df))


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval; ``n`` observations, ``n_effective`` after clustering (shares)."""

    value: float
    low: float
    high: float
    n: int
    n_effective: float | None = None
    df: float | None = None
    method: str = ""

    @property
    def estimable(self) -> bool:
        return self.n > 0 and math.isfinite(self.value)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def within(self, lowest: float, highest: float) -> "Estimate":
        """The interval cut to the values the figure can take (a Brier score is never below 0)."""
        if not self.has_interval:
            return self
        return replace(self, low=max(self.low, lowest), high=min(self.high, highest))


def unknown(n: int, why: str) -> Estimate:
    return Estimate(math.nan, math.nan, math.nan, n, method=why)


@dataclass(frozen=True)
class OneSidedTest:
    """A one-sided test of ``estimate`` against ``null`` (H1: greater); ``p`` is None when it cannot be run."""

    name: str
    estimate: Estimate
    null: float
    p: float | None
    reason: str = ""  # why it cannot be run

    def rejects(self, alpha: float) -> bool:
        return self.p is not None and self.p <= alpha


def wilson(successes: float, n: float, *, quantile: float) -> tuple[float, float]:
    """Wilson score interval for a proportion; ``n`` may be an effective (non-integer) size."""
    if n <= 0:
        return math.nan, math.nan
    z = quantile
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At p = 0 or 1 one bound equals p exactly; rounding must not leave p outside (plots draw p - low).
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


class TwoWayBootstrap:
    """Two-way clustered variances of statistics of observations labelled by question and judge.

    ``judges[i]`` may be None: that observation is not resampled by judge (a model answering alone).

    Means, ratios of sums and their differences are linear in per-unit sums (after linearising the
    ratio), so their one-way bootstrap variances are computed exactly, as the limit of infinitely many
    resamples: the sum of squared per-unit influence totals. That is fast at any size and free of
    resampling noise. Statistics that are not linear (a calibration error, a refitted model, coupled
    throughput inputs) are resampled: ``sum_draws`` gives a sum per resample, with multiplicities drawn
    once per scheme and shared by every call, and ``spread`` combines their variances.
    """

    SCHEMES = ("question", "judge", "cell")

    def __init__(self, questions, judges, *, resamples: int = RESAMPLES, seed: int = SEED):
        questions, judges = list(questions), list(judges)
        self.n = len(questions)
        self.resamples = resamples
        self.seed = seed
        question_text = [str(q) for q in questions]
        judge_text = ["" if j is None else str(j) for j in judges]
        has_judge = np.array([j is not None for j in judges], bool)
        self.codes, self.unit_count, self._weights = {}, {}, {}
        # Units are numbered in text order, so docs/analysis.md can number them alike from an export.
        for scheme, labels, resampled in (
            ("question", question_text, np.ones(self.n, bool)),
            ("judge", judge_text, has_judge),
            # An observation with no judge is no cell's either: subtracting its variance as a cell would
            # cancel the question term that is its only variance (a model answering alone).
            ("cell", [q + "\x00" + j for q, j in zip(question_text, judge_text)], has_judge),
        ):
            names = sorted({label for label, r in zip(labels, resampled) if r})
            index = {name: i for i, name in enumerate(names)}
            self.codes[scheme] = np.array([index[x] if r else -1 for x, r in zip(labels, resampled)], dtype=int)
            self.unit_count[scheme] = len(names)

    @classmethod
    def of_rows(cls, rows, **kwargs) -> "TwoWayBootstrap":
        """Rows of the trials or model-answers export: clustered by ``question_id`` and ``judge``."""
        return cls([r["question_id"] for r in rows], [r.get("judge") or None for r in rows], **kwargs)

    def units(self, scheme: str, mask=None) -> int:
        """How many questions, judges or cells the rows in ``mask`` come from."""
        codes = self.codes[scheme][self._mask(mask)]
        return len(np.unique(codes[codes >= 0]))

    def _mask(self, mask) -> np.ndarray:
        return np.ones(self.n, bool) if mask is None else np.asarray(mask, bool)

    # ------------------------------------------------------------- resampled (non-linear) statistics --
    def weights(self, scheme: str) -> np.ndarray:
        """Each unit's multiplicity in each resample of ``scheme`` (resamples x units), drawn once."""
        if scheme not in self._weights:
            rng = np.random.default_rng([self.seed, self.SCHEMES.index(scheme)])
            self._weights[scheme] = _multiplicities(rng, self.unit_count[scheme], self.resamples)
        return self._weights[scheme]

    def sum_draws(self, scheme: str, values, mask=None) -> np.ndarray:
        """sum(values[mask]) in each resample of ``scheme``, one per resample.

        Every call reuses this bootstrap's multiplicities, so statistics built from several sums (a ratio,
        a calibration error, coupled throughput inputs) are resampled jointly, draw by draw.
        """
        values, mask = np.asarray(values, float), self._mask(mask)
        codes, weights = self.codes[scheme], self.weights(scheme)
        resampled = mask & (codes >= 0)
        unit_sums = np.bincount(codes[resampled], weights=values[resampled], minlength=weights.shape[1])
        return weights @ unit_sums + values[mask & (codes < 0)].sum()

    def sums_draws(self, scheme: str, columns) -> np.ndarray:
        """``sum_draws`` of several columns at once (observations x k -> resamples x k): one matrix
        product, for statistics built from many sums (a calibration error over its bins)."""
        columns = np.asarray(columns, float)
        codes, weights = self.codes[scheme], self.weights(scheme)
        resampled = codes >= 0
        unit_sums = np.column_stack(
            [np.bincount(codes[resampled], weights=c[resampled], minlength=weights.shape[1]) for c in columns.T]
        )
        return weights @ unit_sums + columns[~resampled].sum(axis=0)

    def ratio_draws(self, scheme: str, numerator, denominator, mask=None) -> np.ndarray:
        top = self.sum_draws(scheme, numerator, mask)
        bottom = self.sum_draws(scheme, denominator, mask)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), math.nan)

    def spread(self, draws_of, mask, *, by_question_only: bool = False) -> Spread:
        """Two-way variance of a statistic of the rows in ``mask``, from ``draws_of(scheme)``, its values
        in the resamples of each scheme."""
        schemes = ("question",) if by_question_only else self.SCHEMES
        return self._combine({scheme: draws_variance(draws_of(scheme)) for scheme in schemes}, mask)

    # ----------------------------------------------------------------------- linear statistics, exact --
    def influence_spread(self, influence, mask, *, by_question_only: bool = False) -> Spread:
        """Two-way variance of a linear statistic given each observation's influence on it (0 outside
        ``mask``): per scheme the bootstrap's own variance of the resampled statistic, in closed form."""
        influence = np.asarray(influence, float)
        schemes = ("question",) if by_question_only else self.SCHEMES
        v = {}
        for scheme in schemes:
            codes = self.codes[scheme]
            resampled = codes >= 0
            totals = np.bincount(codes[resampled], weights=influence[resampled], minlength=self.unit_count[scheme])
            units = max(self.unit_count[scheme], 1)
            # Multinomial(G, 1/G) multiplicities: Var(sum w_g t_g) = sum t_g^2 - (sum t_g)^2 / G.
            v[scheme] = float((totals**2).sum() - totals.sum() ** 2 / units)
        return self._combine(v, mask)

    def _combine(self, v: dict, mask) -> Spread:
        return two_way_spread(v, {scheme: self.units(scheme, mask) for scheme in v})

    def _ratio_influence(self, numerator, denominator, mask) -> tuple[float, np.ndarray]:
        """A ratio of sums over ``mask`` and each observation's influence on it (linearised)."""
        bottom = denominator[mask].sum()
        value = float(numerator[mask].sum() / bottom)
        return value, np.where(mask, (numerator - value * denominator) / bottom, 0.0)

    def mean_spread(self, values, mask=None, *, by_question_only: bool = False) -> tuple[float, Spread]:
        values, mask = np.asarray(values, float), self._mask(mask)
        value, influence = self._ratio_influence(values, np.ones(self.n), mask)
        return value, self.influence_spread(influence, mask, by_question_only=by_question_only)

    def proportion(self, outcomes, mask=None, *, confidence: float = CONFIDENCE) -> Estimate:
        """A share of 0/1 outcomes: Wilson interval at the effective sample size."""
        mask = self._mask(mask)
        n = int(mask.sum())
        if n == 0:
            return unknown(0, "no observations")
        value, spread = self.mean_spread(outcomes, mask)
        if value in (0.0, 1.0):
            # Every outcome alike: the design effect cannot be estimated. Assume verdicts on one question
            # agree (question difficulty is the usual cluster): the effective size and the degrees of
            # freedom are the questions'.
            questions = self.units("question", mask)
            n_eff = float(min(n, questions))
            spread = Spread(spread.variance, max(1.0, questions - 1.0))
        else:
            n_eff = effective_size(value, spread.variance, n)
        low, high = wilson(value * n_eff, n_eff, quantile=spread.quantile(confidence))
        return Estimate(value, low, high, n, n_eff, spread.df, "Wilson score at the effective size")

    def mean(self, values, mask=None, *, by_question_only: bool = False, confidence: float = CONFIDENCE) -> Estimate:
        """A mean of any values: estimate +/- t * two-way standard error."""
        mask = self._mask(mask)
        if not mask.any():
            return unknown(0, "no observations")
        value, spread = self.mean_spread(values, mask, by_question_only=by_question_only)
        return wald_estimate(value, spread, int(mask.sum()), confidence)

    def ratio(self, numerator, denominator, mask=None, *, confidence: float = CONFIDENCE) -> Estimate:
        """sum(numerator) / sum(denominator) over ``mask``: a ratio of means, not a mean of ratios."""
        numerator, denominator, mask = np.asarray(numerator, float), np.asarray(denominator, float), self._mask(mask)
        if not mask.any() or denominator[mask].sum() == 0:
            return unknown(int(mask.sum()), "no observations")
        value, influence = self._ratio_influence(numerator, denominator, mask)
        return wald_estimate(value, self.influence_spread(influence, mask), int(mask.sum()), confidence)

    def difference(self, values, mask_a, mask_b, *, confidence: float = CONFIDENCE) -> Estimate:
        """mean(a) - mean(b): the two influences subtract, so shared judges and questions count."""
        values, mask_a, mask_b = np.asarray(values, float), self._mask(mask_a), self._mask(mask_b)
        n = int(mask_a.sum() + mask_b.sum())
        if not (mask_a.any() and mask_b.any()):
            return unknown(n, "a group has no observations")
        ones = np.ones(self.n)
        value_a, influence_a = self._ratio_influence(values, ones, mask_a)
        value_b, influence_b = self._ratio_influence(values, ones, mask_b)
        spread = self.influence_spread(influence_a - influence_b, mask_a | mask_b)
        return wald_estimate(value_a - value_b, spread, n, confidence)


def two_way_spread(v: dict, clusters: dict) -> Spread:
    """A statistic's variance from its bootstrap variance under each scheme (``v``, by scheme) and the number
    of units each scheme resampled: V = max(V_question + V_judge - V_cell, V_question, V_judge) with CR1
    factors, and its degrees of freedom. With the question scheme alone, that scheme's."""
    v, df = dict(v), {}
    for scheme in v:
        units = clusters[scheme]
        # CR1's small-sample factor: with 6 judges the bootstrap alone understates their share by a sixth.
        v[scheme] *= units / (units - 1) if units > 1 else 1.0
        df[scheme] = max(units - 1, 1)
    if set(v) == {"question"}:
        return Spread(v["question"], df["question"])
    variance = max(v["question"] + v["judge"] - v["cell"], v["question"], v["judge"])
    # Welch-Satterthwaite: the degrees of freedom of a sum of variances each known from few clusters.
    denominator = v["question"] ** 2 / df["question"] + v["judge"] ** 2 / df["judge"]
    satterthwaite = (v["question"] + v["judge"]) ** 2 / denominator if denominator > 0 else math.inf
    return Spread(variance, max(1.0, min(satterthwaite, df["question"] + df["judge"])))


def draws_variance(draws: np.ndarray) -> float:
    """The variance of a statistic's bootstrap draws; a draw that is not finite says nothing and is left out."""
    finite = draws[np.isfinite(draws)]
    return float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0


def effective_size(value: float, variance: float, n: int) -> float:
    """n divided by the design effect (never above n: clustering does not add information)."""
    binomial = value * (1 - value) / n
    if binomial <= 0 or not variance > 0 or not math.isfinite(variance):
        return float(n)
    return n / max(1.0, variance / binomial)


def wald_estimate(value: float, spread: Spread, n: int, confidence: float = CONFIDENCE) -> Estimate:
    # A variance at rounding level (one observation, identical values) is no variation at all.
    if not (math.isfinite(value) and spread.variance > 1e-24 * max(1.0, value * value)):
        return Estimate(value, math.nan, math.nan, n, method="no variation to estimate a standard error from")
    half = spread.quantile(confidence) * math.sqrt(spread.variance)
    return Estimate(value, value - half, value + half, n, None, spread.df, "estimate ± t × two-way clustered SE")


def _difference_se(estimate: Estimate, confidence: float) -> float | None:
    """The standard error a difference's (symmetric t) interval was built from; None without spread."""
    if not (estimate.has_interval and estimate.high > estimate.low):
        return None
    return (estimate.high - estimate.low) / (2 * float(student_t.ppf(0.5 + confidence / 2, estimate.df or math.inf)))


def greater_than(name: str, estimate: Estimate, null: float, confidence: float = CONFIDENCE) -> OneSidedTest:
    """One-sided test of H0: true value <= null against H1: greater, with the estimate's clustered spread.

    A share (an estimate with an effective size) gets the score test at the effective size, the test
    its Wilson interval inverts; a difference gets a Wald test with the standard error its interval
    was built from. Both use the estimate's t degrees of freedom.
    """
    if not estimate.estimable:
        return OneSidedTest(name, estimate, null, None, "nothing to test: no observations")
    df = estimate.df or math.inf
    if estimate.n_effective is not None:
        se = math.sqrt(null * (1 - null) / estimate.n_effective) if 0 < null < 1 else None
    else:
        se = _difference_se(estimate, confidence)
    if se is None:
        return OneSidedTest(name, estimate, null, None, "cannot be tested: no variation to estimate a standard error")
    return OneSidedTest(name, estimate, null, float(student_t.sf((estimate.value - null) / se, df)))


def lower_bound(test: OneSidedTest, alpha: float, confidence: float = CONFIDENCE) -> float | None:
    """The one-sided (1 - alpha) lower confidence bound that ``test`` inverts: above its null exactly when
    its p-value is at most alpha (a two-sided 95% interval can hold the null while a one-sided test at 5%
    rejects it). A share's is the Wilson lower limit at the t quantile; a difference's, the estimate less
    that quantile's standard errors. ``confidence``: the level the estimate's interval was built at.
    None where the test cannot be run."""
    if test.p is None:
        return None
    estimate = test.estimate
    quantile = float(student_t.ppf(1 - alpha, estimate.df or math.inf))
    if estimate.n_effective is not None:
        return wilson(estimate.value * estimate.n_effective, estimate.n_effective, quantile=quantile)[0]
    return estimate.value - quantile * _difference_se(estimate, confidence)


def holm(p_values: dict) -> dict:
    """Holm-adjusted p-values of a family (None stays None and does not count toward the family)."""
    known = sorted((p, name) for name, p in p_values.items() if p is not None)
    adjusted, running = {}, 0.0
    for rank, (p, name) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[name] = running
    return {name: adjusted.get(name) for name in p_values}


def _multiplicities(rng: np.random.Generator, units: int, resamples: int, chunk: int = 100) -> np.ndarray:
    """How often each of ``units`` is drawn in each resample (rows sum to ``units``).

    Drawn as ``units`` uniform picks per resample and counted, a chunk of resamples at a time: as a
    multinomial, but fast with thousands of units and never holding more than a chunk of picks."""
    out = np.zeros((resamples, units), dtype=np.float32)
    if units == 0:
        return out
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        picks = rng.integers(0, units, size=(rows, units)) + np.arange(rows)[:, None] * units
        out[start : start + rows] = np.bincount(picks.ravel(), minlength=rows * units).reshape(rows, units)
    return out
