"""Studies simulated with known truth, laid out by the platform's own planner. Pure Python + numpy.

Every estimator and test of the analysis is checked on these (docs/statistics standard): a study is
planned by ``judging.assignment.plan_trials`` exactly as a launched experiment is, then each planned
trial is judged by a simulated judge:

    P(correct) = sigmoid(centre[condition] + skill[judge] - difficulty[question])

with skill ~ N(0, judge_sd) and difficulty ~ N(0, question_sd) on the logit scale. ``Truth.accuracy``
is each condition's *population* accuracy, the average over all judges and questions (not over the
ones drawn), which is what a reported interval claims to cover; the centre is solved from it. A model
answering alone is right with P = sigmoid(model centre - difficulty[question]), its population
accuracy ``model_accuracy``. A judge model (``Truth.judge_models``: name -> its population accuracy) reads
every trial that did not fail and is right with P = sigmoid(its centre - difficulty[question]), the same
on every condition: it shares the humans' hard questions, which the paired difference takes out.
Attrition: a trial of an arm listed in
``failure_rate`` fails generation with that probability, more often on hard questions when
``failures_on_hard_questions`` (the selection the attrition table is there to reveal).

Debater line-ups. A design may name debaters (``Design.debaters``) and a pairing design
(self-play, round-robin, cross-play): its debate arm's cells come from ``judging.lineups.design_cells``
(configuration ids 1..k for the debaters in order) and ``plan_trials(cells=...)`` balances them as it
does for a launched experiment. Each debater has a known strength s on the logit scale
(``Truth.strengths``), and a debate's honest side wins (the judge is correct) with

    P = sigmoid(s_honest - s_adversary + honesty_advantage + truth_gain * (s_honest + s_adversary) / 2
                + skill[judge] - difficulty[question])

``truth_gain`` > 0 makes strength help the truth more than a lie (Khan et al. 2024's finding), so
accuracy in self-play, sigmoid(honesty_advantage + truth_gain * s + ...), rises with strength; at 0 the
model is Bradley-Terry's and self-play accuracy is the same for every debater. ``ladder_truth`` gives
what the analysis's intervals claim to cover: the *population* (marginal) figures, averaged over all
judges and questions, as ``Truth.accuracy`` is.

Rows are shaped like the trials and model-answers exports (docs/exports.md); with a line-up they carry
``honest_config`` and ``adversarial_config`` (the debaters' names) as the trials export does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq
from scipy.stats import spearmanr

from judging.assignment import QuestionInfo, plan_trials
from judging.lineups import ROUND_ROBIN, Member, design_cells
from judging.protocols.registry import ARMS
from judging.scoring import LOG_FLOOR

from .accuracy import Judged, arm_differences, by_arm, decide
from .agreement import agreement_by_arm
from .analysis import (
    debater_ratings,
    fit_bradley_terry,
    judge_skill,
    judged,
    least_squares_slope,
    model_judge_accuracy,
    pairing_design,
    relative_to_other_judges,
)
from .calibration import calibration, calibration_by_judge

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Design:
    """What a researcher sets on the experiment form."""

    arms: tuple[str, ...] = ("debate",)
    num_questions: int = 60
    judgments_per_question: int = 3
    judges: int = 6
    # The debate arm's line-up (names; configuration ids 1..k in this order) and its pairing design.
    debaters: tuple[str, ...] = ()
    pairing: str = ROUND_ROBIN

    def cells(self):
        """The design cells the planner balances (judging.lineups), or None without a line-up."""
        if not self.debaters:
            return None
        if "debate" not in self.arms:
            raise ValueError("a line-up of debaters needs the debate arm")
        members = [Member(k) for k in range(1, len(self.debaters) + 1)]
        return design_cells(list(self.arms), {"debate": members}, self.pairing, default_config=1)

    def pairings(self) -> list[tuple[str, str]]:
        """(honest, adversary) debater names of the debate arm's cells, in the planner's order."""
        names = dict(enumerate(self.debaters, start=1))
        return [(names[c.honest], names[c.adversary]) for c in self.cells() if c.arm == "debate"]


@dataclass(frozen=True)
class Truth:
    """The simulated world: population accuracies by condition, spread of judges and questions, attrition."""

    accuracy: dict = field(default_factory=lambda: {"debate": 0.7})  # by condition
    judge_sd: float = 0.5
    question_sd: float = 1.0
    model_accuracy: float = 0.6
    failure_rate: dict = field(default_factory=dict)  # by condition
    failures_on_hard_questions: bool = False
    # Debaters of a line-up (Design.debaters): strength by name (logit), and what the honest side gains.
    strengths: dict = field(default_factory=dict)
    honesty_advantage: float = 0.0
    truth_gain: float = 0.0
    # Judge models reading the trials: population accuracy by name (results.analysis.model_judge_accuracy).
    judge_models: dict = field(default_factory=dict)

    def debate_logit(self, honest: str, adversary: str) -> float:
        """The honest side's log-odds of winning at the median judge and question."""
        s_honest, s_adversary = self.strengths[honest], self.strengths[adversary]
        return s_honest - s_adversary + self.honesty_advantage + self.truth_gain * (s_honest + s_adversary) / 2

    def debate_accuracy(self, honest: str, adversary: str) -> float:
        """The honest side's population win rate in this pairing (over all judges and questions)."""
        return mean_sigmoid(self.debate_logit(honest, adversary), math.hypot(self.judge_sd, self.question_sd))

    def centre(self, condition: str) -> float:
        """The logit at the median judge and question that gives the condition's population accuracy."""
        return centre_for(self.accuracy[condition], math.hypot(self.judge_sd, self.question_sd))

    def model_centre(self) -> float:
        return centre_for(self.model_accuracy, self.question_sd)

    def arm_accuracy(self, arm: str) -> float:
        """An arm's population accuracy: its conditions are balanced, so the mean of theirs."""
        return over_trials([arm], self.accuracy.__getitem__)

    def human_accuracy(self, arms) -> float:
        """The humans' population accuracy over a design's trials."""
        return over_trials(arms, self.accuracy.__getitem__)


