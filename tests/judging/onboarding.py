"""Helpers for the onboarding tests (docs/onboarding.md): question sets for practice and attention checks, and
trials made judgeable without a model."""

from __future__ import annotations

from django.utils import timezone

from judging.importers import import_questions
from judging.models import Trial, Turn


def easy_set(name: str = "Attention checks", n: int = 10):
    """A question set of easy questions with known answers (two choices each)."""
    return import_questions(
        set_name=name,
        questions=[
            {
                "external_id": f"{name[:3].lower()}{i}",
                "text": f"Is {i + 2} more than {i + 1}? (from {name[:3]})",
                "choices": [f"Yes ({i})", f"No ({i})"],
                "correct_index": i % 2,
                "passage": f"{name} passage {i}.",
                "metadata": {},
            }
            for i in range(n)
        ],
    )


def make_ready(trial: Trial) -> Trial:
    """Write a pre-generated trial's turns (fixed text) so it can be judged, as a worker would."""
    for turn in trial.turns.all():
        Turn.objects.filter(pk=turn.pk).update(
            status=Turn.Status.DONE,
            text=f"Argument of debater {turn.speaker} in round {turn.round}.",
            finished_at=timezone.now(),
        )
    Trial.objects.filter(pk=trial.pk, status=Trial.Status.GENERATING).update(status=Trial.Status.READY)
    trial.refresh_from_db()
    return trial


def make_all_ready(experiment) -> None:
    for trial in experiment.trials.all():
        make_ready(trial)
