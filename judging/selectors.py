"""Reads for the judging domain. Judge-facing reads return only what a judge may see."""
from __future__ import annotations

from django.db.models import Count, Q

from .models import Experiment, Trial, Turn


def judge_queue(judge):
    """Trials assigned to ``judge`` that are ready and not yet judged, in queue order."""
    return (
        Trial.objects.filter(judge=judge, status=Trial.Status.READY, experiment__status=Experiment.Status.LAUNCHED)
        .select_related("question", "experiment")
        .order_by("experiment__launched_at", "experiment_id", "queue_position")
    )


def judge_progress(judge) -> dict:
    counts = Trial.objects.filter(judge=judge).aggregate(
        total=Count("id"),
        judged=Count("id", filter=Q(status=Trial.Status.JUDGED)),
        ready=Count("id", filter=Q(status=Trial.Status.READY)),
        preparing=Count("id", filter=Q(status=Trial.Status.GENERATING)),
    )
    return counts


def judge_view_of_trial(trial: Trial) -> dict:
    """Everything the judge page shows, and nothing more.

    Built field by field on purpose: the passage, the correct answer, the
    honest side, model names and prompts never enter this dict, so no template
    or JSON built from it can leak them.
    """
    turns = trial.turns.filter(status=Turn.Status.DONE).order_by("index")
    return {
        "id": trial.pk,
        "question": trial.question.text,
        "answers": {"A": trial.answer_text("A"), "B": trial.answer_text("B")},
        "rounds": trial.experiment.rounds,
        "char_limit": trial.experiment.char_limit,
        "transcript": [
            {
                "speaker": t.speaker,
                "label": "Judge" if t.speaker == "judge" else f"Debater {t.speaker}",
                "round": t.round,
                "text": t.text,
            }
            for t in turns
        ],
        "judged": trial.status == Trial.Status.JUDGED,
    }


def experiment_progress(experiment: Experiment) -> dict:
    return Turn.objects.filter(trial__experiment=experiment).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=Turn.Status.DONE)),
        failed=Count("id", filter=Q(status=Turn.Status.FAILED)),
    )
