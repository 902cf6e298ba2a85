"""Randomisation of trials: which questions, which judge, which arm, who is honest, where.

Pure Python and deterministic given the seed, so an experiment's assignment can be reproduced from
its recorded seed with the platform version recorded in its provenance.

Balance, per question and per judge:
- Each question's judgments go to different arms, rotating through the arms, so with at least as
  many judgments per question as arms every question is seen in every arm (arm comparisons are then
  within questions), and with fewer the arms still appear equally often overall.
- Judges are matched to a question's arm slots greedily: fewest trials first (the judging load), then
  fewest trials in that arm (each judge sees every arm about equally often), ties at random. A judge
  who has seen a question before (``seen``: an earlier experiment on the same set) is never given it.
- Within each judge's trials of each arm, the honest side and the first speaker are drawn jointly as
  shuffled blocks of the four combinations; in arms whose single speaker is honest in half the trials
  (consultancy), the honest side and the speaker's honesty are drawn jointly instead, so the speaker's
  own side is balanced too (drawn separately, 20% of judges had the consultant on one side in all
  four trials). Not independent coin flips, so even a small experiment cannot put most honest
  speakers on one side.
- Design cells (judging.lineups: an arm split by its pairings of configurations) are rotated and
  matched like arms, and each cell's trials are balanced between the sides over all judges.
- The incorrect answer a trial's adversary defends is drawn uniformly from the question's incorrect
  choices; each judge's queue is shuffled.
- Practice trials (first in each judge's queue) and attention checks (in random slots among the study
  trials) are added afterwards by ``plan_onboarding_trials``, from a generator of their own.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, replace

from .lineups import Cell
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
    # The configurations speaking for the correct and for the wrong answer (None: nobody does).
    honest_config: int | None = None
    adversary_config: int | None = None
    # The people (user ids) speaking for them instead, where a line-up names people (judging.lineups).
    honest_person: int | None = None
    adversary_person: int | None = None
    role: str = "study"  # or "practice", "attention" (plan_onboarding_trials)


class AssignmentError(ValueError):
    pass


def answer_indices(question: QuestionInfo, honest_side: str, rng: random.Random) -> tuple[int, int]:
    """The choices shown as answers A and B: the correct one on the honest side, and an incorrect one
    drawn uniformly from the question's other choices."""
    wrong = rng.choice([i for i in range(question.n_choices) if i != question.correct_index])
    return (question.correct_index, wrong) if honest_side == "A" else (wrong, question.correct_index)


# A question's choices of judges (among those tied on load), arms and who takes which are all weighed
# up to MAX_OPTIONS (designs of about 8 judges and 4 judgments per question, or a dozen and 3); beyond, a random
# sample.
MAX_OPTIONS = 6000
SAMPLED_OPTIONS = 200  # launching 10,000 trials stays within seconds


