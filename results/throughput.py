"""A small, explicit model of human-feedback throughput.

Pure Python + numpy; no Django. Every input is either set by hand (a number)
or measured (a distribution: bootstrap draws of what judges did), and every
output is computed draw by draw, so measured uncertainty carries through to an
interval on each output.

Inputs measured from verdicts (``measured_from_verdicts``) are ratios of sums
(a reading rate is total words / total minutes, never the mean of per-verdict
rates), resampled by question, by judge and by cell as the analysis page's
figures are, every input in the same resamples, so inputs measured from the same
verdicts stay coupled. Intervals then get the two-way combination and
small-sample corrections the analysis page uses (``Figure.of``).

The model
---------
    seconds per judgment   s = active_seconds            if given (measured time per judgment)
                             = 60 * words_per_trial / wpm  otherwise (pure reading time)
    judge-seconds per year   T = hours_per_judge_per_year * 3600 * judges
    judgments per year       J = T / s
    words reviewed per year  W = J * words_per_trial
    pages per year           P = W / words_per_page
    tokens reviewed per year K = W * tokens_per_word
    correct judgments / year   = J * judge_accuracy

    For a target of N judged trajectories:
    judgments needed   n = N * judgments_per_trajectory
    judge-hours        H = n * s / 3600
    cost               C = H * cost_per_judge_hour
    calendar years       = H / (hours_per_judge_per_year * judges)

    Generation versus review:
    human review rate (tokens/s, one judge) r = tokens_per_word * words_per_trial / s
    ratio                                     = model_tokens_per_second / r   (per judge)
                                                and / (r * judges)            (whole pool)

    Marginal value of faster judging: a judge 10% faster needs s / 1.1 per judgment,
    so J grows by 10% and H and C for any target shrink by 1 - 1/1.1 (9.1%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from .inference import Spread, TwoWayBootstrap, draws_variance, two_way_spread

TARGETS = {"50 thousand": 5e4, "50 million": 5e7, "500 million": 5e8}
DRAWS = 2000


class EstimatorInputError(ValueError):
    """Inputs out of range; ``errors`` maps input name to message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass(frozen=True)
class Quantity:
    """A number set by hand, or bootstrap draws from a measurement.

    ``draws``: from generated turns, the bootstrap distribution of the statistic resampling trials, and
    ``clusters["trial"]`` how many trials. ``resampled``: from verdicts, the statistic in each resample of
    each scheme of the two-way bootstrap (question, judge, cell: ``inference.TwoWayBootstrap``), and
    ``clusters`` the units each scheme resampled.
    ``judges``: for an input measured from verdicts, how many judges (1: nothing resampled).
    """

    value: float
    draws: np.ndarray | None = field(default=None, compare=False)
    source: str = "set by hand"
    judges: int | None = None
    resampled: dict | None = field(default=None, compare=False)
    clusters: dict | None = field(default=None, compare=False)

    @classmethod
    def measured(
        cls, numerators, denominators=None, clusters=None, *, source: str, draws: int = DRAWS, seed: int = 0
    ) -> "Quantity":
        """sum(numerators) / sum(denominators) (a mean where there are none) over measurements made apart from
        verdicts (generated turns), with the bootstrap distribution of that ratio resampling whole
        ``clusters`` (the turns of one trial share its passage and its batch; by default each measurement is
        its own cluster). A ratio of sums, not a mean of per-turn ratios: a short turn's ratio counts for
        its few words only."""
        numerators = np.asarray(numerators, dtype=float)
        denominators = np.ones(len(numerators)) if denominators is None else np.asarray(denominators, dtype=float)
        clusters = list(range(len(numerators))) if clusters is None else list(clusters)
        keep = np.isfinite(numerators) & np.isfinite(denominators)
        if not keep.any() or denominators[keep].sum() <= 0:
            raise ValueError(f"no measurements for {source}")
        # The clusters are resampled as a bootstrap's questions are (no judges here).
        bootstrap = TwoWayBootstrap(
            [c for c, k in zip(clusters, keep) if k], [None] * int(keep.sum()), resamples=draws, seed=seed
        )
        numerators, denominators = numerators[keep], denominators[keep]
        trials = bootstrap.unit_count["question"]
        return cls(
            value=float(numerators.sum() / denominators.sum()),
            # One cluster resamples to itself: no spread to estimate, so no interval (and a warning).
            draws=bootstrap.ratio_draws("question", numerators, denominators) if trials > 1 else None,
            source=f"{source} (n={len(numerators)}, {trials} clusters)",
            clusters={"trial": trials},
        )


