"""Consultancy: one consultant argues for one answer, honest in half of the trials.

The same state machine as debate (rounds, judge questions between rounds,
minimum rounds, the flip rule, one verdict) with a single speaker: the
consultant speaks for the answer position it defends ("A" or "B"). No Django,
no torch.
"""

from __future__ import annotations

from .debate import SEQUENTIAL, DebateRules

# Published default: a consultant gets twice a debater's budget, so that the
# judge receives as much argument per round as from a two-debater round.
BUDGET_MULTIPLIER = 2


def consultancy_rules(
    *, rounds: int, consultant_side: str, min_rounds: int | None = None, extra_round_after_flip: bool = False
) -> DebateRules:
    return DebateRules(
        rounds=rounds,
        turn_style=SEQUENTIAL,
        first_speaker=consultant_side,
        min_rounds=min_rounds,
        extra_round_after_flip=extra_round_after_flip,
        speakers=(consultant_side,),
    )