def assign_judges_and_arms(
    chosen: list[QuestionInfo],
    judge_ids: list[int],
    arms: list,
    judgments_per_question: int,
    rng: random.Random,
    seen: dict[int, set[int]],
) -> list[tuple[QuestionInfo, int, object]]:
    """(question, judge, arm) for every trial: arms rotate within each question, the judges with the
    fewest trials take it, matched to its arms to keep each judge's arms even, and nobody meets a
    question they have ``seen``. An arm is any sortable key (plan_trials passes design cells)."""
    load = {j: 0 for j in judge_ids}
    in_arm = {(j, arm): 0 for j in judge_ids for arm in arms}
    total = {arm: 0 for arm in arms}
    out = []
    for question in chosen:
        available = [j for j in judge_ids if question.id not in seen.get(j, ())]
        # The judges with the fewest trials take the question (load first); among judges tied on load,
        # and over the arms it gets (a window of the arm cycle: distinct arms, all of them when there are
        # enough judgments) and who takes which, the choice that keeps each judge's arms and the arms
        # overall most even (smallest sums of squared counts), ties at random.
        by_load = sorted(available, key=lambda j: (load[j], rng.random()))
        cut = load[by_load[judgments_per_question - 1]]
        must = [j for j in by_load if load[j] < cut]
        tied = [j for j in by_load if load[j] == cut]
        windows = sorted(
            {tuple(arms[(start + k) % len(arms)] for k in range(judgments_per_question)) for start in range(len(arms))}
        )
        need = judgments_per_question - len(must)
        size = math.comb(len(tied), need) * len(windows) * math.factorial(judgments_per_question)
        if size <= MAX_OPTIONS:
            options = [
                (tuple(must) + group, matching)
                for group in itertools.combinations(tied, need)
                for window in windows
                for matching in itertools.permutations(window)
            ]
            rng.shuffle(options)
        else:  # a large design: weigh a random sample of the choices
            options = [
                (
                    tuple(must) + tuple(rng.sample(tied, need)),
                    tuple(rng.sample(rng.choice(windows), judgments_per_question)),
                )
                for _ in range(SAMPLED_OPTIONS)
            ]

        def unevenness(option):
            judges, matching = option
            per_judge = sum((in_arm[j, arm] + 1) ** 2 for j, arm in zip(judges, matching))
            overall = sum((total[arm] + matching.count(arm)) ** 2 for arm in set(matching))
            return per_judge, overall

        judges, best = min(options, key=unevenness)
        for judge, arm in zip(judges, best):
            load[judge] += 1
            in_arm[judge, arm] += 1
            total[arm] += 1
            out.append((question, judge, arm))
    return out


def plan_trials(
    questions: list[QuestionInfo],
    judge_ids: list[int],
    *,
    num_questions: int,
    judgments_per_question: int,
    seed: int,
    arms: list[str] | None = None,
    seen: dict[int, set[int]] | None = None,
    cells: list[Cell] | None = None,
) -> list[TrialPlan]:
    """Plan an experiment's trials. ``arms`` (default: debate only) are mixed and balanced per judge and
    per question; ``seen`` maps a judge to the question ids they must not meet again. ``cells``
    (judging.lineups.design_cells; default: one per arm, nobody named) split arms into pairings of
    configurations: every cell is rotated and balanced like an arm, so each gets an equal share."""
    if not judge_ids:
        raise AssignmentError("the experiment has no judges")
    if judgments_per_question > len(judge_ids):
        raise AssignmentError(
            f"{judgments_per_question} judgments per question need at least that many judges; "
            f"the experiment has {len(judge_ids)}"
        )
    if num_questions > len(questions):
        raise AssignmentError(f"the question set has {len(questions)} questions; {num_questions} were asked for")
    arms = list(arms or ["debate"])
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise AssignmentError(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    cells = cells or [Cell(arm, None, None) for arm in arms]
    if {cell.arm for cell in cells} != set(arms):
        raise AssignmentError("the design cells must cover exactly the experiment's arms")
    seen = seen or {}
    # Questions enough judges have not seen (all of them when nobody has seen any).
    fresh = [q for q in questions if sum(q.id not in seen.get(j, ()) for j in judge_ids) >= judgments_per_question]
    if num_questions > len(fresh):
        raise AssignmentError(
            f"only {len(fresh)} questions of the set have {judgments_per_question} judge(s) who have not seen them "
            f"in another experiment; {num_questions} were asked for (ask for fewer, add judges, or turn "
            "re-exposure checking off)"
        )
    rng = random.Random(seed)
    chosen = rng.sample(sorted(fresh, key=lambda q: q.id), num_questions)
    # Keys that sort by arm first, so one cell per arm plans exactly as arms alone do.
    keys = [(cell.arm, k) for k, cell in enumerate(cells)]
    trials = assign_judges_and_arms(chosen, judge_ids, keys, judgments_per_question, rng, seen)
    pairs = [(question, judge) for question, judge, _ in trials]
    trial_arms = [arm for _, _, (arm, _) in trials]
    trial_cells = [cells[k] for _, _, (_, k) in trials]
    load = {j: sum(1 for _, judge in pairs if judge == j) for j in judge_ids}

    # Within each judge's trials of each arm: the honest side jointly with the first speaker, or, in
    # arms whose speaker is honest in half the trials (consultancy), with whether it is honest (so the
    # speaker's own side is balanced as well), as shuffled complete blocks of the four combinations.
    # Where an arm has several cells (pairings), each trial takes, of what is left of its block, the
    # combination whose honest side its cell has had less often so far over all judges, so each
    # pairing is balanced between the sides too (with one cell per arm, the blocks are taken in order).
    honest_sides, first_speakers = [""] * len(pairs), [""] * len(pairs)
    half_honest = [False] * len(pairs)
    groups: dict[tuple[int, str], list[int]] = {}
    for i, ((_, judge), arm) in enumerate(zip(pairs, trial_arms)):
        groups.setdefault((judge, arm), []).append(i)
    cells_in_arm = {arm: sum(cell.arm == arm for cell in cells) for arm in arms}
    cell_sides: dict[tuple, int] = {}
    for (_, arm), indices in groups.items():
        second = [True, False] if len(ARMS[arm].conditions) == 2 else ["A", "B"]
        block: list = []
        for i in sorted(indices, key=lambda i: trials[i][2]):
            if not block:
                block = [(side, x) for side in "AB" for x in second]
                rng.shuffle(block)
            key = trials[i][2]
            take = 0
            if cells_in_arm[arm] > 1:
                take = min(range(len(block)), key=lambda b: cell_sides.get((key, block[b][0]), 0))
            honest, other = block.pop(take)
            cell_sides[key, honest] = cell_sides.get((key, honest), 0) + 1
            honest_sides[i] = honest
            if len(ARMS[arm].conditions) == 2:
                half_honest[i] = other
            else:
                first_speakers[i] = other
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
    for (question, judge), honest, first, is_honest, condition, arm, cell in zip(
        pairs, honest_sides, first_speakers, speaker_honest, trial_conditions, trial_arms, trial_cells
    ):
        a, b = answer_indices(question, honest, rng)
        speaker = ""
        honest_config, adversary_config = cell.honest, cell.adversary
        honest_person, adversary_person = cell.honest_person, cell.adversary_person
        if is_honest is not None:  # one speaker: only its side's configuration (or person) speaks
            speaker = honest if is_honest else ("B" if honest == "A" else "A")
            honest_config, adversary_config = (cell.honest, None) if is_honest else (None, cell.adversary)
            honest_person, adversary_person = (honest_person, None) if is_honest else (None, adversary_person)
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
                honest_config=honest_config,
                adversary_config=adversary_config,
                honest_person=honest_person,
                adversary_person=adversary_person,
            )
        )
    return plans