@dataclass(frozen=True)
class Inputs:
    reading_wpm: Quantity
    words_per_trial: Quantity
    judgments_per_trajectory: Quantity
    hours_per_judge_per_year: Quantity
    judges: Quantity
    cost_per_judge_hour: Quantity
    tokens_per_word: Quantity
    judge_accuracy: Quantity
    active_seconds_per_judgment: Quantity | None = None  # None: pure reading time from words / wpm
    model_tokens_per_second: Quantity | None = None
    words_per_page: float = 500.0

    def validate(self) -> None:
        errors = {}
        positive = [
            "reading_wpm",
            "words_per_trial",
            "judgments_per_trajectory",
            "hours_per_judge_per_year",
            "judges",
            "tokens_per_word",
            "active_seconds_per_judgment",
            "model_tokens_per_second",
        ]
        for name in positive:
            q = getattr(self, name)
            if q is not None and not (np.isfinite(q.value) and q.value > 0):
                errors[name] = "must be greater than 0"
        if not (np.isfinite(self.cost_per_judge_hour.value) and self.cost_per_judge_hour.value >= 0):
            errors["cost_per_judge_hour"] = "must be 0 or more"
        if not 0 <= self.judge_accuracy.value <= 1:
            errors["judge_accuracy"] = "must be between 0 and 1"
        if self.hours_per_judge_per_year.value > 8784:
            errors["hours_per_judge_per_year"] = "a year has at most 8,784 hours"
        if not self.words_per_page > 0:
            errors["words_per_page"] = "must be greater than 0"
        if errors:
            raise EstimatorInputError(errors)

    def rows(self) -> list[tuple[str, float, str]]:
        """(name, central value, source) of every input given."""
        return [
            (f.name, getattr(self, f.name).value, getattr(self, f.name).source)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Quantity)
        ] + [("words_per_page", self.words_per_page, "fixed")]

    def warnings(self) -> list[str]:
        """Inputs that contradict each other or rest on one judge, in plain words (valid inputs only)."""
        notes = []
        if self.active_seconds_per_judgment is not None:
            seconds, hours = self.active_seconds_per_judgment.value, self.hours_per_judge_per_year.value
            words, wpm = self.words_per_trial.value, self.reading_wpm.value
            reading = 60.0 * words / wpm
            # 1%: measured from the same verdicts, the two agree up to rounding and verdicts without a time.
            if reading > 1.01 * seconds:
                notes.append(
                    f"Inconsistent inputs: reading {words:,.0f} words at {wpm:,.0f} words per minute takes "
                    f"{reading:,.0f} s, more than the {seconds:,.0f} s per judgment, so judges would read "
                    f"{hours * reading / seconds:,.0f} hours a year, more than their {hours:,.0f} working hours. "
                    "Either they read faster than that (measure the reading rate from the same experiments) or "
                    "the seconds per judgment are too low."
                )
        given = [(f.name, q) for f in fields(self) if isinstance(q := getattr(self, f.name), Quantity)]
        one_judge = [name for name, q in given if q.judges == 1]
        if one_judge:
            notes.append(
                f"{', '.join(one_judge)}: measured from one judge, so no interval; "
                "one judge's speed and accuracy need not be anyone else's."
            )
        one_trial = [name for name, q in given if (q.clusters or {}).get("trial") == 1]
        if one_trial:
            notes.append(
                f"{', '.join(one_trial)}: measured from the turns of one trial, so no interval; "
                "one trial's passage and batches need not be anyone else's."
            )
        return notes


