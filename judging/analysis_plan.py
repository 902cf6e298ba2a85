"""What an experiment declares about its analysis before any data: pure Python, no Django.

A researcher picks the primary comparisons on the experiment form, with the significance level α, the
non-inferiority margin δ for misleading assistance and the planned number of judgments. All of it is
frozen at launch and exported with the data; the analysis page reports the primary comparisons first
(Holm-adjusted across the family) and labels everything else exploratory (docs/analysis.md).

Every comparison is one-sided and about accuracy (the share of verdicts choosing the correct answer):

- ``above-chance:<arm>``: accuracy in the arm > 50% (in debate: honest debaters win more than half).
- ``difference:<a>:<b>``: accuracy in arm a > accuracy in arm b.
- ``sandwich-helpful``: with an honest assistant judges beat both the judge alone and the model alone,
  an intersection-union test (Berger 1982): each one-sided at α, the pair level α without correction.
- ``sandwich-robust``: a misleading assistant does not pull accuracy below the judge alone by more than
  δ (non-inferiority: misleading − alone > −δ).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

from .protocols.registry import ARMS

ABOVE_CHANCE = "above-chance"
DIFFERENCE = "difference"
SANDWICH_HELPFUL = "sandwich-helpful"
SANDWICH_ROBUST = "sandwich-robust"

DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.05


@dataclass(frozen=True)
class Comparison:
    key: str
    kind: str
    arms: tuple[str, ...]
    label: str


def comparison(key: str) -> Comparison:
    """The comparison a key names; ValueError for a key that names none."""
    kind, _, rest = key.partition(":")
    arms = tuple(rest.split(":")) if rest else ()
    if any(arm not in ARMS for arm in arms):
        raise ValueError(f"unknown arm in comparison {key!r}; arms are {', '.join(ARMS)}")
    if kind == ABOVE_CHANCE and len(arms) == 1:
        (arm,) = arms
        wording = "honest debaters win more than half" if arm == "debate" else "accuracy above 50%"
        return Comparison(key, kind, arms, f"{ARMS[arm].label}: {wording}")
    if kind == DIFFERENCE and len(arms) == 2 and arms[0] != arms[1]:
        return Comparison(key, kind, arms, f"accuracy: {arms[0]} higher than {arms[1]}")
    if kind == SANDWICH_HELPFUL and not arms:
        return Comparison(
            key,
            kind,
            ("naive", "assisted-honest"),
            "sandwiching, helpful: with an honest assistant judges beat the judge alone and the model alone",
        )
    if kind == SANDWICH_ROBUST and not arms:
        return Comparison(
            key,
            kind,
            ("naive", "assisted-misleading"),
            "sandwiching, robust: a misleading assistant lowers accuracy below the judge alone by less than δ",
        )
    raise ValueError(f"{key!r} is not a comparison the platform knows (docs/analysis.md, 'Pre-registration')")


def available_comparisons(arms) -> list[Comparison]:
    """Every comparison an experiment with these arms can declare, sandwiching tests first."""
    arms = [a for a in arms if a in ARMS]
    keys = []
    if {"naive", "assisted-honest"} <= set(arms):
        keys.append(SANDWICH_HELPFUL)
    if {"naive", "assisted-misleading"} <= set(arms):
        keys.append(SANDWICH_ROBUST)
    keys += [f"{ABOVE_CHANCE}:{arm}" for arm in arms]
    keys += [f"{DIFFERENCE}:{a}:{b}" for a, b in permutations(arms, 2)]
    return [comparison(key) for key in keys]


def plan_errors(*, arms, primary, alpha, margin, planned_judgments, trials) -> dict[str, str]:
    """Field name -> message for a plan that cannot be analysed as declared (empty when it can)."""
    errors = {}
    if not isinstance(primary, list) or not all(isinstance(k, str) for k in primary):
        errors["primary_comparisons"] = "a list of comparison keys"
    else:
        allowed = {c.key for c in available_comparisons(arms)}
        wrong = [k for k in primary if k not in allowed]
        if wrong:
            errors["primary_comparisons"] = f"{wrong[0]!r} is not available with arms {', '.join(arms)}"
        elif len(set(primary)) != len(primary):
            errors["primary_comparisons"] = "each comparison once"
    if alpha is not None and not 0 < alpha <= 0.2:
        errors["alpha"] = "between 0 and 0.2 (0.05 is usual)"
    if margin is not None and not 0 <= margin <= 0.5:
        errors["non_inferiority_margin"] = "between 0 and 0.5 (a share of accuracy, 0.05 = 5 points)"
    if planned_judgments is not None and trials and not 1 <= planned_judgments <= trials:
        errors["planned_judgments"] = f"between 1 and the experiment's {trials} trials"
    return errors
