"""Sandwiching (assisted question answering). Pure Python, no Django.

Conditions, balanced per judge (judging.assignment):
- ``naive``: the judge answers alone; nobody speaks, the verdict is due at once.
- ``assisted-honest``: an assistant that can read the source text helps the judge.
- ``assisted-misleading``: the same assistant, prompted to steer the judge toward
  one specific incorrect answer without saying so.
Plus the *model alone* baseline, which involves no judge: the model's own
probability for each answer, from the log-probabilities of the answer labels
(generation.baselines.score_model_alone).

An assisted trial runs on the same rules engine as debate with one speaker: the
assistant opens with an analysis (round 1); after each round the judge may ask it
anything, and its next turn answers; the judge ends when they are ready (after
``min_rounds``). The assistant's internal side ("A" or "B") is the answer it is
steered toward (misleading) or the correct one (honest); the judge is never told.
"""

from __future__ import annotations

from .debate import SEQUENTIAL, DebateRules

NAIVE = "naive"
HONEST = "assisted-honest"
MISLEADING = "assisted-misleading"
CONDITIONS = (NAIVE, HONEST, MISLEADING)


def sandwich_rules(*, condition: str, rounds: int, assistant_side: str, min_rounds: int | None = None) -> DebateRules:
    if condition not in CONDITIONS:
        raise ValueError(f"unknown sandwiching condition {condition!r}")
    if condition == NAIVE:
        return DebateRules(rounds=0, turn_style=SEQUENTIAL, first_speaker="A", speakers=("A",))
    return DebateRules(
        rounds=rounds,
        turn_style=SEQUENTIAL,
        first_speaker=assistant_side,
        speakers=(assistant_side,),
        min_rounds=min_rounds if min_rounds is not None else 1,
    )