@dataclass(frozen=True)
class Figure:
    """An output: central value and interval (equal when every input was set by hand)."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, central, resampled: dict, clusters: dict, turns=None, trials: int = 0) -> "Figure":
        """The output ``central`` with its 95% interval, from its values in the resamples of the verdicts'
        two-way bootstrap (``resampled``, by scheme; ``clusters``, the units each scheme resampled) and in
        the turns' bootstrap over ``trials`` trials (``turns``); with neither, a point.

        As in results.inference: each scheme's variance with its CR1 factor G / (G - 1), combined over
        question, judge and cell (``two_way_spread``), and t quantiles with its degrees of freedom. A
        percentile interval over 6 resampled judges, with normal quantiles, covered 83% where 95% was asked;
        resampling judges alone, where judges share questions (a question's length is its judges'), 68%.
        The turns' variance, with its own factor and G - 1 degrees of freedom, is added (Welch-Satterthwaite
        for the sum's degrees of freedom: measurements from 3 trials are not known to the normal's
        precision). On the log scale, because every output is a product or ratio of positive inputs: a
        right-skewed time per judgment is symmetric there, and judgments per year stay the reciprocal of
        seconds per judgment; on the figure's own scale, cut at 0, where a resample gives 0 (a judge
        accuracy with no correct verdict).
        """
        # An output that no measured input enters is the same in every resample: a plain number.
        resampled = {scheme: np.asarray(d, float) for scheme, d in resampled.items() if np.ndim(d)}
        turns = np.asarray(turns, float) if np.ndim(turns) else None
        if not resampled and turns is None:
            return cls(float(central), float(central), float(central))
        # A resample with no timed verdict has no reading rate: it says nothing.
        finite = [d[np.isfinite(d)] for d in [*resampled.values(), *([] if turns is None else [turns])]]
        on_log = central > 0 and all((d > 0).all() for d in finite)
        scale = np.log if on_log else np.asarray
        spread = (
            two_way_spread({scheme: draws_variance(scale(d)) for scheme, d in resampled.items()}, clusters)
            if resampled
            else Spread(0.0, math.inf)
        )
        if turns is not None:
            # One scheme, its units the trials (as Quantity.measured resamples them): its CR1 factor and df.
            turns_spread = two_way_spread({"question": draws_variance(scale(turns))}, {"question": trials})
            parts = [p for p in (spread, turns_spread) if p.variance > 0]
            variance = spread.variance + turns_spread.variance
            denominator = sum(p.variance**2 / p.df for p in parts)
            spread = Spread(variance, variance**2 / denominator if denominator > 0 else math.inf)
        half = spread.quantile() * math.sqrt(spread.variance)
        if on_log:
            return cls(float(central), float(central * math.exp(-half)), float(central * math.exp(half)))
        return cls(float(central), max(0.0, float(central - half)), float(central + half))


def _compute(v: dict) -> dict:
    """The model's equations, on scalars or on arrays of draws alike."""
    if v["active_seconds_per_judgment"] is not None:
        seconds = v["active_seconds_per_judgment"]
    else:
        seconds = 60.0 * v["words_per_trial"] / v["reading_wpm"]
    judge_seconds = v["hours_per_judge_per_year"] * 3600.0 * v["judges"]
    judgments = judge_seconds / seconds
    words = judgments * v["words_per_trial"]
    out = {
        "seconds_per_judgment": seconds,
        "judgments_per_year": judgments,
        "correct_judgments_per_year": judgments * v["judge_accuracy"],
        "words_per_year": words,
        "pages_per_year": words / v["words_per_page"],
        "tokens_per_year": words * v["tokens_per_word"],
        "reading_hours_per_judge": words / v["reading_wpm"] / 60.0 / v["judges"],
        "review_tokens_per_second_per_judge": v["tokens_per_word"] * v["words_per_trial"] / seconds,
    }
    for label, n in TARGETS.items():
        hours = n * v["judgments_per_trajectory"] * seconds / 3600.0
        out[f"judge_hours[{label}]"] = hours
        out[f"cost[{label}]"] = hours * v["cost_per_judge_hour"]
        out[f"calendar_years[{label}]"] = hours / (v["hours_per_judge_per_year"] * v["judges"])
    if v["model_tokens_per_second"] is not None:
        per_judge = out["review_tokens_per_second_per_judge"]
        out["generation_to_review_ratio_per_judge"] = v["model_tokens_per_second"] / per_judge
        out["generation_to_review_ratio_all_judges"] = v["model_tokens_per_second"] / (per_judge * v["judges"])
    return out