def over_trials(arms, of_condition) -> float:
    """The mean over a design's trials of a figure given per condition: the planner balances the arms, and
    an arm's conditions within it, so the mean over arms of the mean over each arm's conditions."""
    return float(np.mean([np.mean([of_condition(c) for c in ARMS[arm].conditions]) for arm in arms]))


def mean_sigmoid(centre: float, sd: float) -> float:
    """E[sigmoid(centre + sd * Z)], Z standard normal (Gauss-Hermite quadrature)."""
    return float(np.sum(_WEIGHTS * sigmoid(centre + sd * _NODES)) / np.sum(_WEIGHTS))


def centre_for(population_accuracy: float, sd: float) -> float:
    if not 0 < population_accuracy < 1:
        raise ValueError(f"an accuracy strictly between 0 and 1, not {population_accuracy}")
    return float(brentq(lambda c: mean_sigmoid(c, sd) - population_accuracy, -30, 30))


# A simulated judge states its chance of being right plus N(0, STATED_NOISE), kept within STATED_RANGE.
STATED_NOISE, STATED_RANGE = 0.05, (0.5, 0.99)
_NOISE_NODES, _NOISE_WEIGHTS = np.polynomial.hermite_e.hermegauss(20)


@functools.lru_cache(maxsize=4096)  # a study asks for each (judge, condition) many times
def expected_scores(logit: float, sd: float) -> dict[str, float]:
    """The two-class Brier score and log score a simulated judge earns on average, over questions whose
    log-odds of being judged right are ``logit`` + N(0, ``sd``) and over the noise in what it states
    (Gauss-Hermite quadrature over both): what the calibration table's figures estimate."""
    z = logit + sd * _NODES[:, None]
    p = sigmoid(z)
    stated = np.clip(np.maximum(p, 1 - p) + STATED_NOISE * _NOISE_NODES[None, :], *STATED_RANGE)
    brier = p * 2 * (1 - stated) ** 2 + (1 - p) * 2 * stated**2
    log = p * np.log(np.maximum(stated, LOG_FLOOR)) + (1 - p) * np.log(np.maximum(1 - stated, LOG_FLOOR))
    weights = _WEIGHTS[:, None] * _NOISE_WEIGHTS[None, :]
    weights = weights / weights.sum()
    return {"brier": float((weights * brier).sum()), "log_score": float((weights * log).sum())}


