"""The database refuses what the services refuse, whoever writes (a script, a shell, a bug)."""

import pytest
from django.db import IntegrityError, transaction

from judging.models import Experiment, ModelConfig, Trial, Turn, Verdict


def refused(write) -> bool:
    try:
        with transaction.atomic():
            write()
    except IntegrityError:
        return True
    return False


@pytest.fixture
def trial(ready_trial):
    return ready_trial


def test_a_verdict_below_even_odds_for_its_own_answer_is_refused(trial, judge):
    def verdict(p):
        return lambda: Verdict.objects.create(
            trial=trial, judge=judge, chosen="A", probability=p, rationale="r", seconds_on_page=1.0
        )

    assert refused(verdict(0.3))
    assert refused(verdict(1.2))
    assert not refused(verdict(0.5))


@pytest.mark.parametrize(
    "field, value",
    [
        ("condition", "sneaky"),
        ("protocol", "duel"),
        ("status", "lost"),
        ("honest_side", "C"),
        ("consultant_side", "X"),
        ("assistant_side", "X"),
        ("answer_b_index", None),
    ],
)
def test_unknown_trial_values_are_refused(trial, field, value):
    value = trial.answer_a_index if value is None else value  # the same answer twice
    assert refused(lambda: Trial.objects.filter(pk=trial.pk).update(**{field: value}))


def test_a_side_field_of_another_protocol_is_refused(trial):
    # The judge is shown consultant_side: an assistant's side stored there would reveal its condition.
    assert trial.protocol == "debate"
    assert refused(lambda: Trial.objects.filter(pk=trial.pk).update(consultant_side="A"))
    assert refused(lambda: Trial.objects.filter(pk=trial.pk).update(assistant_side="A"))


def test_a_running_turn_needs_a_claim_and_a_judges_question_is_never_generated(trial):
    turn = trial.turns.first()
    assert refused(lambda: Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.RUNNING, claim_token=""))
    assert refused(lambda: Turn.objects.filter(pk=turn.pk).update(speaker="judge"))  # it has a model
    assert refused(lambda: Turn.objects.filter(pk=turn.pk).update(speaker="C"))
    assert not refused(lambda: Turn.objects.filter(pk=turn.pk).claim())


def test_experiment_and_model_bounds_are_kept_by_the_database(trial):
    experiment, config = trial.experiment, trial.experiment.debater_model
    assert refused(lambda: Experiment.objects.filter(pk=experiment.pk).update(rounds=0))
    assert refused(lambda: Experiment.objects.filter(pk=experiment.pk).update(min_rounds=experiment.rounds + 1))
    assert refused(lambda: ModelConfig.objects.filter(pk=config.pk).update(top_p=0))
    assert refused(lambda: ModelConfig.objects.filter(pk=config.pk).update(best_of_n=3, temperature=0))
    assert refused(lambda: ModelConfig.objects.filter(pk=config.pk).update(backend="openai", api_base=""))
    assert not refused(lambda: ModelConfig.objects.filter(pk=config.pk).update(best_of_n=3, temperature=0.7))
