"""Celery tasks: thin wrappers that call models_runner.generation."""
from __future__ import annotations

from celery import shared_task

from judging.models import Trial

from . import generation


def enqueue_generation(experiment_id: int, countdown: float | None = None) -> None:
    generate_turns.apply_async(args=[experiment_id], countdown=countdown)


@shared_task
def generate_turns(experiment_id: int) -> int:
    """Generate one batch of ready turns; queue a follow-up while more are ready.

    Short tasks (one batch each) keep every task far below the broker's
    visibility timeout, and let several workers share one experiment.
    """
    written = generation.generate_batch(experiment_id)
    if generation.ready_turn_ids(experiment_id, limit=1):
        # A batch that wrote nothing (a failing model) retries after a pause
        # instead of spinning.
        enqueue_generation(experiment_id, countdown=None if written else 5)
    return written


@shared_task
def reconcile_generation() -> int:
    """Recover from lost messages or dead workers: requeue stale claims, re-send work.

    Safe to run at any time (e.g. from celery beat, or after a broker restart).
    """
    generation.requeue_stale_turns()
    experiment_ids = set(
        Trial.objects.filter(status=Trial.Status.GENERATING, turns__status="pending").values_list(
            "experiment_id", flat=True
        )
    )
    for experiment_id in experiment_ids:
        enqueue_generation(experiment_id)
    return len(experiment_ids)