def conditions_of(arms) -> list[str]:
    return [condition for arm in arms for condition in ARMS[arm].conditions]


@dataclass(frozen=True)
class Simulated:
    """One simulated study: what the exports would hold, and the chances the verdicts were drawn with."""

    rows: list  # trial rows
    model_rows: list  # model-answer rows
    judge_model_rows: list  # the judge models' verdicts, drawn last (a seed gives the same trials without them)
    # trial id -> the log-odds of its judge being right in that trial's condition at the median question
    # (centre + the judge's skill); over the population of questions, difficulty ~ N(0, question_sd) is taken off
    judge_logit: dict


def simulate_study(design: Design, truth: Truth, seed: int) -> tuple[list[dict], list[dict]]:
    """(trial rows, model-answer rows) of one simulated study."""
    study = simulate(design, truth, seed)
    return study.rows, study.model_rows


def simulate(design: Design, truth: Truth, seed: int) -> Simulated:
    """One simulated study, with the chances its verdicts were drawn with (``Simulated``)."""
    rng = np.random.default_rng(seed)
    questions = [QuestionInfo(id=q, n_choices=2, correct_index=0) for q in range(design.num_questions)]
    judges = list(range(1, design.judges + 1))
    plans = plan_trials(
        questions,
        judges,
        num_questions=design.num_questions,
        judgments_per_question=design.judgments_per_question,
        seed=int(rng.integers(2**31)),
        arms=list(design.arms),
        cells=design.cells(),
    )
    skill = dict(zip(judges, rng.normal(0, truth.judge_sd, len(judges))))
    difficulty = rng.normal(0, truth.question_sd, design.num_questions)
    names = dict(enumerate(design.debaters, start=1))
    in_lineup = {"debate"} if design.debaters else set()
    centres = {condition: truth.centre(condition) for condition in {p.condition for p in plans} - in_lineup}
    rows, judge_logit = [], {}
    for trial_id, plan in enumerate(plans, start=1):
        if plan.condition in in_lineup:
            centre = truth.debate_logit(names[plan.honest_config], names[plan.adversary_config])
        else:
            centre = centres[plan.condition]
        p_correct = sigmoid(centre + skill[plan.judge_id] - difficulty[plan.question_id])
        judge_logit[trial_id] = centre + skill[plan.judge_id]
        row = {
            "trial_id": trial_id,
            "question_id": f"q{plan.question_id}",
            "judge": f"judge{plan.judge_id}",
            "protocol": plan.protocol,
            "condition": plan.condition,
            "honest_side": plan.honest_side,
            "first_speaker": plan.first_speaker,
            "turn_style": "simultaneous",
            "model_settings": {"config_name": "simulated debater"},
            "status": "judged",
            "verdict": "",
            "correct": None,
            "probability": None,
        }
        if plan.condition in in_lineup:
            row.update(honest_config=names[plan.honest_config], adversarial_config=names[plan.adversary_config])
        failure = truth.failure_rate.get(plan.condition, 0.0)
        if failure and truth.failures_on_hard_questions:
            # Hard questions fail more often; the mean rate stays about ``failure``.
            failure = min(1.0, 2 * failure * sigmoid(2 * difficulty[plan.question_id]))
        if rng.random() < failure:
            row["status"] = "failed"
            rows.append(row)
            continue
        correct = bool(rng.random() < p_correct)
        other = "B" if plan.honest_side == "A" else "A"
        # A judge who knows their own chance of being right reports it (calibrated, with noise).
        confidence = float(np.clip(max(p_correct, 1 - p_correct) + rng.normal(0, STATED_NOISE), *STATED_RANGE))
        row.update(verdict=plan.honest_side if correct else other, correct=correct, probability=confidence)
        rows.append(row)
    model_centre = truth.model_centre()
    model_rows = [
        {
            "question_id": f"q{q}",
            "correct": bool(rng.random() < sigmoid(model_centre - difficulty[q])),
        }
        for q in sorted({p.question_id for p in plans})
    ]
    judge_model_rows = []
    for name, accuracy in sorted(truth.judge_models.items()):
        centre = centre_for(accuracy, truth.question_sd)
        for row in rows:
            if row["status"] == "failed":
                continue
            question = int(row["question_id"][1:])
            judge_model_rows.append(
                {
                    "trial_id": row["trial_id"],
                    "question_id": row["question_id"],
                    "judge_model": name,
                    "correct": bool(rng.random() < sigmoid(centre - difficulty[question])),
                }
            )
    return Simulated(rows, model_rows, judge_model_rows, judge_logit)


