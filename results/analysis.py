"""Statistics of judged trials. Pure Python + numpy; no Django.

Every function takes plain rows (dicts shaped like the trials export, see
docs/exports.md), so each figure can be recomputed from an export; the pandas
equivalents are in docs/analysis.md.

Conventions
- A judged row has ``verdict`` set; ``correct`` says whether the judge chose
  the honest side; ``probability`` is the judge's probability that the chosen
  answer is correct, so the probability given to the correct answer is
  ``p`` if correct else ``1 - p``.
- Every interval accounts for the clustering of verdicts by question and judge
  (results/inference.py); accuracy levels, differences and tests are in
  results/accuracy.py, calibration in results/calibration.py. Fixed seeds make
  a page reproducible.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from judging.baseline_verdicts import credit

from .accuracy import MIN_JUDGES_FOR_TESTS, debater_configs
from .calibration import calibration, calibration_by_judge  # noqa: F401
from .inference import SEED, Estimate, OneSidedTest, TwoWayBootstrap, greater_than, unknown, wald_estimate

RATING_RESAMPLES = 1000
ELO_PER_LOGIT = 400 / math.log(10)  # Chatbot Arena's scale: 400 Elo points per factor of 10 in odds
ELO_CENTRE = 1000


def judged(rows) -> list[dict]:
    return [r for r in rows if r.get("verdict")]


def share_correct(rows) -> Estimate:
    """Accuracy of rows that each carry ``question_id``, ``correct`` and maybe ``judge`` (clustered);
    a model's tie (``correct`` None) counts as half right."""
    rows = list(rows)
    if not rows:
        return unknown(0, "no observations")
    return TwoWayBootstrap.of_rows(rows).proportion([credit(r["correct"]) for r in rows])


# ---------------------------------------------------------------- ratings ----
RIDGE = 0.1  # the ratings' L2 penalty: keeps a configuration that never lost finite, negligible with data


def _fit_logistic(design, outcome, weights=None, l2: float = RIDGE, start=None, iterations: int = 50) -> np.ndarray:
    """Ridge-regularised, weighted logistic regression by Newton's method (small problems only)."""
    weights = np.ones(len(outcome)) if weights is None else weights
    beta = np.zeros(design.shape[1]) if start is None else start.copy()
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        gradient = design.T @ (weights * (outcome - p)) - l2 * beta
        hessian = (design * (weights * p * (1 - p))[:, None]).T @ design + l2 * np.eye(len(beta))
        if l2 > 0:
            step = np.linalg.solve(hessian, gradient)
        else:
            # Without a penalty Bradley-Terry's full design is singular (strengths are known up to a shared
            # constant): the minimum-norm step never moves their mean from the start's.
            step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def pairing_design(pairings, names) -> np.ndarray:
    """Bradley-Terry's design over (honest, adversarial) pairings: +1 honest, -1 adversarial, a column for
    every configuration (none dropped as a reference: the ridge then pulls every strength towards their mean
    alike, so renaming configurations changes nothing), and a last column of ones (the honesty advantage)."""
    index = {name: i for i, name in enumerate(names)}
    design = np.zeros((len(pairings), len(names)))
    for k, (honest, adversarial) in enumerate(pairings):
        design[k, index[honest]] += 1
        design[k, index[adversarial]] -= 1
    return np.column_stack([design, np.ones(len(pairings))])


