"""Every protocol and arm the platform runs, declared in one place. Pure Python, no Django.

A *protocol* is a way a judge is helped (debate, consultancy, sandwiching): who speaks, the rules
they speak under, how the judge sees and addresses them, their budgets, how their prompts are built
and which template fragment explains it on the judge's page. An *arm* is what an experiment mixes
and balances per judge (Latin square); each arm runs one protocol and sets whether its speaker argues
for the correct answer. A trial's *condition* is its arm made concrete (a consultancy trial is an
honest or a dishonest consultant).

Adding a protocol means adding a ``Protocol`` here, its rules module beside this one, and its page
fragment ``templates/judging/protocols/<name>.html``; nothing else branches on protocol names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import prompts, sandwich
from .consultancy import BUDGET_MULTIPLIER, consultancy_rules
from .debate import SIMULTANEOUS, DebateRules

DEBATE = "debate"
CONSULTANCY = "consultancy"
SANDWICH = "sandwich"


@dataclass(frozen=True)
class TrialSetup:
    """What a protocol's rules and prompts are made from: the experiment's design and one trial's draw."""

    rounds: int
    turn_style: str
    first_speaker: str  # debate: who opens sequential rounds
    speaker_side: str  # consultancy: the consultant's answer; sandwiching: the assistant's
    condition: str
    live: bool
    min_rounds: int | None
    extra_round_after_flip: bool


@dataclass(frozen=True)
class PromptInputs:
    """Everything a speaker's prompt may use. ``config`` is a model configuration (its prompt fields)."""

    config: object
    me: str
    question: str
    my_answer: str
    opponent_answer: str
    answer_a: str
    answer_b: str
    passage: str
    visible_speeches: tuple
    round_number: int
    rounds: int
    char_limit: int
    condition: str


@dataclass(frozen=True)
class Protocol:
    name: str
    label: str
    rules: Callable[[TrialSetup], DebateRules]
    prompt: Callable[[PromptInputs], list[dict]]
    # How the judge sees a speaker: never anything that reveals a condition (an assistant's side).
    speaker_label: Callable[[str], str]
    # How a judge's question names whom it asks.
    addressee: Callable[[tuple[str, ...]], str]
    budget_multiplier: int = 1  # speech character and quote budgets, relative to the experiment's
    two_speakers: bool = False  # the experiment's turn style (simultaneous or sequential) applies
    judge_chooses_addressee: bool = False  # otherwise a question goes to every speaker
    # Between rounds the judge may go on without asking (a debate); otherwise they ask or answer.
    continue_without_question: bool = True
    hides_speaker_side: bool = False  # the judge's transcript says "assistant", not "A"/"B"
    always_live: bool = False  # the judge talks to the speaker, so trials are live whatever the mode
    best_of_n: bool = True  # candidates can be scored for convincingness (an assistant has no side to win)
    model_alone_baseline: bool = False  # the model's own answer is scored per question
    # The trial field recording which answer the single speaker argues for (None: two speakers).
    speaker_side_field: str | None = None
    # A line-up may name people (users with the debater role) as its speakers, besides configurations.
    people_may_speak: bool = False

    @property
    def page_template(self) -> str:
        return f"judging/protocols/{self.name}.html"

    def quote_budget(self, quote_limit: int | None) -> int | None:
        """Each speech's budget of new verified quote characters (judging.quotes) under the experiment's limit."""
        return None if quote_limit is None else quote_limit * self.budget_multiplier


def _debate_rules(setup: TrialSetup) -> DebateRules:
    return DebateRules(
        rounds=setup.rounds,
        turn_style=setup.turn_style,
        first_speaker=setup.first_speaker,
        min_rounds=setup.min_rounds if setup.live else None,
        extra_round_after_flip=setup.live and setup.extra_round_after_flip,
    )


def _consultancy_rules(setup: TrialSetup) -> DebateRules:
    return consultancy_rules(
        rounds=setup.rounds,
        consultant_side=setup.speaker_side,
        min_rounds=setup.min_rounds if setup.live else None,
        extra_round_after_flip=setup.live and setup.extra_round_after_flip,
    )


def _sandwich_rules(setup: TrialSetup) -> DebateRules:
    return sandwich.sandwich_rules(
        condition=setup.condition,
        rounds=setup.rounds,
        assistant_side=setup.speaker_side or "A",
        min_rounds=setup.min_rounds,
    )