def _other(side: str) -> str:
    return "B" if side == "A" else "A"


def _design_of(plan: TrialPlan) -> tuple:
    """What a practice or attention trial copies from a study trial: its protocol, condition and speakers."""
    return (
        plan.protocol,
        plan.condition,
        plan.honest_config,
        plan.adversary_config,
        plan.honest_person,
        plan.adversary_person,
        None if not plan.speaker_side else plan.speaker_side == plan.honest_side,  # the speaker's honesty
    )


def _independent_sides(n: int, rng: random.Random) -> list[str]:
    """Honest sides for n practice trials or attention checks, each A or B by a fair draw of its own. Not
    balanced as the study's are: the truth is shown after a practice trial (and after every trial with
    immediate feedback), so with as many A as B a judge would know the last one's answer from the others'."""
    return [rng.choice("AB") for _ in range(n)]


def _plan_like(
    design: tuple, question: QuestionInfo, judge: int, honest: str, position: int, role: str, rng: random.Random
) -> TrialPlan:
    protocol, condition, honest_config, adversary_config, honest_person, adversary_person, speaker_honest = design
    a, b = answer_indices(question, honest, rng)
    speaker = "" if speaker_honest is None else (honest if speaker_honest else _other(honest))
    return TrialPlan(
        question_id=question.id,
        judge_id=judge,
        honest_side=honest,
        answer_a_index=a,
        answer_b_index=b,
        first_speaker=speaker or rng.choice("AB"),
        queue_position=position,
        speaker_side=speaker,
        protocol=protocol,
        condition=condition,
        honest_config=honest_config,
        adversary_config=adversary_config,
        honest_person=honest_person,
        adversary_person=adversary_person,
        role=role,
    )


