"""What a judge learns about a trial they judged: the correct answer, whether they were right, their score.

Shown only when the researcher allows it (docs/feedback.md): once the experiment is closed, at once after each
verdict if its feedback is ``immediate``, and always for practice trials. Attention checks are treated exactly
as study trials, so feedback never tells a judge which trials were checks. Every page that shows a judge the
truth asks here (the judged trial page, the history, practice feedback).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from . import scoring
from .models import Experiment, Feedback, Trial, Verdict


def revealed_q(prefix: str = "") -> Q:
    """``revealed`` as a query filter, for rows ``prefix`` away from a trial (e.g. "trial__" from a verdict)."""
    return (
        Q(**{f"{prefix}role": Trial.Role.PRACTICE})
        | Q(**{f"{prefix}experiment__status": Experiment.Status.CLOSED})
        | Q(**{f"{prefix}experiment__feedback": Feedback.IMMEDIATE})
    )


def revealed(trial: Trial) -> bool:
    """Whether the judge of ``trial`` may see its truth and their score once they have judged it."""
    experiment = trial.experiment
    return (
        trial.role == Trial.Role.PRACTICE
        or experiment.status == Experiment.Status.CLOSED
        or experiment.feedback == Feedback.IMMEDIATE
    )


@dataclass(frozen=True)
class Outcome:
    """A judged trial's result as its judge is shown it."""

    correct_side: str  # "A" or "B", as the answers were shown to this judge
    correct_answer: str
    chosen: str
    probability: float  # the judge's, for the answer they chose
    right: bool
    score: float | None  # under the experiment's rule, round penalty included (None: verdicts before scores)
    scale: str = ""  # how to read the score (scoring.scale_note)

    @property
    def score_shown(self) -> str:
        return "" if self.score is None else scoring.display(self.score)


def outcome(trial: Trial, verdict: Verdict | None = None) -> Outcome | None:
    """The truth and score of a judged trial, or None if the judge may not see them (yet) or it is not judged.
    ``verdict`` defaults to the trial's own (one more query unless it was loaded)."""
    if not revealed(trial):
        return None
    if verdict is None:
        verdict = Verdict.objects.filter(trial=trial).first()
        if verdict is None:
            return None
    return Outcome(
        correct_side=trial.honest_side,
        correct_answer=trial.answer_text(trial.honest_side),
        chosen=verdict.chosen,
        probability=verdict.probability,
        right=verdict.chosen == trial.honest_side,
        score=verdict.score,
        scale=scoring.scale_note(trial.experiment.scoring_rule, penalty=trial.experiment.round_penalty),
    )


# For a judged trial whose truth is not shown yet: when it will be (the judge's words).
NOT_YET = "The correct answer and your score are shown once the researchers close the experiment."
