"""Randomisation of trials: which questions, which judge, who is honest, where.

Pure Python and deterministic given the seed, so an experiment's assignment can
be reproduced from its recorded seed.

Balance: within each judge's trials of each arm, the honest side (A or B) and the
first speaker are drawn jointly as shuffled blocks of the four combinations, and a
consultant's honesty as shuffled blocks of honest/dishonest, not as independent
coin flips, so even a small experiment cannot put most honest debaters on one side.
The incorrect answer a trial's adversary defends is drawn uniformly from the
question's incorrect choices.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .protocols.registry import ARMS


@dataclass(frozen=True)
class QuestionInfo:
    id: int
    n_choices: int
    correct_index: int


@dataclass(frozen=True)
class TrialPlan:
    question_id: int
    judge_id: int
    honest_side: str
    answer_a_index: int
    answer_b_index: int
    first_speaker: str
    queue_position: int
    speaker_side: str = ""  # the single speaker's answer: the consultant's, or the sandwiching assistant's
    protocol: str = "debate"
    condition: str = "debate"


class AssignmentError(ValueError):
    pass


def balanced_blocks(values: list, n: int, rng: random.Random) -> list:
    """n draws made of shuffled complete blocks of ``values`` (the last block cut short at random),
    so every value occurs equally often to within one, also among the first few."""
    out = []
    while len(out) < n:
        block = list(values)
        rng.shuffle(block)
        out.extend(block)
    return out[:n]


def answer_indices(question: QuestionInfo, honest_side: str, rng: random.Random) -> tuple[int, int]:
    """The choices shown as answers A and B: the correct one on the honest side, and an incorrect one
    drawn uniformly from the question's other choices."""
    wrong = rng.choice([i for i in range(question.n_choices) if i != question.correct_index])
    return (question.correct_index, wrong) if honest_side == "A" else (wrong, question.correct_index)


def latin_square_conditions(pairs: list[tuple[object, int]], judge_ids: list[int], conditions: list[str]) -> list[str]:
    """One condition per (question, judge) pair, balanced per judge.

    Judge number j's k-th trial gets conditions[(j + k) % n]: every judge sees each
    condition equally often (within one), and judges start at different
    conditions, so the rows of judges form a Latin square over conditions.
    """
    offset = {judge: j for j, judge in enumerate(judge_ids)}
    seen: dict[int, int] = {judge: 0 for judge in judge_ids}
    out = []
    for _, judge in pairs:
        out.append(conditions[(offset[judge] + seen[judge]) % len(conditions)])
        seen[judge] += 1
    return out


def plan_trials(
    questions: list[QuestionInfo],
    judge_ids: list[int],
    *,
    num_questions: int,
    judgments_per_question: int,
    seed: int,
    arms: list[str] | None = None,
) -> list[TrialPlan]:
    """Plan an experiment's trials. ``arms`` (default: debate only) are mixed and balanced per judge."""
    if not judge_ids:
        raise AssignmentError("the experiment has no judges")
    if judgments_per_question > len(judge_ids):
        raise AssignmentError(
            f"{judgments_per_question} judgments per question need at least that many judges; "
            f"the experiment has {len(judge_ids)}"
        )
    if num_questions > len(questions):
        raise AssignmentError(f"the question set has {len(questions)} questions; {num_questions} were asked for")
    rng = random.Random(seed)
    chosen = rng.sample(sorted(questions, key=lambda q: q.id), num_questions)

    # Spread the judging load: each question goes to the judgments_per_question
    # judges with the fewest trials so far (ties broken at random).
    load = {j: 0 for j in judge_ids}
    pairs = []
    for question in chosen:
        order = sorted(judge_ids, key=lambda j: (load[j], rng.random()))
        for judge in order[:judgments_per_question]:
            load[judge] += 1
            pairs.append((question, judge))

    arms = list(arms or ["debate"])
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise AssignmentError(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    trial_arms = latin_square_conditions(pairs, judge_ids, arms)
    # Balance within each judge's trials of each arm: the honest side and the first speaker
    # jointly (every combination equally often, to within one block), and in arms whose speaker is
    # honest in half of the trials (consultancy) whether it is.
    honest_sides, first_speakers = [""] * len(pairs), [""] * len(pairs)
    half_honest = [False] * len(pairs)
    groups: dict[tuple[int, str], list[int]] = {}
    for i, ((_, judge), arm) in enumerate(zip(pairs, trial_arms)):
        groups.setdefault((judge, arm), []).append(i)
    for indices in groups.values():
        for i, (honest, first) in zip(
            indices, balanced_blocks([("A", "A"), ("A", "B"), ("B", "A"), ("B", "B")], len(indices), rng)
        ):
            honest_sides[i], first_speakers[i] = honest, first
        for i, is_honest in zip(indices, balanced_blocks([True, False], len(indices), rng)):
            half_honest[i] = is_honest
    speaker_honest, trial_conditions = [], []
    for i, arm in enumerate(ARMS[name] for name in trial_arms):
        if len(arm.conditions) == 2:  # (honest, dishonest), balanced per judge
            speaker_honest.append(half_honest[i])
            trial_conditions.append(arm.conditions[0] if half_honest[i] else arm.conditions[1])
        else:
            speaker_honest.append(arm.speaker_honest)
            trial_conditions.append(arm.conditions[0])
    positions: dict[int, list[int]] = {}
    for j in judge_ids:
        positions[j] = list(range(load[j]))
        rng.shuffle(positions[j])

    plans = []
    for (question, judge), honest, first, is_honest, condition, arm in zip(
        pairs, honest_sides, first_speakers, speaker_honest, trial_conditions, trial_arms
    ):
        a, b = answer_indices(question, honest, rng)
        speaker = ""
        if is_honest is not None:
            speaker = honest if is_honest else ("B" if honest == "A" else "A")
        plans.append(
            TrialPlan(
                question_id=question.id,
                judge_id=judge,
                honest_side=honest,
                answer_a_index=a,
                answer_b_index=b,
                first_speaker=speaker or first,
                queue_position=positions[judge].pop(),
                speaker_side=speaker,
                protocol=ARMS[arm].protocol,
                condition=condition,
            )
        )
    return plans
