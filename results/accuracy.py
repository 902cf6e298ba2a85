"""How often judges are right: levels, differences, and the tests an experiment declares. Pure numpy.

Rows are shaped like the trials export (and the model-answers export for the model alone), so every
figure can be recomputed from an export (docs/analysis.md). Every interval accounts for the clustering
of verdicts by question and by judge (``results.inference``). A verdict is correct when it chose the
correct answer; in debate that is exactly "the honest debater won".

Tests are one-sided and decided only at the experiment's planned size, or once no more verdicts can come
(the experiment closed, or every study trial ended: the reason then gives the shortfall, and how many trials a
close left unjudged); before that the page shows the estimate, bound and p-value and says "not enough data", so
watching results come in cannot turn into stopping when they look good without the page saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np

from judging import analysis_plan
from judging.baseline_verdicts import credit
from judging.protocols.registry import ARM_OF_CONDITION, ARMS

from .inference import (
    RESAMPLES,
    SEED,
    Estimate,
    OneSidedTest,
    TwoWayBootstrap,
    greater_than,
    holm,
    lower_bound,
    unknown,
)

CHANCE = 0.5


def arm_of(row) -> str:
    return ARM_OF_CONDITION.get(row.get("condition") or "", row.get("protocol") or "unknown")


def config_name(row) -> str:
    return (row.get("model_settings") or {}).get("config_name", "unknown")


def debater_configs(row) -> tuple[str, str]:
    """(honest, adversarial) configuration names of a debate; rows exported before line-ups name one
    configuration (their model settings'), which argued both sides."""
    shared = config_name(row)
    return row.get("honest_config") or shared, row.get("adversarial_config") or shared


def debater_pairing(row) -> str:
    honest, adversarial = debater_configs(row)
    return f"{honest} (honest) against {adversarial}"


def assistant_config(row) -> str:
    """The configuration that spoke alone in a trial (a sandwiching assistant: the honest one's or the
    misleading one's), or that answered alone (a model-alone row); empty where the row does not say
    (rows exported before line-ups, or no speaker)."""
    return row.get("model_config") or row.get("honest_config") or row.get("adversarial_config") or ""


class Judged:
    """Judged trials, and model-alone answers, with one resampling plan over their questions and judges."""

    def __init__(self, rows, model_rows=(), *, resamples: int = RESAMPLES, seed: int = SEED):
        self.rows = [r for r in rows if r.get("verdict")]
        self.model_rows = list(model_rows)
        units = self.rows + [{"question_id": m["question_id"], "judge": None} for m in self.model_rows]
        # 1 right, 0 wrong; a model-alone tie (both answer orders averaged to 50%) counts as half right.
        self.outcome = np.array([credit(r["correct"]) for r in self.rows + self.model_rows])
        self.bootstrap = TwoWayBootstrap.of_rows(units, resamples=resamples, seed=seed)
        # Each row's arm ("model alone" for the model's answers), so arm masks are one comparison.
        self.arms = np.array([arm_of(r) for r in self.rows] + ["model alone"] * len(self.model_rows))
        # Each trial's assistant configuration and each model answer's (empty: not named).
        self.configs = np.array(
            [assistant_config(r) for r in self.rows] + [m.get("model_config") or "" for m in self.model_rows],
            dtype=object,
        )

    def __len__(self) -> int:
        return len(self.rows)

    def first(self, count: int) -> "Judged":
        """The first ``count`` verdicts in the order they were given (``verdict_at``), with the same
        model answers and resampling settings."""
        ordered = sorted(self.rows, key=lambda r: r.get("verdict_at") or "")
        return Judged(ordered[:count], self.model_rows, resamples=self.bootstrap.resamples, seed=self.bootstrap.seed)

    def where(self, predicate) -> np.ndarray:
        """A mask over the judged trials (never the model's answers)."""
        return np.array([predicate(r) for r in self.rows] + [False] * len(self.model_rows), bool)

    def model_alone(self, config: str | None = None) -> np.ndarray:
        """The model-alone answers of configuration ``config``; by default those of the configurations that
        assist honestly (the model whose help the sandwiching claims weigh), or every one where the rows do
        not say which configuration answered or assisted."""
        answers = self.arm("model alone")
        if config is not None:
            return answers & (self.configs == config)
        honest = set(self.configs[self.arm("assisted-honest")]) - {""}
        if not honest or not (self.configs[answers] != "").any():
            return answers
        return answers & np.isin(self.configs, list(honest))

    def assisted_by(self, config: str) -> np.ndarray:
        """A mask of the trials whose single speaker was configuration ``config``."""
        return self.where(lambda r: assistant_config(r) == config)

    def assistant_configs(self, arm: str) -> list[str]:
        """The configurations named in arm ``arm``'s verdicts, in name order."""
        return sorted(set(self.configs[self.arm(arm)]) - {""})

    def arm(self, name: str) -> np.ndarray:
        """A mask of the verdicts in arm ``name``."""
        return self.arms == name

    def share(self, mask) -> Estimate:
        return self.bootstrap.proportion(self.outcome, mask)

    def difference(self, mask_a, mask_b) -> Estimate:
        return self.bootstrap.difference(self.outcome, mask_a, mask_b)


# ------------------------------------------------------------------------------------------ levels ----
def by_arm(data: Judged) -> dict[str, Estimate]:
    """Accuracy per arm, in the registry's order of arms."""
    present = set(data.arms[: len(data.rows)])
    return {arm: data.share(data.arm(arm)) for arm in ARMS if arm in present}


def by_condition(data: Judged) -> dict[str, Estimate]:
    """Accuracy per condition where an arm has two (consultancy: honest and dishonest consultant)."""
    out = {}
    for arm in ARMS.values():
        if len(arm.conditions) < 2:
            continue
        for condition in arm.conditions:
            mask = data.where(lambda r, c=condition: r.get("condition") == c)
            if mask.any():
                out[f"{arm.value}: {condition}"] = data.share(mask)
    return out


def arm_differences(data: Judged) -> dict[str, Estimate]:
    """Every pair of arms present: accuracy of the earlier arm (registry order) minus the later."""
    arms = [arm for arm in ARMS if data.arm(arm).any()]
    return {f"{a} − {b}": data.difference(data.arm(a), data.arm(b)) for a, b in combinations(arms, 2)}


@dataclass(frozen=True)
class Split:
    """Levels of two or more groups of verdicts and the differences of each from the first."""

    title: str
    levels: dict[str, Estimate]
    differences: dict[str, Estimate] = field(default_factory=dict)


def split(data: Judged, title: str, key, groups: list[str] | None = None, within=lambda r: True) -> Split | None:
    """Verdicts in ``within`` grouped by ``key(row)``; None unless there are two groups to compare."""
    labels = groups or sorted({key(r) for r in data.rows if within(r)})
    masks = {g: data.where(lambda r, g=g: within(r) and key(r) == g) for g in labels}
    masks = {g: m for g, m in masks.items() if m.any()}
    if len(masks) < 2:
        return None
    (first, first_mask), *rest = masks.items()
    return Split(
        title,
        {g: data.share(m) for g, m in masks.items()},
        {f"{g} − {first}": data.difference(m, first_mask) for g, m in rest},
    )


def debate_splits(data: Judged) -> list[Split]:
    """Where the honest debater wins more: by answer position, speaking order, debater configuration."""

    def debate(r):
        return r["protocol"] == "debate"

    def sequential(r):
        return debate(r) and r.get("turn_style") == "sequential"

    candidates = [
        split(data, "Honest debater's answer position", lambda r: f"honest at {r['honest_side']}", within=debate),
        split(
            data,
            "Speaking order (sequential debates)",
            lambda r: "honest speaks first" if r["first_speaker"] == r["honest_side"] else "honest speaks second",
            within=sequential,
        ),
        split(data, "Debater pairing (honest configuration against the adversary's)", debater_pairing, within=debate),
    ]
    return [s for s in candidates if s is not None]


def honest_wins_test(data: Judged) -> OneSidedTest | None:
    """Debate: the honest side wins more than half (one-sided score test at the effective size)."""
    mask = data.where(lambda r: r["protocol"] == "debate")
    if not mask.any():
        return None
    test = greater_than("honest debaters win more than half", data.share(mask), CHANCE)
    why = why_untestable((test,), data, mask)
    return replace(test, p=None, reason=why) if why else test


# ------------------------------------------------------------------------------------------- tests ----
@dataclass(frozen=True)
class Plan:
    """An experiment's frozen analysis plan, as the analysis needs it."""

    experiment: str
    primary: tuple[str, ...]
    alpha: float
    margin: float
    planned_judgments: int
    # Why no more verdicts can come (the experiment closed, every study trial ended), or "" while some may:
    # then the declared comparisons are decided on the verdicts there are, even short of the planned size.
    collection_over: str = ""


@dataclass(frozen=True)
class Decision:
    """A declared comparison: its one-sided tests, p-value (Holm-adjusted in a primary family) and outcome."""

    key: str
    label: str
    tests: tuple[OneSidedTest, ...]
    p: float | None  # the comparison's p-value (intersection-union: the largest of its tests')
    p_adjusted: float | None
    alpha: float
    outcome: str  # "supported", "not supported", "not enough data", "cannot be tested"
    reason: str = ""
    config: str = ""  # the assistant configuration tested alone (sandwiching variants); empty: the whole arm

    @property
    def supported(self) -> bool:
        return self.outcome == "supported"

    @property
    def rows(self) -> list[tuple[OneSidedTest, float | None]]:
        """Each test with its one-sided (1 - α) lower bound: above the test's null exactly when its own p is at
        most α, so a supported comparison never shows a bound at or below its null."""
        return [(test, lower_bound(test, self.alpha)) for test in self.tests]


ASSISTED = {"assisted-honest": "human + honest assistant", "assisted-misleading": "human + misleading assistant"}


def _tests(
    key: str, data: Judged, margin: float, config: str | None = None
) -> tuple[tuple[OneSidedTest, ...], np.ndarray]:
    """The one-sided tests of comparison ``key`` and the rows they rest on; with ``config``, of that assistant
    configuration's trials (and its own model-alone answers) in the assisted arms."""
    spec = analysis_plan.comparison(key)
    of = f" ({config})" if config else ""

    def arm(name):
        mask = data.arm(name)
        return mask & data.assisted_by(config) if config and name in ASSISTED else mask

    if spec.kind == analysis_plan.ABOVE_CHANCE:
        mask = arm(spec.arms[0])
        return (greater_than(f"{spec.arms[0]} accuracy > 50%", data.share(mask), CHANCE),), mask
    if spec.kind == analysis_plan.DIFFERENCE:
        a, b = spec.arms
        rows_a, rows_b = arm(a), arm(b)
        return (greater_than(f"{a} − {b} > 0", data.difference(rows_a, rows_b), 0.0),), rows_a | rows_b
    if spec.kind == analysis_plan.SANDWICH_HELPFUL:
        honest, alone, model = arm("assisted-honest"), arm("naive"), data.model_alone(config)
        tests = (
            greater_than(f"honest assistance{of} − judge alone > 0", data.difference(honest, alone), 0.0),
            greater_than(f"honest assistance{of} − model alone{of} > 0", data.difference(honest, model), 0.0),
        )
        return tests, honest | alone | model
    if spec.kind == analysis_plan.SANDWICH_ROBUST:
        misleading, alone = arm("assisted-misleading"), arm("naive")
        test = greater_than(
            f"misleading{of} − judge alone > −{100 * margin:g} pts", data.difference(misleading, alone), -margin
        )
        return (test,), misleading | alone
    raise ValueError(key)


# Below this many judges (but more than one) a test that generalises to other judges is unreliable:
# with 2 or 3 the judge term of the variance rests on 1 or 2 degrees of freedom, and in simulation the
# "above chance" test passed falsely 7-9% of the time at alpha = 5%. One judge is allowed: its results
# generalise over questions only, and the page says so.
MIN_JUDGES_FOR_TESTS = 4
# What a test resting on one judge's verdicts is said to mean (beside its outcome, whatever the other arms have).
ONE_JUDGE = "one judge: this generalises over questions only, not to other judges"

EXPLORATORY_OUTCOMES = {True: "p ≤ α (exploratory)", False: "p > α (exploratory)"}


def why_untestable(tests, data: Judged, rows) -> str:
    """Why ``tests`` of the verdicts in ``rows`` cannot be decided, or "": one of them cannot be run, the
    verdicts are on one question, or they come from 2 or 3 judges. Counted on the rows a comparison rests on
    (a sandwiching variant's may come from few judges)."""
    n_questions, n_judges = data.bootstrap.units("question", rows), data.bootstrap.units("judge", rows)
    blocked = [t for t in tests if t.p is None]
    if blocked:
        return f"{blocked[0].name}: {blocked[0].reason}"
    if n_questions < 2:
        # Nothing said about one question generalises to others: no test, whatever the p-value.
        return "all verdicts are on one question"
    if 1 < n_judges < MIN_JUDGES_FOR_TESTS:
        return (
            f"only {n_judges} judges: a test that generalises to other judges needs at least "
            f"{MIN_JUDGES_FOR_TESTS} (with 2 or 3, simulated false-pass rates reached 7-9% at α = 5%)"
        )
    return ""


def decide(
    keys,
    data: Judged,
    *,
    alpha: float,
    margin: float,
    planned: int,
    collection_over: str = "",
    exploratory: bool = False,
    config: str | None = None,
) -> list[Decision]:
    """Test a family of comparisons, Holm-adjusted across it, each decided only at the planned size, or when
    no more verdicts can come (``collection_over`` says why: lost trials would otherwise block a decision
    for good; the shortfall is given as the reason and what became of the lost trials is the attrition's).

    A comparison that cannot be tested still counts in the family (as p = 1), so the others are not
    corrected for fewer comparisons than were declared. ``exploratory``: no decision, only whether p
    fell below α, for comparisons nobody declared. ``config``: the assisted arms' trials of that
    assistant configuration only (a sandwiching variant)."""
    tested = {key: _tests(key, data, margin, config) for key in keys}
    raw = {key: (None if any(t.p is None for t in ts) else max(t.p for t in ts)) for key, (ts, _) in tested.items()}
    family = holm({key: 1.0 if p is None else p for key, p in raw.items()})
    adjusted = {key: family[key] if raw[key] is not None else None for key in raw}
    out = []
    for key, (ts, rows) in tested.items():
        one_judge = ONE_JUDGE if data.bootstrap.units("judge", rows) == 1 else ""
        untestable = why_untestable(ts, data, rows)
        if untestable:
            outcome, reason = "cannot be tested", untestable
        elif exploratory:
            outcome, reason = EXPLORATORY_OUTCOMES[adjusted[key] <= alpha], one_judge
        elif len(data) < planned and not collection_over:
            outcome, reason = "not enough data", f"{len(data)} of {planned} planned verdicts"
        else:
            outcome = "supported" if adjusted[key] <= alpha else "not supported"
            short = f"on {len(data)} of {planned} planned verdicts: {collection_over}" if len(data) < planned else ""
            reason = "; ".join(part for part in (short, one_judge) if part)
        label = analysis_plan.comparison(key).label.replace("δ", f"δ = {100 * margin:g} pts")
        if config:
            label = f"{label} (assistant: {config})"
        out.append(Decision(key, label, ts, raw[key], adjusted[key], alpha, outcome, reason, config or ""))
    return out


def primary_results(data: Judged, plan: Plan) -> list[Decision]:
    """The declared comparisons, decided on the first planned verdicts (in the order they were given):
    verdicts that come in later can no longer move a decision already taken."""
    if len(data) > plan.planned_judgments:
        data = data.first(plan.planned_judgments)
    return decide(
        plan.primary,
        data,
        alpha=plan.alpha,
        margin=plan.margin,
        planned=plan.planned_judgments,
        collection_over=plan.collection_over,
    )


@dataclass(frozen=True)
class Sandwich:
    numbers: dict[str, Estimate]
    decisions: list[Decision]
    missing: list[str]
    variants: list[str] = field(default_factory=list)  # assistant configurations reported one by one


def _levels(data: Judged, masks: dict) -> dict[str, Estimate]:
    return {name: data.share(mask) if mask.any() else unknown(0, "not measured") for name, mask in masks.items()}


def _sandwich_claims(data: Judged, numbers: dict[str, Estimate], of: str = "") -> list[str]:
    """The claims whose numbers are all measured (``of``: a variant's label suffix)."""
    measured = {name for name, e in numbers.items() if e.n}
    keys = []
    if {"human alone", f"human + honest assistant{of}", f"model alone{of}"} <= measured:
        keys.append(analysis_plan.SANDWICH_HELPFUL)
    if {"human alone", f"human + misleading assistant{of}"} <= measured:
        keys.append(analysis_plan.SANDWICH_ROBUST)
    return keys


def sandwich(data: Judged, *, alpha: float, margin: float) -> Sandwich | None:
    """The four sandwiching numbers and the helpful and robust tests, exploratory: an experiment that
    declared them gets its decision in its primary results (None without sandwiching verdicts).

    Where the assistants are more than one configuration (e.g. a misleading arm split into a prompted and
    a fine-tuned assistant), each configuration's numbers follow the arms': its model alone, and the
    judges helped by it in each assisted arm; and each configuration of an assisted arm that has several
    gets its own test (helpful against its own model alone; robust)."""

    if not any(r["protocol"] == "sandwich" for r in data.rows):
        return None
    masks = {
        "human alone": data.arm("naive"),
        "model alone": data.model_alone(),
        **{label: data.arm(arm) for arm, label in ASSISTED.items()},
    }
    numbers = _levels(data, masks)
    missing = [name for name, mask in masks.items() if not mask.any()]
    # The two sandwiching claims are separate questions, each at its own alpha (not a family).
    decisions = [
        d
        for key in _sandwich_claims(data, numbers)
        for d in decide([key], data, alpha=alpha, margin=margin, planned=0, exploratory=True)
    ]
    by_arm = {arm: data.assistant_configs(arm) for arm in ASSISTED}
    named = {c for configs in by_arm.values() for c in configs} | set(data.configs[data.arm("model alone")])
    variants = sorted(named - {""}) if len(named - {""}) > 1 else []
    # A configuration alone in its arm is the arm: its test is the arm's, above.
    split = {
        analysis_plan.SANDWICH_HELPFUL: len(by_arm["assisted-honest"]) > 1,
        analysis_plan.SANDWICH_ROBUST: len(by_arm["assisted-misleading"]) > 1,
    }
    for config in variants:
        of = f" ({config})"
        own = {f"model alone{of}": data.model_alone(config)} | {
            f"{label}{of}": data.arm(arm) & data.assisted_by(config)
            for arm, label in ASSISTED.items()
            if config in by_arm[arm]
        }
        numbers |= _levels(data, own)
        decisions += [
            d
            for key in _sandwich_claims(data, numbers, of)
            if split[key]
            for d in decide([key], data, alpha=alpha, margin=margin, planned=0, exploratory=True, config=config)
        ]
    return Sandwich(numbers, decisions, missing, variants)