def attention_count(rate: float, study_trials: int) -> int:
    """Attention checks among a judge's study trials: rate × study trials, rounded half up (not to even)."""
    return math.floor(rate * study_trials + 0.5)


def _draw(pool: list[QuestionInfo], exclude: set[int], n: int, what: str, judge: int, rng) -> list[QuestionInfo]:
    left = sorted((q for q in pool if q.id not in exclude), key=lambda q: q.id)
    if len(left) < n:
        raise AssignmentError(
            f"{what}: judge {judge} needs {n} question(s) but only {len(left)} are left (not in the study, not "
            "already theirs, not seen before); add questions to that set or ask for fewer"
        )
    return rng.sample(left, n)


def plan_onboarding_trials(
    study: list[TrialPlan],
    judge_ids: list[int],
    *,
    practice_per_judge: int,
    practice_questions: list[QuestionInfo],
    attention_rate: float,
    attention_questions: list[QuestionInfo],
    seed: int,
    seen: dict[int, set[int]] | None = None,
) -> list[TrialPlan]:
    """The study plan (``plan_trials``) with each judge's practice trials and attention checks added:
    every plan, the study's with their queue positions moved to make room (their order kept).

    - Practice: ``practice_per_judge`` trials first in each judge's queue (positions 0, 1, ...). Each copies
      the design (protocol, condition, speakers) of one of the judge's study trials: the distinct designs in
      the order the judge meets them, cycling when there are more practice trials than designs, so a judge
      practises what they will judge first, and every kind of it when there are enough practice trials.
    - Attention checks: ``attention_count(rate, study trials)`` per judge, put in slots drawn uniformly among
      the judge's study trials (their order kept), so a check's position says nothing; each copies the design
      of the study trial right after it (the one before, at the end), so it is generated and shown like its
      neighbours.
    - Questions: never one of the study's (any judge's) nor one the judge has ``seen``; a judge's practice and
      attention questions are distinct. Honest sides drawn independently (``_independent_sides``).

    Drawn from a generator of its own (seeded by ``seed``), so the study's randomisation is that of
    ``plan_trials`` whatever is added; with neither practice nor checks the study plan is returned as it is.
    """
    if practice_per_judge == 0 and attention_rate == 0:
        return list(study)
    rng = random.Random(f"{seed}-onboarding")
    seen = seen or {}
    study_questions = {p.question_id for p in study}
    by_judge: dict[int, list[TrialPlan]] = {j: [] for j in judge_ids}
    for plan in study:
        by_judge[plan.judge_id].append(plan)
    out: list[TrialPlan] = []
    for judge in judge_ids:
        own = sorted(by_judge[judge], key=lambda p: p.queue_position)
        if not own:  # nothing to practise for, nothing to hide checks among
            continue
        designs = list(dict.fromkeys(_design_of(p) for p in own))
        avoid = study_questions | seen.get(judge, set())
        practice = _draw(practice_questions, avoid, practice_per_judge, "practice questions", judge, rng)
        sides = _independent_sides(practice_per_judge, rng)
        for i, question in enumerate(practice):
            out.append(_plan_like(designs[i % len(designs)], question, judge, sides[i], i, "practice", rng))
        checks = attention_count(attention_rate, len(own))
        attention = _draw(
            attention_questions, avoid | {q.id for q in practice}, checks, "attention-check questions", judge, rng
        )
        slots = set(rng.sample(range(len(own) + checks), checks))
        sides = _independent_sides(checks, rng)
        queue = iter(own)
        order: list[TrialPlan | None] = [None if slot in slots else next(queue) for slot in range(len(own) + checks)]
        for slot, plan in enumerate(order):
            position = practice_per_judge + slot
            if plan is not None:
                out.append(replace(plan, queue_position=position))
                continue
            after = next((p for p in order[slot + 1 :] if p is not None), None)
            neighbour = after or next(p for p in reversed(order[:slot]) if p is not None)
            check = _plan_like(_design_of(neighbour), attention.pop(), judge, sides.pop(), position, "attention", rng)
            out.append(check)
    return out