# ------------------------------------------------------------------- the analysis on known truth ----
@dataclass(frozen=True)
class Scenario:
    name: str
    design: Design
    truth: Truth


def coverage(scenario: Scenario, *, studies: int, resamples: int, seed: int = 0) -> dict[str, float]:
    """Share of simulated studies whose 95% intervals cover the truth: each arm's level, each difference
    between arms, the model alone where the design has sandwiching, and each judge model's level and its
    paired difference from the humans on the trials both judged, each judge's skill (one rate for all
    judges: the truth of a judge's skill is ``judge_skill_truth``), and the calibration table's Brier and
    log scores, of all judges (over the population of judges and questions) and of each (given its skill;
    one rate for all judges), ``expected_scores``."""
    hits: dict[str, list[bool]] = {}
    truth = scenario.truth
    humans = truth.human_accuracy(scenario.design.arms)
    # The calibration scores of all judges, over the population of judges and questions.
    spread = math.hypot(truth.judge_sd, truth.question_sd)
    population_scores = {
        name: over_trials(scenario.design.arms, lambda c, name=name: expected_scores(truth.centre(c), spread)[name])
        for name in ("brier", "log_score")
    }
    for study in range(studies):
        simulated = simulate(scenario.design, truth, seed + study)
        rows, model_rows = simulated.rows, simulated.model_rows
        sandwiching = any(r["protocol"] == "sandwich" for r in rows)
        data = Judged(rows, model_rows if sandwiching else (), resamples=resamples, seed=seed + study)
        for arm, estimate in by_arm(data).items():
            hits.setdefault(f"level: {arm}", []).append(_covers(estimate, truth.arm_accuracy(arm)))
        for label, estimate in arm_differences(data).items():
            a, b = label.split(" − ")
            hits.setdefault(f"difference: {label}", []).append(
                _covers(estimate, truth.arm_accuracy(a) - truth.arm_accuracy(b))
            )
        if sandwiching:
            hits.setdefault("level: model alone", []).append(
                _covers(data.share(data.model_alone()), truth.model_accuracy)
            )
            hits.setdefault("difference: assisted-honest − model alone", []).append(
                _covers(
                    data.difference(data.arm("assisted-honest"), data.model_alone()),
                    truth.arm_accuracy("assisted-honest") - truth.model_accuracy,
                )
            )
        for name, estimate in _calibration_figures(calibration(rows, resamples=resamples)):
            hits.setdefault(f"{name} (all judges)", []).append(_covers(estimate, population_scores[name]))
        for judge, figures in calibration_by_judge(rows, resamples=resamples).items():
            mine = [r["trial_id"] for r in rows if r["judge"] == judge and r.get("verdict")]
            for name, estimate in _calibration_figures(figures):
                expected = [expected_scores(simulated.judge_logit[t], truth.question_sd)[name] for t in mine]
                hits.setdefault(f"{name} (each judge)", []).append(_covers(estimate, float(np.mean(expected))))
        skills = judge_skill(rows).get("skills", {})
        skill_truth = judge_skill_truth(simulated, truth.question_sd)
        for judge, estimate in skills.items():
            hits.setdefault("skill of each judge", []).append(_covers(estimate, skill_truth[judge]))
        for name, found in model_judge_accuracy(rows, simulated.judge_model_rows).items():
            accuracy = truth.judge_models[name]
            hits.setdefault(f"{name}: level", []).append(_covers(found["all"], accuracy))
            hits.setdefault(f"{name}: humans on shared trials", []).append(_covers(found["humans_on_shared"], humans))
            hits.setdefault(f"{name}: model − humans (paired)", []).append(
                _covers(found["model_minus_humans"], accuracy - humans)
            )
    return {name: float(np.mean(h)) for name, h in hits.items()}