def fit_bradley_terry(design, wins, debates, *, start=None, l2: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """(strengths centred on their mean followed by the honesty advantage, the raw coefficients) from wins
    and debates per pairing (``pairing_design``'s rows); ``wins`` may be expected (fractional) wins."""
    k = len(design)
    # Each pairing as two weighted rows: its wins (outcome 1) and its losses (outcome 0).
    beta = _fit_logistic(
        np.vstack([design, design]), np.r_[np.ones(k), np.zeros(k)], np.r_[wins, debates - wins], l2=l2, start=start
    )
    strengths = beta[:-1]
    return np.concatenate([strengths - strengths.mean(), beta[-1:]]), beta


def least_squares_slope(x, y) -> np.ndarray:
    """The slope of y on x by ordinary least squares along the last axis (each row its own fit)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = x - x.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (dx * (y - y.mean(axis=-1, keepdims=True))).sum(axis=-1) / (dx * dx).sum(axis=-1)


def _connected(pairs) -> list[set]:
    """Groups of configurations linked by debates between different configurations, largest first."""
    groups: list[set] = []
    for a, b in pairs:
        if a == b:
            continue
        linked = [g for g in groups if a in g or b in g]
        merged = set().union({a, b}, *linked)
        groups = [g for g in groups if g not in linked] + [merged]
    return sorted(groups, key=lambda g: (-len(g), sorted(g)))


@dataclass(frozen=True)
class Rung:
    """One configuration on the ladder: its strength, the debates it spoke in (either side, self-play once),
    and how often judges chose the honest side when it argued against itself."""

    name: str
    strength: Estimate
    debates: int
    self_play: Estimate


@dataclass(frozen=True)
class SelfPlaySlope:
    """Does judge accuracy rise with debater strength? The least-squares slope of the configurations'
    self-play accuracies on their strengths (a share per ``per``), with its one-sided test of > 0."""

    estimate: Estimate
    test: OneSidedTest
    configurations: int
    per: str


def debater_ratings(rows, *, scale: str = "logit", resamples: int = RATING_RESAMPLES) -> dict:
    """Bradley-Terry strengths of debater configurations that met, with an honesty advantage term, as a
    ladder with each configuration's self-play accuracy.

    P(honest side wins) = sigmoid(s_honest_config - s_adversarial_config + h). Only configurations
    linked by debates between *different* configurations (cross-play) are rated; strengths are centred
    on their mean, so each has a real interval. ``scale`` "elo" shows 400 points per factor of 10 in
    odds around 1000, as Chatbot Arena does. The ladder (strongest first) adds each configuration's
    debates and its self-play accuracy (the share of its debates against itself that the honest side
    won), and, with two or more self-play configurations, the slope of self-play accuracy on strength
    (Khan et al. 2024: do judges get more accurate as debaters get stronger?). Intervals: refits and
    shares under the two-way resampling of questions and judges (``resamples`` per scheme, seed
    ``SEED``), jointly, so the slope's interval carries the strengths' uncertainty too.
    """
    rows = [r for r in judged(rows) if r["protocol"] == "debate"]
    pairs = [debater_configs(r) for r in rows]
    groups = _connected(pairs)
    if not groups:
        used = sorted({name for pair in pairs for name in pair})
        return {
            "error": "No ratings: ratings need debates in which different debater configurations argued against "
            f"each other (cross-play). In these debates {len(used) or 'no'} configuration"
            f"{'s' if len(used) != 1 else ''} ({', '.join(used) or 'none'}) argued against "
            f"{'itself' if len(used) == 1 else 'themselves'}, so there is nothing to compare."
        }
    names = sorted(groups[0])
    keep = [k for k, (h, a) in enumerate(pairs) if h in groups[0] and a in groups[0]]
    rows, pairs = [rows[k] for k in keep], [pairs[k] for k in keep]
    # Bradley-Terry depends on the data only through wins and debates per (honest, adversarial) pairing,
    # so each resample is refitted on those few counts, not on every debate.
    pairings = sorted(set(pairs))
    pairing_of = np.array([pairings.index(pair) for pair in pairs])
    design = pairing_design(pairings, names)
    won = np.array([1.0 if r["correct"] else 0.0 for r in rows])
    debates = np.bincount(pairing_of, minlength=len(pairings)).astype(float)
    central, start = fit_bradley_terry(design, np.bincount(pairing_of, weights=won, minlength=len(pairings)), debates)
    boot = TwoWayBootstrap.of_rows(rows, resamples=resamples, seed=SEED)
    in_pairing = [pairing_of == k for k in range(len(pairings))]
    draws = {}
    for scheme in TwoWayBootstrap.SCHEMES:
        wins = np.column_stack([boot.sum_draws(scheme, won, mask) for mask in in_pairing])
        totals = np.column_stack([boot.sum_draws(scheme, np.ones(len(rows)), mask) for mask in in_pairing])
        draws[scheme] = np.array([fit_bradley_terry(design, w, t, start=start)[0] for w, t in zip(wins, totals)])
    estimates = [
        wald_estimate(float(value), boot.spread(lambda s, k=k: draws[s][:, k], None), len(rows))
        for k, value in enumerate(central)
    ]
    factor, offset = (ELO_PER_LOGIT, ELO_CENTRE) if scale == "elo" else (1.0, 0.0)

    def scaled(e: Estimate) -> Estimate:
        return Estimate(e.value * factor + offset, e.low * factor + offset, e.high * factor + offset, e.n, df=e.df)

    self_play = {name: np.array([pair == (name, name) for pair in pairs]) for name in names}
    ladder = sorted(
        (
            Rung(
                name,
                scaled(estimates[i]),
                sum(name in pair for pair in pairs),
                boot.proportion(won, self_play[name]) if self_play[name].any() else unknown(0, "no self-play debates"),
            )
            for i, name in enumerate(names)
        ),
        key=lambda rung: (-rung.strength.value, rung.name),
    )
    return {
        "scale": scale,
        "strengths": {name: scaled(estimates[i]) for i, name in enumerate(names)},
        "honesty_advantage": estimates[-1],
        "unconnected": sorted(set().union(*groups[1:])) if len(groups) > 1 else [],
        "debates": len(rows),
        "ladder": ladder,
        "self_play_slope": _self_play_slope(boot, won, central, draws, [self_play[n] for n in names], scale),
        "resamples": resamples,
        "seed": SEED,
    }


def _self_play_slope(boot, won, central, draws, self_play, scale) -> SelfPlaySlope | None:
    """Self-play accuracy on strength over the configurations with self-play debates (None: fewer than 2)."""
    which = [i for i, mask in enumerate(self_play) if mask.any()]
    if len(which) < 2:
        return None
    accuracy = [float(won[self_play[i]].mean()) for i in which]
    value = float(least_squares_slope(central[which], accuracy))

    def slope_draws(scheme):
        shares = np.column_stack([boot.ratio_draws(scheme, won, np.ones(len(won)), self_play[i]) for i in which])
        return least_squares_slope(draws[scheme][:, which], shares)

    n = int(sum(self_play[i].sum() for i in which))
    estimate = wald_estimate(value, boot.spread(slope_draws, np.logical_or.reduce([self_play[i] for i in which])), n)
    # Shown per 100 Elo points on the Elo scale, per unit of log-odds otherwise.
    per = 100 / ELO_PER_LOGIT if scale == "elo" else 1.0
    estimate = Estimate(estimate.value * per, estimate.low * per, estimate.high * per, n, df=estimate.df)
    return SelfPlaySlope(
        estimate,
        greater_than("self-play accuracy rises with strength", estimate, 0.0),
        len(which),
        "100 Elo points" if scale == "elo" else "unit of log-odds",
    )


def judge_skill(rows) -> dict:
    """Each judge's accuracy minus the other judges' accuracy on the same questions, arms taken out
    (``relative_to_other_judges``). These are the judges being described, so intervals resample
    questions only."""
    rows = judged(rows)
    judges = sorted({r["judge"] for r in rows})
    if len(judges) < 2:
        return {"error": f"Judge skill needs at least two judges; these verdicts come from {len(judges)}."}
    shared, relative = relative_to_other_judges(rows, lambda r: 1.0 if r["correct"] else 0.0)
    if not shared:
        return {
            "error": "Judge skill cannot be separated from question difficulty: no question was judged "
            "by more than one judge (set judgments per question to 2 or more)."
        }
    boot = TwoWayBootstrap.of_rows(shared)
    skills = {}
    for judge in judges:
        mask = np.array([r["judge"] == judge for r in shared])
        if not mask.any():
            continue
        skills[judge] = boot.mean(relative, mask, by_question_only=True).within(-1.0, 1.0)
    return {"skills": skills}


def relative_to_other_judges(rows, value) -> tuple[list[dict], np.ndarray]:
    """(the rows of questions judged by two judges or more, each one's ``value`` relative to the other judges').

    Question difficulty is taken out by comparing judges on shared questions only, and the arms' by
    comparing each verdict with its condition's mean: a row counts as (value - its condition's mean value)
    less the mean of the same over the other judges' rows on that question. With one condition this is
    value - the other judges' mean on that question. Without the arms taken out, a judge who judged
    mostly a hard arm (a crowd judge who left early) read as unskilled. ``value`` is 1 or 0 for
    correctness; the simulations pass each verdict's chance of being correct, to get the truth."""
    by_question, by_condition = defaultdict(list), defaultdict(list)
    for r in rows:
        by_question[r["question_id"]].append(r)
        by_condition[r["condition"]].append(value(r))
    condition_mean = {condition: float(np.mean(values)) for condition, values in by_condition.items()}

    def above_condition(r) -> float:
        return value(r) - condition_mean[r["condition"]]

    shared = [r for r in rows if len({o["judge"] for o in by_question[r["question_id"]]}) >= 2]
    relative = [
        above_condition(r)
        - float(np.mean([above_condition(o) for o in by_question[r["question_id"]] if o["judge"] != r["judge"]]))
        for r in shared
    ]
    return shared, np.array(relative)


