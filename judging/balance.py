"""How balanced an experiment's trials came out: per judge and per question. Pure Python, no Django.

The planner (``judging.assignment.plan_trials``) balances arms, honest sides and first speakers per
judge; this module reports what was achieved, so a researcher sees it on the experiment page before
analysing (and sees where the design is not balanced, e.g. questions not seen in every arm, which
makes arm comparisons mostly comparisons between questions).

Each trial is a dict with ``judge``, ``question``, ``arm``, ``honest_side``, ``first_speaker``, for
single-speaker arms ``speaker_side`` and ``speaker_honest``, and optionally ``pairing``: its design cell
within the arm (the configurations speaking; judging.lineups).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One fact about the design: what, how it came out, and whether it is what a balanced design gives."""

    what: str
    achieved: str
    balanced: bool


def _spread(counts) -> int:
    """The largest minus the smallest of some counts (0 when perfectly even)."""
    counts = list(counts)
    return max(counts) - min(counts) if counts else 0


def balance_report(trials: list[dict], arms: list[str]) -> list[Line]:
    """Facts about the achieved design, in the order a researcher reads them."""
    if not trials:
        return []
    lines = []
    by_judge = defaultdict(list)
    by_question = defaultdict(list)
    for t in trials:
        by_judge[t["judge"]].append(t)
        by_question[t["question"]].append(t)

    # Arms per judge: each judge should see every arm equally often: to within one, or within a tenth
    # where judges have many trials per arm (large designs are balanced from a sample of choices).
    worst_arm_spread = max(_spread(Counter(t["arm"] for t in ts).get(a, 0) for a in arms) for ts in by_judge.values())
    fewest_per_arm = min(len(ts) for ts in by_judge.values()) // len(arms)
    lines.append(
        Line(
            "arms per judge",
            f"each judge's trials per arm differ by at most {worst_arm_spread}",
            worst_arm_spread <= max(1, fewest_per_arm // 10),
        )
    )
    # Honest side within each judge and arm (position bias cancels only if balanced there).
    worst_side = max(
        _spread(Counter(t["honest_side"] for t in ts if t["arm"] == arm).get(s, 0) for s in "AB")
        for ts in by_judge.values()
        for arm in arms
        if any(t["arm"] == arm for t in ts)
    )
    lines.append(
        Line(
            "honest side per judge and arm",
            f"A and B differ by at most {worst_side} trial(s)",
            worst_side <= 2,  # sides and first speakers are drawn jointly in blocks of four
        )
    )
    # Questions seen in every arm: arm comparisons within questions need it.
    if len(arms) > 1:
        every_arm = sum(1 for ts in by_question.values() if {t["arm"] for t in ts} >= set(arms))
        judgments = max(len(ts) for ts in by_question.values())
        possible = judgments >= len(arms)
        lines.append(
            Line(
                "questions seen in every arm",
                f"{every_arm} of {len(by_question)} ({every_arm / len(by_question):.0%})"
                + ("" if possible else f": impossible with {judgments} judgment(s) per question and {len(arms)} arms"),
                not possible or every_arm == len(by_question),
            )
        )
    lines += _pairing_lines(trials, by_judge)
    # Single-speaker arms: the speaker's honesty and side should vary together, not stick together.
    speakers = [t for t in trials if t.get("speaker_side")]
    if speakers:
        stuck = 0
        cells = 0
        for judge, ts in by_judge.items():
            for arm in arms:
                mine = [t for t in ts if t["arm"] == arm and t.get("speaker_side")]
                if len(mine) >= 4:
                    cells += 1
                    stuck += len({t["speaker_side"] for t in mine}) == 1
        lines.append(
            Line(
                "speaker's side per judge (single-speaker arms, 4+ trials)",
                f"{stuck} of {cells} judge-arm cells have the speaker at the same side every time",
                stuck == 0,
            )
        )
    return lines


def _pairing_lines(trials: list[dict], by_judge: dict) -> list[Line]:
    """Arms split into several pairings (line-ups): each judge sees each pairing about equally often,
    and each pairing argues from both positions about equally often."""
    pairings = defaultdict(set)
    for t in trials:
        pairings[t["arm"]].add(t.get("pairing"))
    split = {arm: cells for arm, cells in pairings.items() if len(cells) > 1}
    if not split:
        return []
    per_judge = max(
        _spread(Counter(t.get("pairing") for t in ts if t["arm"] == arm).get(c, 0) for c in cells)
        for ts in by_judge.values()
        for arm, cells in split.items()
    )
    per_pairing = max(
        _spread(
            Counter(t["honest_side"] for t in trials if t["arm"] == arm and t.get("pairing") == c).get(s, 0)
            for s in "AB"
        )
        for arm, cells in split.items()
        for c in cells
    )
    return [
        Line(
            "pairings per judge",
            f"each judge's trials per pairing differ by at most {per_judge}",
            per_judge <= 2,
        ),
        Line(
            "honest side per pairing",
            f"A and B differ by at most {per_pairing} trial(s) within a pairing",
            per_pairing <= 2,
        ),
    ]
