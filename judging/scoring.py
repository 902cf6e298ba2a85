"""Proper scoring rules for a judge's probability. Pure Python, no Django.

A judge states p, the probability that the chosen answer is correct. With two
answers the probability given to the correct one is p if the choice was right
and 1 - p if not. Each rule scores that probability (higher is better) and is
*proper*: a judge maximises the expected score by reporting what they believe.

- log:        ln(q), with q floored at 0.001 so a confident mistake scores -6.91
- quadratic:  1 - 2 * (1 - q)^2        (the binary Brier score, rescaled to [-1, 1])
- spherical:  q / sqrt(q^2 + (1 - q)^2)

An optional per-round penalty subtracts ``penalty * rounds`` so that asking for
more information has a price.
"""

from __future__ import annotations

import math

RULES = ("log", "quadratic", "spherical")
LOG_FLOOR = 0.001


def score(rule: str, q: float, *, rounds: int = 0, penalty: float = 0.0) -> float:
    """The score when the correct answer was given probability ``q``."""
    if rule == "log":
        raw = math.log(max(q, LOG_FLOOR))
    elif rule == "quadratic":
        raw = 1.0 - 2.0 * (1.0 - q) ** 2
    elif rule == "spherical":
        raw = q / math.sqrt(q * q + (1.0 - q) ** 2)
    else:
        raise ValueError(f"unknown scoring rule {rule!r}; choose one of {', '.join(RULES)}")
    return raw - penalty * rounds


def verdict_score(rule: str, p: float, correct: bool, *, rounds: int = 0, penalty: float = 0.0) -> float:
    return score(rule, p if correct else 1.0 - p, rounds=rounds, penalty=penalty)


def display(value: float) -> str:
    """A score as the judge is shown it: signed, to 3 decimals.

    Two decimals hid the incentive near certainty: the spherical score if right read 1.00 from
    p = 0.91 on. Three tell every slider step apart up to p = 0.95 (+0.999), and the score if
    wrong, which is what changes near certainty, differs at every step. Kept in the rule's own
    units rather than points, so what the judge reads is the stored and exported ``score``, rounded.
    """
    text = f"{value:+.3f}"
    return "0.000" if float(text) == 0 else text  # neither "+0.000" nor "-0.000"


def scale_note(rule: str, *, penalty: float = 0.0) -> str:
    """How to read a score under ``rule``, said beside one shown to a judge: under the log rule a right answer at
    75% scores -0.288, which reads as a penalty unless the page says that 0 is the best possible score."""
    best, guess, worst = (display(score(rule, q)) for q in (1.0, 0.5, 0.0))
    note = (
        f"Higher is better: the best possible score is {best} (right and 100% sure), a 50% guess scores {guess} "
        f"and a confident mistake {worst}"
    )
    return note + (f"; each round costs {penalty:.3f}." if penalty else ".")


def outcome_table(rule: str, *, rounds: int = 0, penalty: float = 0.0) -> dict[str, list[str]]:
    """For each slider position p = 0.50, 0.51, ..., 1.00: [score if right, score if wrong], as displayed.

    The judge's page looks scores up here instead of re-implementing the rules or their display.
    """
    table = {}
    for step in range(50, 101):
        p = step / 100
        table[f"{p:.2f}"] = [
            display(verdict_score(rule, p, True, rounds=rounds, penalty=penalty)),
            display(verdict_score(rule, p, False, rounds=rounds, penalty=penalty)),
        ]
    return table
