"""Studies simulated with known truth, laid out by the platform's own planner. Pure Python + numpy.

Every estimator and test of the analysis is checked on these (docs/statistics standard): a study is
planned by ``judging.assignment.plan_trials`` exactly as a launched experiment is, then each planned
trial is judged by a simulated judge:

    P(correct) = sigmoid(centre[condition] + skill[judge] - difficulty[question])

with skill ~ N(0, judge_sd) and difficulty ~ N(0, question_sd) on the logit scale. ``Truth.accuracy``
is each condition's *population* accuracy, the average over all judges and questions (not over the
ones drawn), which is what a reported interval claims to cover; the centre is solved from it. A model
answering alone is right with P = sigmoid(model centre - difficulty[question]), its population
accuracy ``model_accuracy``. Attrition: a trial of an arm listed in
``failure_rate`` fails generation with that probability, more often on hard questions when
``failures_on_hard_questions`` (the selection the attrition table is there to reveal).

Rows are shaped like the trials and model-answers exports (docs/exports.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from judging.assignment import QuestionInfo, plan_trials
from judging.protocols.registry import ARMS

from .accuracy import Judged, arm_differences, by_arm, decide

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


@dataclass(frozen=True)
class Truth:
    """The simulated world: population accuracies by condition, spread of judges and questions, attrition."""

    accuracy: dict = field(default_factory=lambda: {"debate": 0.7})  # by condition
    judge_sd: float = 0.5
    question_sd: float = 1.0
    model_accuracy: float = 0.6
    failure_rate: dict = field(default_factory=dict)  # by condition
    failures_on_hard_questions: bool = False

    def centre(self, condition: str) -> float:
        """The logit at the median judge and question that gives the condition's population accuracy."""
        return centre_for(self.accuracy[condition], math.hypot(self.judge_sd, self.question_sd))

    def model_centre(self) -> float:
        return centre_for(self.model_accuracy, self.question_sd)

    def arm_accuracy(self, arm: str) -> float:
        """An arm's population accuracy: its conditions are balanced, so the mean of theirs."""
        return float(np.mean([self.accuracy[c] for c in ARMS[arm].conditions]))


def mean_sigmoid(centre: float, sd: float) -> float:
    """E[sigmoid(centre + sd * Z)], Z standard normal (Gauss-Hermite quadrature)."""
    return float(np.sum(_WEIGHTS * sigmoid(centre + sd * _NODES)) / np.sum(_WEIGHTS))


def centre_for(population_accuracy: float, sd: float) -> float:
    if not 0 < population_accuracy < 1:
        raise ValueError(f"an accuracy strictly between 0 and 1, not {population_accuracy}")
    return float(brentq(lambda c: mean_sigmoid(c, sd) - population_accuracy, -30, 30))


def conditions_of(arms) -> list[str]:
    return [condition for arm in arms for condition in ARMS[arm].conditions]


def simulate_study(design: Design, truth: Truth, seed: int) -> tuple[list[dict], list[dict]]:
    """(trial rows, model-answer rows) of one simulated study."""
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
    )
    skill = dict(zip(judges, rng.normal(0, truth.judge_sd, len(judges))))
    difficulty = rng.normal(0, truth.question_sd, design.num_questions)
    centres = {condition: truth.centre(condition) for condition in {p.condition for p in plans}}
    rows = []
    for trial_id, plan in enumerate(plans, start=1):
        p_correct = sigmoid(centres[plan.condition] + skill[plan.judge_id] - difficulty[plan.question_id])
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
        confidence = float(np.clip(max(p_correct, 1 - p_correct) + rng.normal(0, 0.05), 0.5, 0.99))
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
    return rows, model_rows


# ------------------------------------------------------------------- the analysis on known truth ----
@dataclass(frozen=True)
class Scenario:
    name: str
    design: Design
    truth: Truth


def coverage(scenario: Scenario, *, studies: int, resamples: int, seed: int = 0) -> dict[str, float]:
    """Share of simulated studies whose 95% intervals cover the truth: each arm's level, each difference
    between arms, and the model alone where the design has sandwiching."""
    hits: dict[str, list[bool]] = {}
    truth = scenario.truth
    for study in range(studies):
        rows, model_rows = simulate_study(scenario.design, truth, seed + study)
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
    return {name: float(np.mean(h)) for name, h in hits.items()}


def _covers(estimate, true_value: float) -> bool:
    return bool(estimate.low <= true_value <= estimate.high)


def pass_rates(
    scenario: Scenario, keys, *, studies: int, resamples: int, alpha: float = 0.05, margin: float = 0.05, seed: int = 0
) -> dict[str, float]:
    """Share of simulated studies in which each declared comparison is supported (decided at full size).

    Under a null truth this is the false-pass rate; under an effect, the power."""
    keys = list(keys)
    passed = {key: 0 for key in keys}
    for study in range(studies):
        rows, model_rows = simulate_study(scenario.design, scenario.truth, seed + study)
        data = Judged(rows, model_rows, resamples=resamples, seed=seed + study)
        for decision in decide(keys, data, alpha=alpha, margin=margin, planned=len(data)):
            passed[decision.key] += decision.supported
    return {key: count / studies for key, count in passed.items()}


# The platform's default designs, and the worlds the validity benchmark and its reduced test check.
SIX_JUDGES = Design(num_questions=60, judgments_per_question=3, judges=6)
SANDWICH_DESIGN = Design(
    arms=("naive", "assisted-honest", "assisted-misleading"), num_questions=60, judgments_per_question=3, judges=6
)

COVERAGE_SCENARIOS = (
    Scenario("debate, 60 questions x 3 judgments, 6 judges", SIX_JUDGES, Truth(accuracy={"debate": 0.7})),
    Scenario(
        "debate + consultancy, 40 x 2, 4 judges",
        Design(arms=("debate", "consultancy"), num_questions=40, judgments_per_question=2, judges=4),
        Truth(accuracy={"debate": 0.75, "honest consultant": 0.8, "dishonest consultant": 0.5}),
    ),
    Scenario(
        "sandwiching, 60 x 3, 6 judges",
        SANDWICH_DESIGN,
        Truth(accuracy={"naive": 0.6, "assisted-honest": 0.7, "assisted-misleading": 0.55}, model_accuracy=0.55),
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
