"""Power and sample size before launch, by simulating the platform's own plan and analysis. No Django.

Given assumed population accuracies per condition, how much judges and questions vary, and a design,
``power`` simulates whole studies (``results.simulation``: laid out by ``judging.assignment.plan_trials``,
judged by simulated judges, analysed by ``results.accuracy.decide`` with Holm across the comparisons
given together, each decided once every planned trial is judged) and reports the share of studies in
which each comparison is supported, with its Monte Carlo standard error.

``judgments_needed`` changes only the number of questions: judgments per question and the judges stay
as designed. With few judges, the judges' spread is a floor on the uncertainty that more questions do
not remove, so a comparison may never reach the target by adding questions; it then says "more than
the cap", and the remedy is more judges. docs/power.md says how to read the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from judging import analysis_plan
from judging.protocols.registry import ARMS

from .simulation import Design, Scenario, Truth, conditions_of, pass_rates, sigmoid

TARGET = 0.8
# The largest study the search simulates, in judgments (questions x judgments per question).
CAP = 20_000
# Studies are simulated in batches of this many, so a size far from the target stops early.
BATCH = 10
# Bounds on inputs: beyond them a "design" or a "spread" stops meaning anything a study could run.
MAX_JUDGES = 500
MAX_SD = 3.0
# Placeholders the form and the command start from, until a researcher states their own assumptions
# (the worlds of results.simulation's validity scenarios). Every report prints the values it used.
ASSUMED_ACCURACY = {
    "debate": 0.7,
    "honest consultant": 0.8,
    "dishonest consultant": 0.5,
    "naive": 0.6,
    "assisted-honest": 0.7,
    "assisted-misleading": 0.6,
}


class PowerInputError(ValueError):
    """Inputs that cannot be simulated: ``errors`` maps an input's name to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Power:
    """How many of ``studies`` simulated studies supported the comparison ``key``."""

    key: str
    passed: int
    studies: int

    @property
    def rate(self) -> float:
        return self.passed / self.studies

    @property
    def error(self) -> float:
        """Monte Carlo standard error of ``rate``; floored so that 0/n and n/n do not claim certainty."""
        return math.sqrt(max(self.rate * (1 - self.rate), 1 / self.studies) / self.studies)


@dataclass(frozen=True)
class Needed:
    """The fewest questions (judgments per question and judges fixed) at which ``key`` reached the target.

    ``questions`` is None when even the cap's size did not reach it; ``power`` is then the power there."""

    key: str
    questions: int | None
    judgments_per_question: int
    power: Power

    @property
    def judgments(self) -> int | None:
        return None if self.questions is None else self.questions * self.judgments_per_question


@dataclass(frozen=True)
class Search:
    needed: dict[str, Needed]
    tried: dict[int, dict[str, Power]]  # every number of questions simulated: its power by comparison
    target: float
    cap: int

    @property
    def questions_for_all(self) -> int | None:
        """The fewest questions at which every comparison reached the target (None: beyond the cap)."""
        sizes = [n.questions for n in self.needed.values()]
        return None if None in sizes else max(sizes)

    @property
    def studies_simulated(self) -> int:
        return sum(next(iter(powers.values())).studies for powers in self.tried.values())


@dataclass(frozen=True)
class Sizing:
    """Power at the design and the judgments needed: what the page and the command report."""

    design: Design
    truth: Truth
    keys: tuple[str, ...]
    alpha: float
    margin: float
    resamples: int
    at_design: dict[str, Power]
    search: Search
    labels: dict[str, str]  # each comparison's wording
    # The recommended size (every comparison at the target) re-simulated on fresh studies, as many as at the
    # design; None when the search found none below the cap, or the check would exceed ``check_budget``.
    check: dict[str, Power] | None = None
    check_budget: int | None = None  # the most judgments a check may simulate in all (None: no limit)

    @property
    def check_falls_short(self) -> bool:
        """A comparison's fresh power below the target by more than two Monte Carlo errors: not noise."""
        return self.check is not None and any(p.rate + 2 * p.error < self.search.target for p in self.check.values())

    @property
    def check_skipped(self) -> bool:
        """A size was recommended but not checked: the check would have simulated too much."""
        return self.search.questions_for_all is not None and self.check is None