def _ten_percent_faster(v: dict) -> dict:
    """The same inputs with judges 10% faster (time per judgment / 1.1)."""
    v = dict(v)
    if v["active_seconds_per_judgment"] is not None:
        v["active_seconds_per_judgment"] = v["active_seconds_per_judgment"] / 1.1
    else:
        v["reading_wpm"] = v["reading_wpm"] * 1.1
    return v


def estimate(inputs: Inputs) -> dict[str, Figure]:
    """Every output with its interval, plus the effect of a 10% faster judge.

    Each output is computed on the central inputs, on every resample of each scheme of the verdicts'
    bootstrap (every input measured from verdicts resampled together, the others central) and on every
    draw of the turns' (likewise): ``Figure.of`` combines them."""
    inputs.validate()
    names = [f.name for f in fields(Inputs) if f.name != "words_per_page"]
    given = {n: q for n in names if (q := getattr(inputs, n)) is not None}
    central = {n: (given[n].value if n in given else None) for n in names} | {"words_per_page": inputs.words_per_page}
    from_verdicts = {n: q for n, q in given.items() if q.resampled}
    from_turns = {n: q.draws for n, q in given.items() if q.draws is not None}
    trials = min((given[n].clusters["trial"] for n in from_turns), default=0)
    # The fewest units any input was measured from, per scheme (conservative where inputs differ).
    clusters = {s: min(q.clusters[s] for q in from_verdicts.values()) for s in TwoWayBootstrap.SCHEMES if from_verdicts}

    def figures(adjust, keys) -> dict[str, Figure]:
        values = _compute(adjust(central))
        resampled = {
            s: _compute(adjust(central | {n: q.resampled[s] for n, q in from_verdicts.items()}))
            for s in (TwoWayBootstrap.SCHEMES if from_verdicts else ())
        }
        turns = _compute(adjust(central | from_turns)) if from_turns else None
        return {
            key: Figure.of(
                values[key],
                {s: r[key] for s, r in resampled.items()},
                clusters,
                None if turns is None else turns[key],
                trials,
            )
            for key in keys or values
        }

    result = figures(lambda v: v, None)
    faster = figures(_ten_percent_faster, ["judgments_per_year", "judge_hours[50 million]", "cost[50 million]"])
    return result | {f"10% faster: {key}": figure for key, figure in faster.items()}


VERDICT_INPUTS = ("words_per_trial", "active_seconds_per_judgment", "reading_wpm", "judge_accuracy")


