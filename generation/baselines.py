"""Model baselines: the model alone answering each question, and models judging transcripts exactly as a
human judge sees them. Both run where the model is loaded (a worker, or a command)."""

from __future__ import annotations

from judging.models import Experiment, ModelAnswer, ModelVerdict, Trial
from judging.protocols.prompts import build_model_alone_messages, build_model_judge_messages
from judging.protocols.registry import PROTOCOLS
from judging.selectors import judge_view_of_trial

from .backends import backend_for


def score_model_alone(experiment_id: int) -> int:
    """The model-alone baseline: for each question of the experiment, the model's own probability
    for answer A versus B (same layout as the question's first trial). Idempotent."""
    experiment = Experiment.objects.select_related("debater_model").get(pk=experiment_id)
    config = experiment.debater_model
    backend = backend_for(config)
    done = set(ModelAnswer.objects.filter(experiment=experiment).values_list("question_id", flat=True))
    created = 0
    for trial in (
        experiment.trials.filter(protocol__in=[p.name for p in PROTOCOLS.values() if p.model_alone_baseline])
        .select_related("question")
        .order_by("question_id", "id")
    ):
        if trial.question_id in done:
            continue
        done.add(trial.question_id)
        messages = build_model_alone_messages(
            question=trial.question.text,
            answer_a=trial.answer_text("A"),
            answer_b=trial.answer_text("B"),
            passage=trial.question.passage,
        )
        p_a, _ = backend.choice_probabilities(messages, ["A", "B"])
        _, new = ModelAnswer.objects.get_or_create(
            experiment=experiment,
            question=trial.question,
            defaults={
                "answer_a_index": trial.answer_a_index,
                "answer_b_index": trial.answer_b_index,
                "honest_side": trial.honest_side,
                "probability_a": p_a,
                "model_settings": config.settings_snapshot() | {"device": backend.device_name},
            },
        )
        created += new
    return created


def judge_with_model(experiment_id: int, judge_config) -> int:
    """A model judges every finished pre-generated trial of the experiment, from exactly the
    judge's view (judging.selectors.judge_view_of_trial). Idempotent; returns verdicts created."""
    backend = backend_for(judge_config)
    done = set(
        ModelVerdict.objects.filter(trial__experiment_id=experiment_id, judge_model=judge_config).values_list(
            "trial_id", flat=True
        )
    )
    trials = Trial.objects.filter(
        experiment_id=experiment_id, live=False, status__in=[Trial.Status.READY, Trial.Status.JUDGED]
    ).exclude(pk__in=done)
    created = 0
    for trial in trials.select_related("experiment", "question"):
        view = judge_view_of_trial(trial)
        messages = build_model_judge_messages(
            question=view["question"],
            answer_a=view["answers"]["A"],
            answer_b=view["answers"]["B"],
            speeches=view["transcript"],
        )
        p_a, _ = backend.choice_probabilities(messages, ["A", "B"])
        _, new = ModelVerdict.objects.get_or_create(
            trial=trial,
            judge_model=judge_config,
            defaults={
                "probability_a": p_a,
                "prompt": messages[0]["content"],
                "model_settings": judge_config.settings_snapshot() | {"device": backend.device_name},
            },
        )
        created += new
    return created