def _calibration_figures(figures: dict):
    """(name, estimate) of the calibration table's Brier and log score, where it gives an interval (it does
    not with fewer than ``MIN_OF_EACH_OUTCOME`` right or wrong verdicts): coverage where one is given."""
    return [(name, figures[name]) for name in ("brier", "log_score") if name in figures and figures[name].has_interval]


def judge_skill_truth(simulated: Simulated, question_sd: float) -> dict[str, float]:
    """What each judge's skill interval claims to cover: the judge's expected figure over questions given who
    judged what (these judges are the ones described), the analysis's own arithmetic on each verdict's chance
    of being right over the questions (difficulty sd ``question_sd``) instead of its outcome (it is linear in
    them)."""
    rows = judged(simulated.rows)

    def chance(r) -> float:
        return mean_sigmoid(simulated.judge_logit[r["trial_id"]], question_sd)

    shared, relative = relative_to_other_judges(rows, chance)
    judges = np.array([r["judge"] for r in shared])
    return {judge: float(relative[judges == judge].mean()) for judge in set(judges)}


def _covers(estimate, true_value: float) -> bool:
    return bool(estimate.low <= true_value <= estimate.high)


def agreement_truth(truth: Truth, conditions) -> float:
    """The population agreement (Krippendorff's alpha and Fleiss' kappa alike) on correctness among the
    judges of a question in ``conditions`` (units in equal shares):

        Var_q(pbar_q) / (p (1 - p)),   pbar_q = P(a judge drawn from the population is right on q)

    with p the mean of pbar_q: the share of the variation in correctness that lies between questions.
    Two judges of a unit are independent given the question, so they disagree with probability
    2 pbar_q (1 - pbar_q) on average over questions, and by chance with 2 p (1 - p)."""
    first, second = [], []
    for condition in conditions:
        centre = truth.centre(condition)
        pbar = np.array([mean_sigmoid(centre - truth.question_sd * z, truth.judge_sd) for z in _NODES])
        first.append(np.sum(_WEIGHTS * pbar) / np.sum(_WEIGHTS))
        second.append(np.sum(_WEIGHTS * pbar**2) / np.sum(_WEIGHTS))
    p = float(np.mean(first))
    return max(0.0, float((np.mean(second) - p * p) / (p * (1 - p))))  # rounding can leave -1e-17


def agreement_validity(scenario: Scenario, *, studies: int, resamples: int, seed: int = 0) -> dict:
    """On simulated studies: per arm (and condition) with overlapping units, the share of studies whose
    95% interval on alpha (and on kappa, where every unit had as many judges) covers
    ``agreement_truth``, the mean estimate, and in how many studies each figure had an interval.
    A study whose figure has no interval counts as not covering."""
    hits: dict[str, list[bool]] = {}
    values: dict[str, list[float]] = {}
    truths: dict[str, float] = {}
    for study in range(studies):
        rows, _ = simulate_study(scenario.design, scenario.truth, seed + study)
        for group, found in agreement_by_arm(rows, resamples=resamples, seed=seed + study).items():
            if found is None:
                continue
            arm, _, condition = group.partition(": ")
            truths[group] = agreement_truth(scenario.truth, [condition] if condition else ARMS[arm].conditions)
            for name, estimate in (("alpha", found.alpha), ("kappa", found.kappa)):
                if estimate is None:
                    continue
                hits.setdefault(f"{name}: {group}", []).append(_covers(estimate, truths[group]))
                if estimate.has_interval:
                    values.setdefault(f"{name}: {group}", []).append(estimate.value)
    return {
        "coverage": {name: float(np.mean(h)) for name, h in sorted(hits.items())},
        "studies_with_figure": {name: len(h) for name, h in sorted(hits.items())},
        "with_interval": {name: len(values.get(name, [])) for name in sorted(hits)},
        "mean_estimate": {name: float(np.mean(v)) for name, v in sorted(values.items())},
        "truth": truths,
    }