def input_errors(
    design: Design, truth: Truth, keys, *, alpha: float, margin: float, cap: int = CAP, target: float = TARGET
) -> dict[str, str]:
    """Input name -> message for inputs that cannot be simulated (empty when all can).

    Accuracies are keyed ``accuracy:<condition>``; the comparisons, α and δ are checked by the rules an
    experiment's analysis plan is checked by (``judging.analysis_plan.plan_errors``)."""
    errors = {}
    arms = list(design.arms)
    if not arms or any(a not in ARMS for a in arms) or len(set(arms)) != len(arms):
        errors["arms"] = f"one or more distinct arms from: {', '.join(ARMS)}"
    if design.num_questions < 1:
        errors["num_questions"] = "at least one question"
    if design.judgments_per_question < 1:
        errors["judgments_per_question"] = "at least one"
    elif design.judgments_per_question > design.judges:
        # The planner's own rule (judging.assignment.plan_trials): each question goes to different judges.
        errors["judgments_per_question"] = (
            f"{design.judgments_per_question} judgments per question need at least that many judges"
        )
    if not 1 <= design.judges <= MAX_JUDGES:
        errors["judges"] = f"between 1 and {MAX_JUDGES}"
    if "num_questions" not in errors and design.num_questions * design.judgments_per_question > cap:
        errors["num_questions"] = f"the design has more than the {cap:,} judgments this calculator simulates"
    if "arms" not in errors:
        for condition in conditions_of(arms):
            accuracy = truth.accuracy.get(condition)
            if accuracy is None:
                errors[f"accuracy:{condition}"] = f"give the accuracy you assume for {condition}"
            elif not 0 < accuracy < 1:  # written so that NaN fails too
                errors[f"accuracy:{condition}"] = "strictly between 0 and 1 (a share of verdicts correct)"
    if truth.model_accuracy is None or not 0 < truth.model_accuracy < 1:
        errors["model_accuracy"] = "strictly between 0 and 1"
    for name in ("judge_sd", "question_sd"):
        value = getattr(truth, name)
        if value is None or not 0 <= value <= MAX_SD:
            errors[name] = f"between 0 and {MAX_SD:g} (log-odds)"
    keys = list(keys)
    if not keys:
        errors["comparisons"] = "choose at least one comparison to test"
    plan = analysis_plan.plan_errors(
        arms=arms,
        primary=keys if "arms" not in errors else [],  # with no valid arms, no comparison could be checked
        alpha=alpha,
        margin=margin,
        planned_judgments=None,
        trials=0,
    )
    names = {"primary_comparisons": "comparisons", "alpha": "alpha", "non_inferiority_margin": "margin"}
    for name, message in plan.items():
        errors.setdefault(names[name], message)
    # plan_errors passes a missing α or δ (the experiment form fills in the default); here both are needed.
    if alpha is None:
        errors["alpha"] = "give the significance level (0.05 is usual)"
    if margin is None:
        errors["margin"] = "give the non-inferiority margin (a share of accuracy, 0.05 = 5 points)"
    if not 0 < target < 1:
        errors["target"] = "strictly between 0 and 1 (0.8 is usual)"
    return errors


def _check(design: Design, truth: Truth, keys, **limits) -> None:
    if errors := input_errors(design, truth, keys, **limits):
        raise PowerInputError(errors)


def _simulate(design, truth, keys, *, alpha, margin, studies, resamples, seed, stop_near=None) -> dict[str, Power]:
    """Power of each comparison from up to ``studies`` studies, simulated in batches.

    With ``stop_near`` (a target power), stop once every comparison is more than two standard errors
    (of the target's binomial share) above or below it: sizes far from the target only bracket the
    search, and large ones cost seconds per study. Batches continue the seeds where the last stopped,
    so the studies are the same as in one call of ``pass_rates``."""
    scenario = Scenario("power analysis", design, truth)
    passed = dict.fromkeys(keys, 0)
    done = 0
    while done < studies:
        batch = min(BATCH, studies - done)
        rates = pass_rates(
            scenario, keys, studies=batch, resamples=resamples, alpha=alpha, margin=margin, seed=seed + done
        )
        for key in keys:
            passed[key] += round(rates[key] * batch)
        done += batch
        if stop_near is not None:
            band = 2 * math.sqrt(stop_near * (1 - stop_near) / done)
            if all(abs(passed[key] / done - stop_near) > band for key in keys):
                break
    return {key: Power(key, passed[key], done) for key in keys}


def power(
    design: Design,
    truth: Truth,
    keys,
    *,
    alpha: float,
    margin: float,
    studies: int,
    resamples: int,
    seed: int = 0,
    cap: int = CAP,
) -> dict[str, Power]:
    """Power of each comparison at the design, tested together (Holm across ``keys``)."""
    keys = list(keys)
    _check(design, truth, keys, alpha=alpha, margin=margin, cap=cap)
    return _simulate(design, truth, keys, alpha=alpha, margin=margin, studies=studies, resamples=resamples, seed=seed)