def measured_from_verdicts(verdicts, names, *, source: str, draws: int = DRAWS) -> dict[str, Quantity]:
    """Inputs measured from judges' verdicts, each a ratio of sums, resampled jointly by question, judge and cell.

    ``verdicts``: dicts with ``judge``, ``question_id``, ``words`` read, ``seconds`` (None when not
    timed; 0 is a time) and ``correct``. Over the verdicts (the timed ones for time and rate):

        words_per_trial             = sum(words) / verdicts
        active_seconds_per_judgment = sum(seconds) / timed verdicts
        reading_wpm                 = sum(words) / sum(seconds / 60)
        judge_accuracy              = sum(correct) / verdicts

    The reading rate is a ratio of sums: the mean of per-verdict rates weights a slow judge's verdicts
    like a fast one's: with judges differing in speed, 60 * words / that rate gave 179 s per judgment
    where 280 s was true (issue 10's simulation). Every input is recomputed on the same resamples of
    whole questions, of whole judges and of whole (question, judge) cells (a judge's verdicts are not
    independent, nor are a question's: its length and difficulty are its judges'), so inputs measured
    from the same verdicts stay coupled draw by draw: 60 * words / reading rate is then the active
    seconds of the same resample. Names with no verdicts to measure them are left out; with one judge
    nothing is resampled (no interval, and a warning).
    """
    verdicts = list(verdicts)
    bootstrap = TwoWayBootstrap([v["question_id"] for v in verdicts], [v["judge"] for v in verdicts], resamples=draws)
    words = np.array([float(v["words"]) for v in verdicts])
    timed = np.array([v["seconds"] is not None for v in verdicts], bool)
    seconds = np.array([float(v["seconds"]) if v["seconds"] is not None else 0.0 for v in verdicts])
    correct = np.array([1.0 if v["correct"] else 0.0 for v in verdicts])
    ones, everyone = np.ones(len(verdicts)), np.ones(len(verdicts), bool)
    ratios = {  # name: numerator, denominator, verdicts measured
        "words_per_trial": (words, ones, everyone),
        "active_seconds_per_judgment": (seconds, ones, timed),
        "reading_wpm": (words, seconds / 60.0, timed),
        "judge_accuracy": (correct, ones, everyone),
    }
    out = {}
    for name in sorted(set(names) & set(ratios)):
        numerator, denominator, mask = ratios[name]
        if not mask.any() or denominator[mask].sum() == 0:  # e.g. no reading rate from 0 seconds in all
            continue
        judges = bootstrap.units("judge", mask)
        out[name] = Quantity(
            value=float(numerator[mask].sum() / denominator[mask].sum()),
            source=f"{source} ({int(mask.sum())} verdicts, {judges} judge{'s' if judges != 1 else ''})",
            judges=judges,
            resampled={s: bootstrap.ratio_draws(s, numerator, denominator, mask) for s in bootstrap.SCHEMES}
            if judges > 1
            else None,
            clusters={s: bootstrap.units(s, mask) for s in bootstrap.SCHEMES},
        )
    return out


# ------------------------------------------------------------- presets ----
def hand(value: float, source: str = "set by hand") -> Quantity:
    return Quantity(value=float(value), source=source)


BACK_OF_ENVELOPE_SOURCE = "back-of-envelope assumption"


def back_of_envelope(hours_per_year: float = 2000.0) -> Inputs:
    """250 wpm, 500-word pages, 10 million readers, ~2 tokens per word.

    With a full-time year (2,000 h) this gives 60,000 pages per reader and
    6e11 pages a year; the often-quoted "about 100 billion pages a year"
    corresponds to about 333 reading hours per reader (see ``reading_hours_for_pages``).
    """
    s = BACK_OF_ENVELOPE_SOURCE
    return Inputs(
        reading_wpm=hand(250, s),
        words_per_trial=hand(500, s),
        judgments_per_trajectory=hand(1, s),
        hours_per_judge_per_year=hand(hours_per_year, s),
        judges=hand(1e7, s),
        cost_per_judge_hour=hand(0, s),
        tokens_per_word=hand(2, s),
        judge_accuracy=hand(1, s),
        words_per_page=500.0,
    )


def reading_hours_for_pages(pages_per_year: float, *, readers: float, wpm: float, words_per_page: float) -> float:
    """Reading hours per reader per year needed for ``pages_per_year`` in total."""
    return pages_per_year * words_per_page / wpm / 60.0 / readers


DEFAULTS = {
    "reading_wpm": 250.0,
    "words_per_trial": 1000.0,
    "judgments_per_trajectory": 1.0,
    "hours_per_judge_per_year": 2000.0,
    "judges": 100.0,
    "cost_per_judge_hour": 30.0,
    "tokens_per_word": 1.3,
    "judge_accuracy": 0.8,
}


