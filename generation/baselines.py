"""Model baselines: the model alone answering each question, and models judging transcripts exactly as a
human judge sees them. Both run where the model is loaded (a worker, or a command).

Each is scored in both answer orders, as laid out and swapped, and both probabilities are stored for
the layout's answer A; the verdict comes from their average (judging.baseline_verdicts), so a model's
preference for a label or a position cannot decide it.
"""

from __future__ import annotations

from functools import partial

from judging.models import Experiment, ModelAnswer, ModelConfig, ModelVerdict, Trial
from judging.protocols.prompts import build_model_alone_messages, build_model_judge_messages
from judging.protocols.registry import PROTOCOLS
from judging.selectors import judge_view_of_trial

from .backends import backend_for
from .requests import fit_to_window


def probabilities_of_answer_a(backend, messages: list[dict], swapped_messages: list[dict]) -> tuple[float, float]:
    """Answer A's probability in each order: the label A's as laid out, the label B's when swapped
    (answer A is shown second there)."""
    p_a, _ = backend.choice_probabilities(messages, ["A", "B"])
    _, p_a_swapped = backend.choice_probabilities(swapped_messages, ["A", "B"])
    return p_a, p_a_swapped


def baseline_trials(experiment: Experiment):
    """The study trials whose questions the model alone answers (sandwiching's), each question's first trial
    first (practice and attention checks are not analysed: docs/onboarding.md)."""
    protocols = [p.name for p in PROTOCOLS.values() if p.model_alone_baseline]
    return experiment.trials.study().filter(protocol__in=protocols).order_by("question_id", "id")


def model_alone_configs(experiment: Experiment) -> list[ModelConfig]:
    """The configurations that answer alone: every one that assists in a sandwiching trial of the experiment
    (the honest assistant's or the misleading one's), or the debater model where nobody assists (only the
    judge-alone arm)."""
    trials = baseline_trials(experiment)
    ids = set(trials.values_list("honest_config_id", flat=True)) | set(
        trials.values_list("adversary_config_id", flat=True)
    )
    ids.discard(None)
    return list(ModelConfig.objects.filter(pk__in=ids or {experiment.debater_model_id}).order_by("pk"))


def score_model_alone(experiment_id: int, config_id: int | None = None) -> int:
    """The model-alone baseline of one configuration (``config_id``; None: of every one of
    ``model_alone_configs``, in this process): for each sandwiching question of the experiment, the
    configuration's own probability for answer A versus B (the layout of the question's first trial, the
    same for every configuration), in both orders. Idempotent: questions the configuration already
    answered (in one order, before both orders were) are left as they are. Returns the answers created."""
    experiment = Experiment.objects.select_related("debater_model").get(pk=experiment_id)
    if config_id is None:
        return sum(_score_model_alone(experiment, config) for config in model_alone_configs(experiment))
    return _score_model_alone(experiment, ModelConfig.objects.get(pk=config_id))


def _score_model_alone(experiment: Experiment, config: ModelConfig) -> int:
    done = set(
        ModelAnswer.objects.filter(experiment=experiment, model_config=config).values_list("question_id", flat=True)
    )
    backend = None  # loaded only when a question is left to answer
    created = 0
    for trial in baseline_trials(experiment).select_related("question"):
        if trial.question_id in done:
            continue
        done.add(trial.question_id)
        backend = backend or backend_for(config)
        question, passage = trial.question.text, trial.question.passage
        answer_a, answer_b = trial.answer_text("A"), trial.answer_text("B")
        # The passage truncated as a debater's would be where it does not fit the model (docs/limits.md).
        orders = [
            fit_to_window(partial(_alone_messages, question, a, b), passage, backend, new_tokens=1)
            for a, b in ((answer_a, answer_b), (answer_b, answer_a))
        ]
        p_a, p_a_swapped = probabilities_of_answer_a(backend, orders[0][0], orders[1][0])
        _, new = ModelAnswer.objects.get_or_create(
            experiment=experiment,
            question=trial.question,
            model_config=config,
            defaults={
                "answer_a_index": trial.answer_a_index,
                "answer_b_index": trial.answer_b_index,
                "honest_side": trial.honest_side,
                "probability_a": p_a,
                "probability_a_swapped": p_a_swapped,
                "model_settings": config.settings_snapshot()
                | {"device": backend.device_name, "passage_chars_dropped": max(dropped for _, dropped in orders)},
            },
        )
        created += new
    return created


def _alone_messages(question: str, answer_a: str, answer_b: str, passage: str) -> list[dict]:
    return build_model_alone_messages(question=question, answer_a=answer_a, answer_b=answer_b, passage=passage)


def judge_with_model(experiment_id: int, judge_config) -> int:
    """A model judges every finished pre-generated study trial of the experiment, from exactly the
    judge's view (judging.selectors.judge_view_of_trial), in both orders: as laid out, then with the
    answers and the speakers' letters swapped. Idempotent (trials already judged, in one order before
    both orders were, are left as they are); returns verdicts created."""
    backend = backend_for(judge_config)
    done = set(
        ModelVerdict.objects.filter(trial__experiment_id=experiment_id, judge_model=judge_config).values_list(
            "trial_id", flat=True
        )
    )
    trials = (
        Trial.objects.study()
        .filter(experiment_id=experiment_id, live=False, status__in=[Trial.Status.READY, Trial.Status.JUDGED])
        .exclude(pk__in=done)
    )
    created = 0
    for trial in trials.select_related("experiment", "question"):
        messages = _model_judge_messages(judge_view_of_trial(trial))
        swapped_messages = _model_judge_messages(judge_view_of_trial(trial, answers_swapped=True))
        p_a, p_a_swapped = probabilities_of_answer_a(backend, messages, swapped_messages)
        _, new = ModelVerdict.objects.get_or_create(
            trial=trial,
            judge_model=judge_config,
            defaults={
                "probability_a": p_a,
                "probability_a_swapped": p_a_swapped,
                "prompt": messages[0]["content"],
                "prompt_swapped": swapped_messages[0]["content"],
                "model_settings": judge_config.settings_snapshot() | {"device": backend.device_name},
            },
        )
        created += new
    return created


def _model_judge_messages(view: dict) -> list[dict]:
    return build_model_judge_messages(
        question=view["question"],
        answer_a=view["answers"]["A"],
        answer_b=view["answers"]["B"],
        speeches=view["transcript"],
    )