def ladder_truth(design: Design, truth: Truth) -> dict:
    """What the ladder's intervals claim to cover on this design: the population (marginal) figures.

    The Bradley-Terry fit has no judge or question terms, so it estimates strengths averaged over
    judges and questions, smaller than the ones the debates were drawn with (by about
    1 / sqrt(1 + 0.35 * (judge_sd^2 + question_sd^2))), and, where ``truth_gain`` is not 0, the
    Bradley-Terry model that best fits the pairings. So the truth is the fit itself on the population:
    each cell weighted equally (the planner gives every cell an equal share), each pairing's outcome its
    population win rate, no ridge penalty. Self-play accuracy: the population win rate of the honest
    side when a debater argues against itself; the slope: least squares of those on the strengths.
    """
    pairings = design.pairings()
    names = sorted(design.debaters)  # debater_ratings orders configurations by name
    win_rate = np.array([truth.debate_accuracy(h, a) for h, a in pairings])
    central, _ = fit_bradley_terry(pairing_design(pairings, names), win_rate, np.ones(len(pairings)), l2=0.0)
    strengths = dict(zip(names, central[:-1]))
    self_play = {h: truth.debate_accuracy(h, h) for h, a in pairings if h == a}
    return {
        "strengths": strengths,
        "honesty_advantage": float(central[-1]),
        "self_play": self_play,
        "slope": float(least_squares_slope([strengths[n] for n in self_play], list(self_play.values())))
        if len(self_play) >= 2
        else None,
    }


def ladder_validity(scenario: Scenario, *, studies: int, resamples: int, alpha: float = 0.05, seed: int = 0) -> dict:
    """On simulated studies with a debater line-up: the share of studies whose 95% intervals on the ladder
    cover the truth (``ladder_truth``: each strength, the honesty advantage, each self-play accuracy,
    the slope), how often the ladder orders the debaters exactly as their true strengths do, the mean
    Spearman correlation of estimated with true strengths, and how often the one-sided test that
    self-play accuracy rises with strength passes at ``alpha`` (power; the false-pass rate where
    ``truth_gain`` is 0)."""
    truth = ladder_truth(scenario.design, scenario.truth)
    true_order = sorted(truth["strengths"], key=lambda n: -truth["strengths"][n])
    hits: dict[str, list[bool]] = {}
    ordered, correlations, slope_passes = [], [], []
    for study in range(studies):
        rows, _ = simulate_study(scenario.design, scenario.truth, seed + study)
        ratings = debater_ratings(rows, resamples=resamples)
        for name, estimate in ratings["strengths"].items():
            hits.setdefault(f"strength: {name}", []).append(_covers(estimate, truth["strengths"][name]))
        hits.setdefault("honesty advantage", []).append(
            _covers(ratings["honesty_advantage"], truth["honesty_advantage"])
        )
        for rung in ratings["ladder"]:
            if rung.name in truth["self_play"] and rung.self_play.estimable:
                hits.setdefault(f"self-play accuracy: {rung.name}", []).append(
                    _covers(rung.self_play, truth["self_play"][rung.name])
                )
        ordered.append([rung.name for rung in ratings["ladder"]] == true_order)
        names = list(truth["strengths"])
        estimated = [ratings["strengths"][n].value for n in names]
        correlations.append(spearmanr(estimated, [truth["strengths"][n] for n in names])[0])
        slope = ratings["self_play_slope"]
        if slope is not None and truth["slope"] is not None:
            hits.setdefault("self-play slope", []).append(_covers(slope.estimate, truth["slope"]))
            slope_passes.append(slope.test.rejects(alpha))
    return {
        "coverage": {name: float(np.mean(hits[name])) for name in sorted(hits)},
        "order_recovered": float(np.mean(ordered)),
        "mean_spearman": float(np.mean(correlations)),
        "slope_test_passes": float(np.mean(slope_passes)) if slope_passes else None,
        "truth": truth,
    }


def pass_rates(
    scenario: Scenario, keys, *, studies: int, resamples: int, alpha: float = 0.05, margin: float = 0.05, seed: int = 0
) -> dict[str, float]:
    """Share of simulated studies in which each declared comparison is supported (decided at full size).

    Under a null truth this is the false-pass rate; under an effect, the power."""
    keys = list(keys)
    passed = {key: 0 for key in keys}
    for supported in _supported(scenario, keys, studies, resamples, alpha, margin, seed):
        for key in supported:
            passed[key] += 1
    return {key: count / studies for key, count in passed.items()}


