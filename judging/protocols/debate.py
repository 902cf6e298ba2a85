"""The debate protocol as a pure state machine.

No Django, no torch: the web views and the Celery workers only *ask* this module
who may speak next and *apply* moves to it. Consultancy and sandwiching will be
sibling modules with the same shape (rules, state, moves, IllegalMove).

Vocabulary
- Two debaters, "A" and "B"; debater A defends the answer shown in position A.
- A round is one speech from each debater. In *simultaneous* rounds neither
  debater sees the other's speech of the same round; in *sequential* rounds the
  second speaker sees the first speaker's speech.
- The judge may interject a question between rounds (after a round is complete
  and before the next starts). Its text is addressed to one or both debaters and
  becomes part of the transcript that later speeches are written with.
- After the last round (or once ended by the judge, no earlier than
  ``min_rounds``) the debate awaits a verdict; after the verdict it is closed.

The state is immutable: ``apply`` returns a new state or raises IllegalMove,
so a refused move can never leave a half-changed state behind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DEBATERS = ("A", "B")
JUDGE = "judge"

SIMULTANEOUS = "simultaneous"
SEQUENTIAL = "sequential"

# Phases
DEBATING = "debating"
AWAITING_VERDICT = "awaiting_verdict"
CLOSED = "closed"


class IllegalMove(ValueError):
    """A move the protocol does not allow in the current state."""


@dataclass(frozen=True)
class DebateRules:
    rounds: int
    turn_style: str = SIMULTANEOUS
    first_speaker: str = "A"  # only matters for sequential rounds
    min_rounds: int | None = None  # earliest round after which the judge may end; default: all rounds
    extra_round_after_flip: bool = False  # a flipped leaning requires one more round before ending
    # Who speaks each round: both debaters, or one (a consultant defending that answer; see consultancy.py).
    speakers: tuple[str, ...] = DEBATERS

    def __post_init__(self):
        if self.rounds < 0:
            raise ValueError("rounds cannot be negative")  # 0: nobody speaks (sandwiching's naive condition)
        if self.turn_style not in (SIMULTANEOUS, SEQUENTIAL):
            raise ValueError(f"unknown turn style {self.turn_style!r}")
        if (
            not self.speakers
            or any(s not in DEBATERS for s in self.speakers)
            or len(set(self.speakers)) != len(self.speakers)
        ):
            raise ValueError(f"speakers must be distinct, from {DEBATERS}")
        if self.first_speaker not in self.speakers:
            raise ValueError(f"first speaker must be one of {self.speakers}")
        if self.min_rounds is not None and not 1 <= self.min_rounds <= self.rounds:
            raise ValueError("min_rounds must be between 1 and rounds")

    @property
    def speaking_order(self) -> tuple[str, ...]:
        first = self.first_speaker
        return (first,) + tuple(s for s in self.speakers if s != first)

    @property
    def earliest_end(self) -> int:
        return self.rounds if self.min_rounds is None else self.min_rounds


@dataclass(frozen=True)
class Speech:
    speaker: str  # "A", "B" or JUDGE
    round: int  # debater speeches: 1..rounds; a judge question carries the round it follows
    text: str
    addressed_to: tuple[str, ...] = ()  # judge questions only


@dataclass(frozen=True)
class Verdict:
    chosen: str  # "A" or "B"
    probability: float  # probability that the chosen answer is correct


@dataclass(frozen=True)
class DebateState:
    rules: DebateRules
    transcript: tuple[Speech, ...] = ()
    ended_by_judge: bool = False
    verdict: Verdict | None = None
    # The judge's optional leaning between rounds: (after round, probability that A is correct).
    leanings: tuple[tuple[int, float], ...] = ()

    # ----- reading the state -------------------------------------------------
    def speeches_in_round(self, round_number: int) -> list[Speech]:
        return [s for s in self.transcript if s.speaker in DEBATERS and s.round == round_number]

    @property
    def completed_rounds(self) -> int:
        done = 0
        for r in range(1, self.rules.rounds + 1):
            if len(self.speeches_in_round(r)) == len(self.rules.speakers):
                done = r
            else:
                break
        return done

    @property
    def current_round(self) -> int:
        """The round now being spoken (rounds + 1 once all are done)."""
        return self.completed_rounds + 1

    @property
    def phase(self) -> str:
        if self.verdict is not None:
            return CLOSED
        if self.ended_by_judge or self.completed_rounds >= self.rules.rounds:
            return AWAITING_VERDICT
        return DEBATING

    def next_speakers(self) -> tuple[str, ...]:
        """Debaters whose speech of the current round may be generated now."""
        if self.phase != DEBATING:
            return ()
        spoken = {s.speaker for s in self.speeches_in_round(self.current_round)}
        if self.rules.turn_style == SIMULTANEOUS:
            return tuple(d for d in self.rules.speakers if d not in spoken)
        for speaker in self.rules.speaking_order:
            if speaker not in spoken:
                return (speaker,)
        return ()

    def visible_to(self, debater: str) -> tuple[Speech, ...]:
        """What ``debater`` may read when writing its next speech.

        In a simultaneous round the opponent's speech of that same round is
        hidden, even if it happened to be generated first.
        """
        if self.rules.turn_style == SEQUENTIAL:
            return self.transcript
        current = self.current_round
        return tuple(
            s for s in self.transcript if not (s.speaker in DEBATERS and s.speaker != debater and s.round == current)
        )

    def between_rounds(self) -> bool:
        in_progress = self.speeches_in_round(self.current_round)
        return self.phase == DEBATING and not in_progress and self.completed_rounds >= 1

    def flip_pending(self) -> bool:
        """The latest leaning changed side and no round has been spoken since.

        Undecided leanings (exactly 0.5) are skipped, so 0.7 -> 0.5 -> 0.3 is a flip.
        """
        decided = [(r, p) for r, p in self.leanings if p != 0.5]
        if not self.rules.extra_round_after_flip or len(decided) < 2 or self.leanings[-1][1] == 0.5:
            return False
        (_, before), (after_round, now) = decided[-2], decided[-1]
        flipped = (before - 0.5) * (now - 0.5) < 0
        return flipped and after_round == self.completed_rounds

    def can_end(self) -> bool:
        return self.phase == DEBATING and self.completed_rounds >= self.rules.earliest_end and not self.flip_pending()

    # ----- moves -------------------------------------------------------------
    def apply_speech(self, speaker: str, text: str) -> "DebateState":
        if speaker not in self.rules.speakers:
            raise IllegalMove(f"{speaker!r} does not speak in this trial")
        if self.phase != DEBATING:
            raise IllegalMove(f"debater {speaker} cannot speak: the debate is {self.phase.replace('_', ' ')}")
        if speaker not in self.next_speakers():
            raise IllegalMove(f"debater {speaker} cannot speak now; waiting for {', '.join(self.next_speakers())}")
        speech = Speech(speaker=speaker, round=self.current_round, text=text)
        return replace(self, transcript=self.transcript + (speech,))

    def apply_judge_question(self, text: str, addressed_to: tuple[str, ...] | None = None) -> "DebateState":
        addressed_to = self.rules.speakers if addressed_to is None else addressed_to
        if self.phase != DEBATING:
            raise IllegalMove(f"the judge cannot ask a question: the debate is {self.phase.replace('_', ' ')}")
        if not self.between_rounds():
            raise IllegalMove("the judge can ask a question only between rounds")
        if not text.strip():
            raise IllegalMove("the question is empty")
        if not addressed_to or any(d not in self.rules.speakers for d in addressed_to):
            names = " or ".join(self.rules.speakers)
            raise IllegalMove(
                f"a question must be addressed to {names}" + (" or both" if len(self.rules.speakers) > 1 else "")
            )
        speech = Speech(speaker=JUDGE, round=self.completed_rounds, text=text, addressed_to=tuple(addressed_to))
        return replace(self, transcript=self.transcript + (speech,))

    def apply_leaning(self, probability_a: float) -> "DebateState":
        """Record the judge's current leaning (probability that A is correct) between rounds."""
        if self.phase != DEBATING or not self.between_rounds():
            raise IllegalMove("the judge can record a leaning only between rounds")
        if not 0.0 <= probability_a <= 1.0:
            raise IllegalMove("the probability must be between 0 and 1")
        kept = tuple(entry for entry in self.leanings if entry[0] != self.completed_rounds)
        return replace(self, leanings=kept + ((self.completed_rounds, probability_a),))

    def apply_end(self) -> "DebateState":
        if self.phase != DEBATING:
            raise IllegalMove(f"the debate cannot be ended: it is {self.phase.replace('_', ' ')}")
        if self.completed_rounds < self.rules.earliest_end or self.speeches_in_round(self.current_round):
            raise IllegalMove(
                f"the debate can be ended after round {self.rules.earliest_end}; "
                f"{self.completed_rounds} complete so far"
            )
        if self.flip_pending():
            raise IllegalMove("your leaning changed side: one more round is needed before you can end")
        return replace(self, ended_by_judge=True)

    def apply_verdict(self, chosen: str, probability: float) -> "DebateState":
        if self.phase != AWAITING_VERDICT:
            if self.phase == CLOSED:
                raise IllegalMove("a verdict has already been given")
            raise IllegalMove("the debate is not finished yet")
        if chosen not in DEBATERS:
            raise IllegalMove("the verdict must choose answer A or B")
        if not 0.0 <= probability <= 1.0:
            raise IllegalMove("the probability must be between 0 and 1")
        return replace(self, verdict=Verdict(chosen=chosen, probability=probability))


