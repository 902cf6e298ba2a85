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


def outcome_table(rule: str, *, rounds: int = 0, penalty: float = 0.0) -> dict[str, list[float]]:
    """For each slider position p = 0.50, 0.51, ..., 1.00: [score if right, score if wrong].

    The judge's page looks scores up here instead of re-implementing the rules.
    """
    table = {}
    for step in range(50, 101):
        p = step / 100
        table[f"{p:.2f}"] = [
            round(verdict_score(rule, p, True, rounds=rounds, penalty=penalty), 3),
            round(verdict_score(rule, p, False, rounds=rounds, penalty=penalty), 3),
        ]
    return table
