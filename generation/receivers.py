"""The judging domain announces work (judging.signals); this sends it to the workers."""

from __future__ import annotations

from django.dispatch import receiver

from judging.signals import model_alone_requested, turns_pending

from .tasks import enqueue_generation, enqueue_model_alone


@receiver(turns_pending, dispatch_uid="generation.turns_pending")
def send_generation(sender, experiment_id: int, **kwargs) -> bool:
    return enqueue_generation(experiment_id)


@receiver(model_alone_requested, dispatch_uid="generation.model_alone_requested")
def send_model_alone(sender, experiment_id: int, **kwargs) -> bool:
    return enqueue_model_alone(experiment_id)
