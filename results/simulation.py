"""Studies simulated with known truth, laid out by the platform's own planner. Pure Python + numpy.

Every estimator and test of the analysis is checked on these (docs/statistics standard): a study is
planned by ``judging.assignment.plan_trials`` exactly as a launched experiment is, then each planned
trial is judged by a simulated judge:

    P(correct) = sigmoid(logit(accuracy[condition]) + skill[judge] - difficulty[question])

with skill ~ N(0, judge_sd) and difficulty ~ N(0, question_sd) on the logit scale. The *true* accuracy
of a condition is its average over the population of judges and questions (not over the ones drawn),
which is what a reported interval claims to cover. A model answering alone is right with
P = sigmoid(logit(model_accuracy) - difficulty[question]). Attrition: a trial of an arm listed in
``failure_rate`` fails generation with that probability, more often on hard questions when
``failures_on_hard_questions`` (the selection the attrition table is there to reveal).

Rows are shaped like the trials and model-answers exports (docs/exports.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from judging.assignment import QuestionInfo, plan_trials
from judging.protocols.registry import ARMS

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


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
    """The simulated world. Accuracies are at the median judge and question (logit scale centre)."""

    accuracy: dict = field(default_factory=lambda: {"debate": 0.7})  # by condition
    judge_sd: float = 0.5
    question_sd: float = 1.0
    model_accuracy: float = 0.6
    failure_rate: dict = field(default_factory=dict)  # by condition
    failures_on_hard_questions: bool = False

    def population_accuracy(self, condition: str) -> float:
        """Mean accuracy over the population of judges and questions (Gauss-Hermite quadrature)."""
        return _mean_sigmoid(logit(self.accuracy[condition]), math.hypot(self.judge_sd, self.question_sd))

    def model_population_accuracy(self) -> float:
        return _mean_sigmoid(logit(self.model_accuracy), self.question_sd)


def _mean_sigmoid(centre: float, sd: float) -> float:
    return float(np.sum(_WEIGHTS * sigmoid(centre + sd * _NODES)) / np.sum(_WEIGHTS))


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
    rows = []
    for trial_id, plan in enumerate(plans, start=1):
        p_correct = sigmoid(logit(truth.accuracy[plan.condition]) + skill[plan.judge_id] - difficulty[plan.question_id])
        row = {
            "trial_id": trial_id,
            "question_id": f"q{plan.question_id}",
            "judge": f"judge{plan.judge_id}",
            "protocol": plan.protocol,
            "condition": plan.condition,
            "honest_side": plan.honest_side,
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
    model_rows = [
        {
            "question_id": f"q{q}",
            "correct": bool(rng.random() < sigmoid(logit(truth.model_accuracy) - difficulty[q])),
        }
        for q in sorted({p.question_id for p in plans})
    ]
    return rows, model_rows