def judgments_needed(
    design: Design,
    truth: Truth,
    keys,
    *,
    target: float = TARGET,
    alpha: float,
    margin: float,
    studies: int,
    resamples: int,
    seed: int = 0,
    cap: int = CAP,
    resolution: float = 0.1,
    at_design: dict[str, Power] | None = None,
) -> Search:
    """For each comparison separately, the fewest questions at which its power reaches ``target``.

    Judgments per question and judges stay as designed. Every size is simulated with all the
    comparisons together (Holm across them, as the analysis does), so sizes tried for one comparison
    serve the others. The rule: from the design's number of questions, double until every comparison
    reaches the target or the cap is hit, and halve while any reaches it at the smallest size tried;
    then for each comparison bisect between the largest size below its first success and that success,
    until they are within ``resolution`` of each other, relatively (finer steps than the Monte Carlo
    noise of a search step resolve nothing). ``at_design`` (the design's power from ``power``) is reused,
    not simulated again.
    """
    keys = list(keys)
    _check(design, truth, keys, alpha=alpha, margin=margin, cap=cap, target=target)
    most = max(1, cap // design.judgments_per_question)
    tried: dict[int, dict[str, Power]] = {}
    if at_design is not None:
        tried[design.num_questions] = at_design

    def powers(questions: int) -> dict[str, Power]:
        if questions not in tried:
            tried[questions] = _simulate(
                replace(design, num_questions=questions),
                truth,
                keys,
                alpha=alpha,
                margin=margin,
                studies=studies,
                resamples=resamples,
                seed=seed,
                stop_near=target,
            )
        return tried[questions]

    def reaches(questions: int, key: str) -> bool:
        return powers(questions)[key].rate >= target

    start = min(design.num_questions, most)
    questions = start
    # Simulated first, compared with the cap second, so the cap's own size is tried.
    while not all(reaches(questions, key) for key in keys) and questions < most:
        questions = min(2 * questions, most)
    questions = start
    while questions > 1 and any(reaches(questions, key) for key in keys):
        questions = max(1, questions // 2)

    needed = {}
    for key in keys:
        successes = [q for q in sorted(tried) if reaches(q, key)]
        if not successes:
            needed[key] = Needed(key, None, design.judgments_per_question, powers(max(tried))[key])
            continue
        high = successes[0]
        low = max((q for q in tried if q < high), default=0)  # every size tried below ``high`` fell short
        while high - low > max(1, resolution * high):
            middle = (low + high) // 2
            if reaches(middle, key):
                high = middle
            else:
                low = middle
        needed[key] = Needed(key, high, design.judgments_per_question, powers(high)[key])
    return Search(needed, dict(sorted(tried.items())), target, cap)


def size_study(
    design: Design,
    truth: Truth,
    keys,
    *,
    alpha: float,
    margin: float,
    studies: int,
    search_studies: int,
    resamples: int,
    seed: int = 0,
    target: float = TARGET,
    cap: int = CAP,
    resolution: float = 0.1,
    check_budget: int | None = None,
) -> Sizing:
    """Power at the design (``studies`` studies), the judgments needed (``search_studies`` per size), and the
    size recommended for every comparison checked on ``studies`` fresh studies, unless that would simulate
    more than ``check_budget`` judgments in all (a web page's limit; None: no limit)."""
    keys = tuple(keys)
    _check(design, truth, keys, alpha=alpha, margin=margin, cap=cap, target=target)
    common = {"alpha": alpha, "margin": margin, "resamples": resamples, "seed": seed}
    at_design = power(design, truth, keys, studies=studies, cap=cap, **common)
    search = judgments_needed(
        design,
        truth,
        keys,
        target=target,
        studies=search_studies,
        cap=cap,
        resolution=resolution,
        at_design=at_design,
        **common,
    )
    labels = {key: analysis_plan.comparison(key).label for key in keys}
    check = None
    recommended = (search.questions_for_all or 0) * design.judgments_per_question
    if recommended and (check_budget is None or studies * recommended <= check_budget):
        # The search's steps use few studies and keep the smallest size that reached the target, perhaps by
        # luck (simulated: 0.78 true power on average where the page's steps said 0.86): check it with as
        # many studies as the design, fresh ones (study i is seeded seed + i, so start past every seed used).
        check = power(
            replace(design, num_questions=search.questions_for_all),
            truth,
            keys,
            studies=studies,
            cap=cap,
            **(common | {"seed": seed + max(studies, search_studies)}),
        )
    return Sizing(design, truth, keys, alpha, margin, resamples, at_design, search, labels, check, check_budget)


def default_comparisons(arms) -> list[str]:
    """What to test when nothing was declared yet: the first comparison the arms allow (sandwiching's
    'helpful' test, else the first arm above chance), for the researcher to change."""
    return [c.key for c in analysis_plan.available_comparisons(arms)[:1]]


def spread_example(sd: float, accuracy: float = 0.7) -> tuple[float, float]:
    """Accuracy one ``sd`` (log-odds) above and below ``accuracy``: what a spread means, in plain numbers."""
    centre = math.log(accuracy / (1 - accuracy))
    return float(sigmoid(centre + sd)), float(sigmoid(centre - sd))