def family_pass_rate(
    scenario: Scenario, keys, *, studies: int, resamples: int, alpha: float = 0.05, margin: float = 0.05, seed: int = 0
) -> float:
    """Share of simulated studies in which any comparison of a declared family (Holm across it) is supported:
    under a truth where every one's null holds, the family-wise false-pass rate."""
    return float(np.mean([bool(s) for s in _supported(scenario, list(keys), studies, resamples, alpha, margin, seed)]))


def _supported(scenario: Scenario, keys, studies, resamples, alpha, margin, seed):
    """For each simulated study, the declared comparisons it supports, decided together at full size."""
    for study in range(studies):
        rows, model_rows = simulate_study(scenario.design, scenario.truth, seed + study)
        data = Judged(rows, model_rows, resamples=resamples, seed=seed + study)
        yield {d.key for d in decide(keys, data, alpha=alpha, margin=margin, planned=len(data)) if d.supported}


# The platform's default designs, and the worlds the validity benchmark and its reduced test check.
SIX_JUDGES = Design(num_questions=60, judgments_per_question=3, judges=6)
SANDWICH_DESIGN = Design(
    arms=("naive", "assisted-honest", "assisted-misleading"), num_questions=60, judgments_per_question=3, judges=6
)

COVERAGE_SCENARIOS = (
    Scenario(
        "debate, 60 questions x 3 judgments, 6 judges; a judge model",
        SIX_JUDGES,
        Truth(accuracy={"debate": 0.7}, judge_models={"judge model": 0.65}),
    ),
    Scenario(
        "debate + consultancy, 40 x 2, 4 judges; a judge model",
        Design(arms=("debate", "consultancy"), num_questions=40, judgments_per_question=2, judges=4),
        Truth(
            accuracy={"debate": 0.75, "honest consultant": 0.8, "dishonest consultant": 0.5},
            judge_models={"judge model": 0.75},
        ),
    ),
    Scenario(
        "sandwiching, 60 x 3, 6 judges",
        SANDWICH_DESIGN,
        Truth(accuracy={"naive": 0.6, "assisted-honest": 0.7, "assisted-misleading": 0.55}, model_accuracy=0.55),
    ),
    Scenario(
        # Where clustering the paired difference by question only would cover about 0.77.
        "debate, 60 x 3, 6 judges who differ widely (judge sd 1); a judge model",
        SIX_JUDGES,
        Truth(accuracy={"debate": 0.7}, judge_sd=1.0, judge_models={"judge model": 0.6}),
    ),
    Scenario(
        # Below the goal (about 0.92): the page warns with 2 or 3 judges and decides no test.
        "few judges: debate, 60 x 3, 3 judges",
        Design(num_questions=60, judgments_per_question=3, judges=3),
        Truth(accuracy={"debate": 0.7}),
    ),
    Scenario(
        "small: debate, 10 questions x 1, 2 judges, 95% accuracy",
        Design(num_questions=10, judgments_per_question=1, judges=2),
        Truth(accuracy={"debate": 0.95}),
    ),
)

# (scenario, comparison, margin): each comparison's null hypothesis holds at its boundary.
NULL_SCENARIOS = (
    (
        Scenario(
            "helpful, null: honest help = judge alone (model alone 55%)",
            SANDWICH_DESIGN,
            Truth(accuracy={"naive": 0.65, "assisted-honest": 0.65, "assisted-misleading": 0.6}, model_accuracy=0.55),
        ),
        "sandwich-helpful",
    ),
    (
        Scenario(
            "helpful, null: honest help = model alone (judge alone 55%)",
            SANDWICH_DESIGN,
            Truth(accuracy={"naive": 0.55, "assisted-honest": 0.65, "assisted-misleading": 0.5}, model_accuracy=0.65),
        ),
        "sandwich-helpful",
    ),
    (
        Scenario(
            "robust, null: misleading = judge alone - delta",
            SANDWICH_DESIGN,
            Truth(accuracy={"naive": 0.65, "assisted-honest": 0.7, "assisted-misleading": 0.6}, model_accuracy=0.55),
        ),
        "sandwich-robust",
    ),
    (Scenario("honest debaters win half", SIX_JUDGES, Truth(accuracy={"debate": 0.5})), "above-chance:debate"),
)

