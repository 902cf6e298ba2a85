"""Celery tasks, run in this process (``apply``): the names release 0.1 queued messages under still work."""

from debate_platform.celery import app
from judging.models import Turn
from judging.services import experiment_launch


def test_messages_queued_under_release_0_1_task_names_are_still_served(
    make_model_config, make_experiment, tiny_model_dir
):
    app.loader.import_default_modules()
    for name in ("generate_turns", "model_alone_baseline", "reconcile_generation"):
        assert f"models_runner.tasks.{name}" in app.tasks and f"generation.tasks.{name}" in app.tasks
    experiment = make_experiment(make_model_config(tiny_model_dir, max_new_tokens=8), num_questions=1, rounds=1)
    experiment_launch(experiment=experiment)
    written = app.tasks["models_runner.tasks.generate_turns"].apply(args=[experiment.pk, "generation"]).get()
    assert written == 2
    assert not Turn.objects.filter(trial__experiment=experiment).exclude(status=Turn.Status.DONE).exists()