def time_summary(records: list[dict]) -> dict:
    """Per judgment, with two-way clustered intervals: active seconds, words read, and the reading rate
    as a ratio of sums (all words over all minutes), not a mean of each verdict's rate.

    ``records`` as ``results.measure.verdict_records``: judge, question_id, words, seconds (None: not
    timed; 0 is a time)."""
    if not records:
        return {
            name: unknown(0, "no verdicts")
            for name in ("active_seconds_per_judgment", "words_per_trial", "reading_wpm")
        }
    boot = TwoWayBootstrap.of_rows(records)
    words = np.array([r["words"] for r in records], float)
    timed = np.array([r["seconds"] is not None for r in records])
    minutes = np.array([(r["seconds"] if r["seconds"] is not None else 0.0) / 60.0 for r in records])
    return {
        "active_seconds_per_judgment": boot.mean(minutes * 60.0, timed) if timed.any() else unknown(0, "no times"),
        "words_per_trial": boot.mean(words),
        "reading_wpm": boot.ratio(words, minutes, timed) if timed.any() else unknown(0, "no times"),
    }


def data_warnings(rows) -> list[str]:
    """Plain statements about what the data cannot support."""
    rows_judged = judged(rows)
    notes = []
    if not rows:
        notes.append("These experiments have no trials yet.")
    elif not rows_judged:
        notes.append("No verdicts yet: nothing to analyse until judges have judged trials.")
    else:
        if len({r["judge"] for r in rows_judged}) == 1:
            notes.append(
                "All verdicts come from one judge: intervals generalise over questions only, not to other judges; "
                "per-judge comparisons and judge skill are not possible."
            )
        if 1 < len({r["judge"] for r in rows_judged}) < MIN_JUDGES_FOR_TESTS:
            notes.append(
                f"Only {len({r['judge'] for r in rows_judged})} judges: intervals that generalise to other judges "
                "rest on very few of them (simulated coverage 0.85-0.92 with 2 or 3 judges where 0.95 was asked), "
                f"and no test is decided with fewer than {MIN_JUDGES_FOR_TESTS}."
            )
        if len({r["question_id"] for r in rows_judged}) == 1:
            notes.append(
                "All verdicts are on one question: intervals generalise over judges only, not to other questions."
            )
        if len({r["protocol"] for r in rows_judged}) == 1:
            notes.append(f"Only one protocol ({rows_judged[0]['protocol']}): no comparison between protocols.")
        if not any(r["protocol"] == "sandwich" for r in rows):
            notes.append(
                "No sandwiching trials: the four sandwiching numbers (human alone, model alone, human + "
                "honest assistant, human + misleading assistant) need sandwiching experiments."
            )
        if len(rows_judged) < 30:
            notes.append(f"Only {len(rows_judged)} verdicts: intervals are wide.")
    return notes