MEASURABLE = [
    "reading_wpm",
    "words_per_trial",
    "active_seconds_per_judgment",
    "tokens_per_word",
    "judge_accuracy",
    "model_tokens_per_second",
]
LABELS = {
    "reading_wpm": "Reading rate (words per minute)",
    "words_per_trial": "Words read per judgment",
    "active_seconds_per_judgment": "Active seconds per judgment (blank: words / reading rate)",
    "judgments_per_trajectory": "Judgments per trajectory",
    "hours_per_judge_per_year": "Hours per judge per year",
    "judges": "Number of judges",
    "cost_per_judge_hour": "Cost per judge-hour",
    "tokens_per_word": "Tokens per word",
    "judge_accuracy": "Judge accuracy",
    "model_tokens_per_second": "Model generation rate (tokens per second; blank: no comparison)",
}


def build_inputs(
    values: dict[str, float | None], measured: dict[str, Quantity] | None = None, words_per_page: float = 500.0
) -> Inputs:
    """Inputs from hand-set numbers, with measured quantities replacing them where given.

    ``values`` may leave active_seconds_per_judgment and model_tokens_per_second
    as None (optional inputs); every other input must be present.
    """
    measured = measured or {}
    kwargs, missing = {}, []
    for f in fields(Inputs):
        if f.name == "words_per_page":
            continue
        if f.name in measured:
            kwargs[f.name] = measured[f.name]
        elif values.get(f.name) is not None:
            kwargs[f.name] = hand(values[f.name])
        elif f.name in ("active_seconds_per_judgment", "model_tokens_per_second"):
            kwargs[f.name] = None
        else:
            missing.append(f.name)
    if missing:
        raise EstimatorInputError({name: "is required" for name in missing})
    return Inputs(words_per_page=words_per_page, **kwargs)


# Units a duration given in years is shown in, largest first (a Julian year, as the estimator's years).
DURATION_UNITS = (("years", 1.0), ("days", 365.25), ("hours", 365.25 * 24), ("minutes", 365.25 * 24 * 60))


def readable_years(years: float) -> str:
    """A duration given in years, in the largest unit that shows it as at least 1 (seconds below a minute):
    "8.33e-08 calendar years" reads "2.63 seconds"."""
    if years != years:  # NaN
        return "—"
    for unit, per_year in DURATION_UNITS:
        if abs(years) * per_year >= 1:
            return f"{years * per_year:,.3g} {unit}" if years * per_year < 1000 else f"{years * per_year:,.0f} {unit}"
    return f"{years * 365.25 * 24 * 3600:.3g} seconds"


def is_duration_in_years(key: str) -> bool:
    return key.split("[")[0].removeprefix("10% faster: ") == "calendar_years"


def output_label(key: str) -> str:
    """A readable name for an output key of ``estimate``."""
    base = {
        "seconds_per_judgment": "Seconds per judgment",
        "judgments_per_year": "Judgments per year (all judges)",
        "correct_judgments_per_year": "Correct judgments per year",
        "words_per_year": "Words reviewed per year",
        "pages_per_year": "Pages reviewed per year",
        "tokens_per_year": "Tokens reviewed per year",
        "reading_hours_per_judge": "Hours of reading per judge per year (words reviewed ÷ reading rate)",
        "review_tokens_per_second_per_judge": "Human review rate, tokens per second (one judge)",
        "generation_to_review_ratio_per_judge": "Model generation rate ÷ one judge's review rate",
        "generation_to_review_ratio_all_judges": "Model generation rate ÷ all judges' review rate",
        "judge_hours": "Judge-hours for {} judged trajectories",
        "cost": "Cost for {} judged trajectories",
        "calendar_years": "Calendar time for {} judged trajectories (all judges)",
    }
    prefix = ""
    if key.startswith("10% faster: "):
        prefix, key = "With 10% faster judges: ", key[len("10% faster: ") :]
    if "[" in key:
        name, target = key.rstrip("]").split("[")
        return prefix + base[name].format(target)
    return prefix + base[key]
