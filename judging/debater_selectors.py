"""Reads for human debaters: the speeches due from them, and what they may see while writing one.

A debater sees what a model debater's prompt is built from (generation/requests.py): the question,
both answers, which one they defend, the passage, and the transcript as ``DebateState.visible_to``
gives it (in a simultaneous round, never the opponent's speech of that round; the judge's
questions). Nothing here is ever shown to a judge.
"""

from __future__ import annotations

from django.db.models import Q

from . import quotes
from .models import DEBATERS_GROUP, Experiment, Trial, Turn
from .protocols import debate
from .services import debate_state, speech_text, turns_due

# Trials in which a person may still have speeches to write.
OPEN_TRIALS = (Trial.Status.GENERATING, Trial.Status.READY)


def is_debater(user) -> bool:
    """The debater role: membership of the 'debaters' group (made by migration 0012)."""
    return user.is_authenticated and user.groups.filter(name=DEBATERS_GROUP).exists()


def debater_speeches(person) -> dict:
    """The speeches due from ``person`` now (their side speaks next), live debates first (a judge is
    waiting), and how many of their debates are waiting for someone else."""
    trials = (
        Trial.objects.filter(Q(honest_person=person) | Q(adversary_person=person))
        .filter(status__in=OPEN_TRIALS, experiment__status=Experiment.Status.LAUNCHED)
        .select_related("experiment", "question")
        .prefetch_related("turns")
    )
    due, waiting = [], 0
    for trial in sorted(trials, key=lambda t: (not t.live, t.pk)):
        mine = [t for t in turns_due(trial) if t.author_id == person.pk]
        for turn in mine:
            due.append(
                {
                    "turn_id": turn.pk,
                    "question": trial.question.text,
                    "round": turn.round,
                    "rounds": trial.experiment.rounds,
                    "live": trial.live,
                }
            )
        if not mine:
            waiting += 1
    return {"due": due, "waiting": waiting}


def _visible_transcript(trial: Trial, me: str) -> tuple[list[dict], set[int]]:
    """The transcript ``me`` may see, each debater speech split into text and checked quotes (verified,
    unverified, or over budget: the judge sees the last two alike, ``quotes.shown``), and the passage positions
    quoted so far in it (judging.quotes)."""
    protocol = trial.protocol_spec
    passage = trial.question.passage
    covered: set[int] = set()
    entries = []
    for speech in debate_state(trial).visible_to(me):
        if speech.speaker == debate.JUDGE:
            asked = tuple(speech.addressed_to)
            label = "The judge asked " + ("you" if asked == (me,) else protocol.addressee(asked))
            segments = [quotes.Segment(quotes.TEXT, speech.text)]
        else:
            label = protocol.speaker_label(speech.speaker) + (" (you)" if speech.speaker == me else "")
            segments = quotes.check_speech(
                speech.text, passage, budget=trial.speech_quote_limit, already_quoted=covered
            )
        entries.append(
            {
                "speaker": speech.speaker,
                "round": speech.round,
                "label": label,
                "mine": speech.speaker == me,
                "segments": [{"kind": s.kind, "text": s.text} for s in segments],
            }
        )
    return entries, covered


def debater_view_of_turn(turn: Turn) -> dict:
    """The writing page of one of a person's turns: what they may see, their budgets, and whether it is due."""
    trial = turn.trial
    me = turn.speaker
    other = "B" if me == "A" else "A"
    transcript, _ = _visible_transcript(trial, me)
    due = trial.status in OPEN_TRIALS and turn.pk in {t.pk for t in turns_due(trial)}
    return {
        "turn_id": turn.pk,
        "protocol": trial.protocol_spec.label,
        "two_speakers": trial.protocol_spec.two_speakers,
        "question": trial.question.text,
        "answers": {"A": trial.answer_text("A"), "B": trial.answer_text("B")},
        "side": me,
        "other": other,
        "me_label": trial.protocol_spec.speaker_label(me),
        "my_answer": trial.answer_text(me),
        "passage": trial.question.passage,
        "round": turn.round,
        "rounds": trial.experiment.rounds,
        "simultaneous": trial.simultaneous,
        "char_limit": trial.speech_char_limit,
        "quote_limit": trial.speech_quote_limit,
        "transcript": transcript,
        "done": turn.status == Turn.Status.DONE,
        "text": turn.text,
        "due": due,
        "ended": trial.status not in OPEN_TRIALS,
    }


def speech_check(turn: Turn, text: str) -> dict:
    """A draft checked as the judge will weigh it: its length against the limit, and each quote verified,
    unverified or over the budget (the judge sees the last two alike), counting only new quoted material
    (what earlier speeches the debater can see have quoted is free; an opponent's hidden same-round speech can
    only make it cheaper)."""
    trial = turn.trial
    text = speech_text(text)
    _, covered = _visible_transcript(trial, turn.speaker)
    before = set(covered)
    budget = trial.speech_quote_limit
    segments = quotes.check_speech(text, trial.question.passage, budget=budget, already_quoted=covered)
    checked = [{"kind": s.kind, "text": s.text} for s in segments if s.kind != quotes.TEXT]
    return {
        "chars": len(text),
        "char_limit": trial.speech_char_limit,
        "over": len(text) > trial.speech_char_limit,
        "quotes": checked,
        "quote_used": len(covered - before),
        "quote_limit": budget,
        "unverified": sum(q["kind"] != quotes.VERIFIED for q in checked),
    }