# A declared family of three comparisons whose nulls all hold at their boundaries (Holm across them).
NULL_FAMILY = (
    Scenario(
        "debate and consultancy at chance, alike",
        Design(arms=("debate", "consultancy"), num_questions=60, judgments_per_question=3, judges=6),
        Truth(accuracy={"debate": 0.5, "honest consultant": 0.6, "dishonest consultant": 0.4}),
    ),
    ("above-chance:debate", "above-chance:consultancy", "difference:debate:consultancy"),
)

POWER_SCENARIOS = (
    (
        Scenario(
            "helpful: honest help +10 points over judge alone, +15 over model alone",
            SANDWICH_DESIGN,
            Truth(accuracy={"naive": 0.6, "assisted-honest": 0.7, "assisted-misleading": 0.6}, model_accuracy=0.55),
        ),
        "sandwich-helpful",
    ),
    (
        Scenario(
            "robust: misleading help as good as the judge alone",
            SANDWICH_DESIGN,
            Truth(accuracy={"naive": 0.6, "assisted-honest": 0.7, "assisted-misleading": 0.6}, model_accuracy=0.55),
        ),
        "sandwich-robust",
    ),
    (Scenario("honest debaters win 60%", SIX_JUDGES, Truth(accuracy={"debate": 0.6})), "above-chance:debate"),
)

# Khan-style ladders: four simulated debaters of known strength (logit), each debate judged as above.
FOUR_DEBATERS = ("debater 1", "debater 2", "debater 3", "debater 4")
LADDER_TRUTH = Truth(strengths=dict(zip(FOUR_DEBATERS, (-0.9, -0.3, 0.3, 0.9))), honesty_advantage=0.3, truth_gain=0.5)
LADDER_SCENARIOS = (
    Scenario(
        "round-robin, 4 debaters, 60 x 3, 6 judges",
        Design(num_questions=60, judgments_per_question=3, judges=6, debaters=FOUR_DEBATERS),
        LADDER_TRUTH,
    ),
    Scenario(
        "round-robin, 4 debaters, 160 x 3, 8 judges",
        Design(num_questions=160, judgments_per_question=3, judges=8, debaters=FOUR_DEBATERS),
        LADDER_TRUTH,
    ),
    Scenario(
        "cross-play, 4 debaters, 60 x 3, 6 judges",
        Design(num_questions=60, judgments_per_question=3, judges=6, debaters=FOUR_DEBATERS, pairing="cross-play"),
        LADDER_TRUTH,
    ),
    Scenario(
        # The slope's null: strength helps both sides alike, so self-play accuracy is flat.
        "round-robin, 4 debaters, 160 x 3, 8 judges, self-play accuracy flat",
        Design(num_questions=160, judgments_per_question=3, judges=8, debaters=FOUR_DEBATERS),
        Truth(strengths=LADDER_TRUTH.strengths, honesty_advantage=0.3, truth_gain=0.0),
    ),
)

# Agreement between judges of the same question (results/agreement.py), with known population agreement.
AGREEMENT_SCENARIOS = (
    Scenario("debate, 60 questions x 3 judgments, 6 judges", SIX_JUDGES, Truth(accuracy={"debate": 0.7})),
    Scenario(
        "debate, 60 x 3, 6 judges, questions differ widely (question sd 2)",
        SIX_JUDGES,
        Truth(accuracy={"debate": 0.7}, question_sd=2.0),
    ),
    Scenario(
        "debate, 30 x 2, 4 judges, judges differ widely (judge sd 1)",
        Design(num_questions=30, judgments_per_question=2, judges=4),
        Truth(accuracy={"debate": 0.75}, judge_sd=1.0, question_sd=1.5),
    ),
    Scenario(
        "no agreement beyond chance: every question alike (question sd 0)",
        SIX_JUDGES,
        Truth(accuracy={"debate": 0.7}, question_sd=0.0),
    ),
    Scenario(
        "consultancy, 40 x 4, 8 judges (2 to 4 judges per unit)",
        Design(arms=("consultancy",), num_questions=40, judgments_per_question=4, judges=8),
        Truth(accuracy={"honest consultant": 0.8, "dishonest consultant": 0.5}, question_sd=1.5),
    ),
)