def _speaker_prompt(consultant: bool) -> Callable[[PromptInputs], list[dict]]:
    def build(p: PromptInputs) -> list[dict]:
        config = p.config
        return prompts.build_debater_messages(
            system_prompt=config.consultant_system_prompt if consultant else config.system_prompt,
            template=config.consultant_prompt_template if consultant else config.prompt_template,
            me=p.me,
            consultant=consultant,
            question=p.question,
            my_answer=p.my_answer,
            opponent_answer=p.opponent_answer,
            passage=p.passage,
            visible_speeches=p.visible_speeches,
            round_number=p.round_number,
            rounds=p.rounds,
            char_limit=p.char_limit,
        )

    return build


def _assistant_prompt(p: PromptInputs) -> list[dict]:
    return prompts.build_assistant_messages(
        misleading=p.condition == ASSISTED_MISLEADING,
        question=p.question,
        answer_a=p.answer_a,
        answer_b=p.answer_b,
        target_answer=p.my_answer,
        passage=p.passage,
        visible_speeches=p.visible_speeches,
        char_limit=p.char_limit,
    )


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            DEBATE,
            "Debate",
            rules=_debate_rules,
            prompt=_speaker_prompt(consultant=False),
            speaker_label=lambda side: f"Debater {side}",
            addressee=lambda sides: " and ".join(f"Debater {side}" for side in sides),
            two_speakers=True,
            judge_chooses_addressee=True,
            people_may_speak=True,
        ),
        Protocol(
            CONSULTANCY,
            "Consultancy",
            rules=_consultancy_rules,
            prompt=_speaker_prompt(consultant=True),
            speaker_label=lambda side: f"Consultant (for answer {side})",
            addressee=lambda sides: "the consultant",
            budget_multiplier=BUDGET_MULTIPLIER,
            speaker_side_field="consultant_side",
            people_may_speak=True,
        ),
        Protocol(
            SANDWICH,
            "Sandwiching",
            rules=_sandwich_rules,
            prompt=_assistant_prompt,
            speaker_label=lambda side: "Assistant",
            addressee=lambda sides: "the assistant",
            hides_speaker_side=True,
            continue_without_question=False,
            always_live=True,
            best_of_n=False,
            model_alone_baseline=True,
            speaker_side_field="assistant_side",
        ),
    )
}


# Trial conditions: an arm made concrete.
DEBATE_CONDITION = "debate"
HONEST_CONSULTANT = "honest consultant"
DISHONEST_CONSULTANT = "dishonest consultant"
NAIVE = sandwich.NAIVE
ASSISTED_HONEST = sandwich.HONEST
ASSISTED_MISLEADING = sandwich.MISLEADING


@dataclass(frozen=True)
class Arm:
    value: str
    label: str
    protocol: str
    # The conditions its trials are in. One: every trial is in it. Two (honest, dishonest): the
    # speaker is honest in half of the judge's trials of this arm, as shuffled balanced blocks.
    conditions: tuple[str, ...]
    # Whether the single speaker argues for the correct answer (None: both sides argue, or nobody speaks).
    speaker_honest: bool | None = None
    has_speaker: bool = True  # False: the judge decides alone


ARMS: dict[str, Arm] = {
    a.value: a
    for a in (
        Arm("debate", "Debate (two debaters, one honest)", DEBATE, (DEBATE_CONDITION,)),
        Arm(
            "consultancy",
            "Consultancy (one consultant, honest in half of these trials)",
            CONSULTANCY,
            (HONEST_CONSULTANT, DISHONEST_CONSULTANT),
        ),
        Arm("naive", "Sandwiching: judge alone (no assistant)", SANDWICH, (NAIVE,), has_speaker=False),
        Arm(
            "assisted-honest",
            "Sandwiching: judge with an honest assistant (live)",
            SANDWICH,
            (ASSISTED_HONEST,),
            speaker_honest=True,
        ),
        Arm(
            "assisted-misleading",
            "Sandwiching: judge with an assistant steering toward a wrong answer (live)",
            SANDWICH,
            (ASSISTED_MISLEADING,),
            speaker_honest=False,
        ),
    )
}

CONDITIONS: tuple[str, ...] = tuple(c for arm in ARMS.values() for c in arm.conditions)
# Each condition belongs to exactly one arm (the analysis groups verdicts by arm from their condition).
ARM_OF_CONDITION: dict[str, str] = {c: arm.value for arm in ARMS.values() for c in arm.conditions}


def simultaneous(protocol: str, turn_style: str) -> bool:
    """Both speakers write each round without seeing each other's speech (two-speaker protocols only)."""
    return PROTOCOLS[protocol].two_speakers and turn_style == SIMULTANEOUS