def model_judge_accuracy(rows, model_verdict_rows) -> dict:
    """Each judge model's accuracy, and the humans' and the model's on the trials both judged.

    A model judge is one judge: its verdicts are clustered by question only. Its verdicts average both
    answer orders; a tie counts as half right (judging.baseline_verdicts), and ``ties`` says how many."""
    human = {r["trial_id"]: r for r in judged(rows)}
    by_model = defaultdict(list)
    for v in model_verdict_rows:
        by_model[v["judge_model"]].append(v)
    out = {}
    for name, verdicts in sorted(by_model.items()):
        shared = [v for v in verdicts if v["trial_id"] in human]
        alone = [{"question_id": v["question_id"], "correct": v["correct"]} for v in verdicts]
        humans = [human[v["trial_id"]] for v in shared]
        out[name] = {
            "all": share_correct(alone),
            "model_on_shared": share_correct([a for a, v in zip(alone, verdicts) if v["trial_id"] in human]),
            "humans_on_shared": share_correct(humans),
            "model_minus_humans": model_minus_humans(shared, humans),
            "ties": sum(v["correct"] is None for v in verdicts),
        }
    return out


def model_minus_humans(model_verdicts, human_rows) -> Estimate:
    """The model's accuracy less the humans' on the same trials (paired, ``model_verdicts[i]`` on the trial of
    ``human_rows[i]``): the mean of the per-trial differences, clustered by question and by the human judge
    (the model's verdict on a trial varies with its question only)."""
    if not human_rows:
        return unknown(0, "no trial judged by both")
    differences = [credit(v["correct"]) - credit(h["correct"]) for v, h in zip(model_verdicts, human_rows)]
    return TwoWayBootstrap.of_rows(human_rows).mean(differences)