def replay(
    rules: DebateRules,
    transcript: list[Speech] | tuple[Speech, ...],
    leanings: tuple[tuple[int, float], ...] = (),
    ended_by_judge: bool = False,
) -> DebateState:
    """Rebuild a state by applying a stored transcript move by move.

    Leanings are applied once the round they follow is complete; ``ended_by_judge``
    last. Raises IllegalMove if the stored record is not one the rules allow, so
    a corrupted trial is noticed rather than shown.
    """
    state = DebateState(rules=rules)
    pending = sorted(leanings)

    def apply_due_leanings(state):
        while pending and pending[0][0] == state.completed_rounds and state.between_rounds():
            state = state.apply_leaning(pending.pop(0)[1])
        return state

    for speech in transcript:
        state = apply_due_leanings(state)
        if speech.speaker == JUDGE:
            state = state.apply_judge_question(speech.text, speech.addressed_to)
        else:
            state = state.apply_speech(speech.speaker, speech.text)
    state = apply_due_leanings(state)
    if ended_by_judge:
        state = state.apply_end()
    return state


__all__ = [
    "DEBATERS",
    "JUDGE",
    "SIMULTANEOUS",
    "SEQUENTIAL",
    "DEBATING",
    "AWAITING_VERDICT",
    "CLOSED",
    "IllegalMove",
    "DebateRules",
    "Speech",
    "Verdict",
    "DebateState",
    "replay",
]
