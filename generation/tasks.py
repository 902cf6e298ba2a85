"""Celery tasks: thin wrappers that call the generation services."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.db.models import Q

from judging.models import Experiment, ModelConfig, Turn
from judging.services import claims_release_dead_worker, stale_claims_release

from .baselines import model_alone_configs, score_model_alone
from .selection import ready_turn_ids, trials_with_pending_turns
from .worker import generate_ready_turns

log = logging.getLogger(__name__)

# Set when this worker begins a warm shutdown: its generation session takes no new turns.
shutting_down = threading.Event()


def experiment_queues(experiment_id: int) -> list[str]:
    """The queues of every configuration that speaks in the experiment (its debater model, its line-ups)."""
    speakers = Q(experiments__pk=experiment_id) | Q(lineup_memberships__experiment_id=experiment_id)
    return sorted(set(ModelConfig.objects.filter(speakers).values_list("queue", flat=True))) or ["generation"]


def enqueue_generation(experiment_id: int, countdown: float | None = None, queue: str | None = None) -> bool:
    """Send generation work for an experiment to ``queue``, or to the queue of every model that speaks in
    it; False if the broker is unreachable.

    Nothing is lost when sending fails: the pending turns are in the database,
    and ``manage.py reconcile_generation`` (or the admin's re-queue action)
    sends the work again once the broker is back.
    """
    sent = True
    for name in [queue] if queue else experiment_queues(experiment_id):
        try:
            generate_turns.apply_async(args=[experiment_id, name], countdown=countdown, queue=name)
        except Exception:
            log.exception("could not queue generation for experiment %s; run reconcile_generation later", experiment_id)
            sent = False
    return sent


@shared_task(bind=True)
def generate_turns(self, experiment_id: int, queue: str = "generation") -> int:
    """Generate the ready turns of every experiment whose model is served on ``queue``, continuously,
    for up to GENERATION_SESSION_SECONDS; then hand over to a fresh task if more are ready.

    ``experiment_id`` is the experiment that asked; any experiment's ready turns on the queue are
    served (live ones first), so one worker keeps one running batch. Bounded sessions keep every
    task far below the broker's visibility timeout.
    """
    asked_for_help = []

    def ask_for_help():  # more ready than this worker has room for: one more message lets an idle worker help
        asked_for_help.append(enqueue_generation(experiment_id, queue=queue))

    written = generate_ready_turns(
        queue=queue, claimed_by=self.request.hostname or "", on_backlog=ask_for_help, should_stop=shutting_down.is_set
    )
    # That message also serves as this task's successor (this worker takes it if no other did).
    if not any(asked_for_help) and ready_turn_ids(limit=1, queue=queue):
        # A session that wrote nothing (a failing model) retries after a pause instead of spinning.
        enqueue_generation(experiment_id, countdown=None if written else 5, queue=queue)
    return written


@shared_task
def reconcile_generation(stale_seconds: int | None = None) -> int:
    """Recover from lost messages or dead workers: requeue stale claims, re-send work.

    Safe to run at any time (celery beat runs it; so can a person after a
    broker restart). Returns the number of experiments whose work was re-sent.
    """
    stale_claims_release(stale_seconds)
    experiment_ids = set(trials_with_pending_turns().values_list("experiment_id", flat=True))
    for experiment_id in experiment_ids:
        enqueue_generation(experiment_id)
    return len(experiment_ids)


def enqueue_model_alone(experiment_id: int) -> bool:
    """Send the model-alone baseline of each configuration that answers alone (``model_alone_configs``) to
    that configuration's queue: only a worker started for a model loads it. Sending again is harmless
    (scoring is idempotent); False if the broker is unreachable for any of them."""
    sent = True
    for config in model_alone_configs(Experiment.objects.get(pk=experiment_id)):
        try:
            model_alone_baseline.apply_async(args=[experiment_id, config.pk], queue=config.queue)
        except Exception:
            log.exception("could not queue the model-alone baseline of %s for experiment %s", config, experiment_id)
            sent = False
    return sent


@shared_task
def model_alone_baseline(experiment_id: int, config_id: int | None = None) -> int:
    """Score one configuration alone on every question of a sandwiching experiment.

    A message without a configuration (the previous release sent one per experiment, to its debater
    model's queue) is handed on: one message per configuration, each to its own queue."""
    if config_id is None:
        enqueue_model_alone(experiment_id)
        return 0
    return score_model_alone(experiment_id, config_id)


@worker_ready.connect
def release_claims_of_previous_process(sender=None, **kwargs):
    """A worker starting under a node name that holds claims means its previous process died
    mid-batch: release those turns at once (no waiting for the stale-claim timeout) and re-send."""
    name = getattr(sender, "hostname", "")
    if not name:
        return
    released = claims_release_dead_worker(Turn.objects.filter(claimed_by=name))
    if released:
        log.warning("released %d turn(s) left claimed by a previous %s", released, name)
        reconcile_generation()


@worker_shutting_down.connect
def stop_taking_turns(**kwargs):
    """A warm shutdown waits for the running task: let its session finish the turns it is writing
    without taking new ones, so the worker stops within one turn's time.

    The signal fires in the worker's main process, where the task runs with ``--pool=solo`` (the
    documented way to run a model worker). Under a prefork pool the child would not see it and a
    session would run to its time limit (DEBATE_GENERATION_SESSION_SECONDS) before stopping."""
    shutting_down.set()


# Release 0.1 named these tasks after the models_runner app. Messages it queued (or that an old worker's
# web server sends during a rolling upgrade) would be discarded as unregistered; serve them under the
# old names too, for one release.
RELEASE_0_1_PREFIX = "models_runner.tasks."


@shared_task(bind=True, name=RELEASE_0_1_PREFIX + "generate_turns")
def release_0_1_generate_turns(self, experiment_id: int, queue: str = "generation") -> int:
    return generate_turns.run.__func__(self, experiment_id, queue)


release_0_1_model_alone_baseline = shared_task(name=RELEASE_0_1_PREFIX + "model_alone_baseline")(
    model_alone_baseline.run
)
release_0_1_reconcile_generation = shared_task(name=RELEASE_0_1_PREFIX + "reconcile_generation")(
    reconcile_generation.run
)
