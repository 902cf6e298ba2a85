"""manage.py analyse_experiments: the page's primary and exploratory figures on the command line."""

import io

import pytest
from django.core.management import CommandError, call_command

from judging.models import Trial, Verdict
from judging.services import experiment_launch


def judge_every_trial(experiment, correct_every=2):
    for k, trial in enumerate(experiment.trials.order_by("pk")):
        wrong = "B" if trial.honest_side == "A" else "A"
        Verdict.objects.create(
            trial=trial,
            judge=trial.judge,
            chosen=trial.honest_side if k % correct_every else wrong,
            probability=0.8,
            rationale="r",
            seconds_on_page=60,
        )
    experiment.trials.update(status=Trial.Status.JUDGED)


def analyse(*ids) -> str:
    out = io.StringIO()
    call_command("analyse_experiments", *map(str, ids), stdout=out)
    return out.getvalue()


def test_the_command_prints_primary_and_exploratory_results(make_model_config, make_experiment, judge, other_judge):
    experiment = make_experiment(
        make_model_config("m"),
        judges=[judge, other_judge],
        conditions=["debate", "consultancy"],
        num_questions=8,
        judgments_per_question=2,
        primary_comparisons=["above-chance:debate"],
    )
    experiment_launch(experiment=experiment)
    with pytest.raises(CommandError, match="no verdicts yet"):
        analyse(experiment.pk)
    judge_every_trial(experiment)
    text = analyse(experiment.pk)
    assert "16 judged trials" in text and "questions and judges" in text
    # Two judges: the declared test is shown but not decided, with the reason.
    assert "honest debaters win more than half: cannot be tested (only 2 judges" in text
    assert "debate − consultancy" in text and "consultancy: honest consultant" in text
    # Two judgments per question and two arms: each question once per arm, so no judge shares a unit.
    assert (
        "agreement between judges" in text
        and "debate                                   no overlapping judgments" in text
    )
    assert "nan" not in text.lower()


def test_the_command_refuses_unknown_experiments(db):
    with pytest.raises(CommandError, match="no experiment with id 999"):
        analyse(999)
