"""manage.py analyse_experiments: the page's primary and exploratory figures on the command line."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

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


def test_a_primary_test_is_decided_short_of_the_planned_size_once_no_more_verdicts_can_come(
    make_model_config, make_experiment, judge, other_judge, django_user_model
):
    """A skipped trial is never judged: without this the declared test would wait for its verdict for good."""
    judges = [judge, other_judge] + [
        django_user_model.objects.create_user(username=f"extra{k}", password="judge-pass-789") for k in range(2)
    ]
    experiment = make_experiment(
        make_model_config("m"),
        judges=judges,
        conditions=["debate"],
        num_questions=12,
        judgments_per_question=2,
        primary_comparisons=["above-chance:debate"],
    )
    assert experiment.verdict_collection_over() == ""  # a draft: nothing is over before it starts
    experiment_launch(experiment=experiment)
    experiment.refresh_from_db()
    last = experiment.trials.order_by("pk").last()
    judge_every_trial(experiment, correct_every=5)
    Verdict.objects.filter(trial=last).delete()
    Trial.objects.filter(pk=last.pk).update(status=Trial.Status.READY)
    assert experiment.verdict_collection_over() == ""
    assert ": not enough data (23 of 24 planned verdicts)" in analyse(experiment.pk)

    Trial.objects.filter(pk=last.pk).update(status=Trial.Status.SKIPPED, skipped_at=timezone.now(), skip_reason="r")
    ended = "every study trial has ended (judged, skipped, withdrawn, or failed and replaced)"
    assert experiment.verdict_collection_over() == ended
    # Decided (supported or not: the p-value is what it is) on the verdicts there are, the shortfall given.
    assert f"supported (on 23 of 24 planned verdicts: {ended})" in analyse(experiment.pk)

    # A failed trial may still be replaced and judged; closing the experiment ends collection whatever is left.
    Trial.objects.filter(pk=last.pk).update(status=Trial.Status.FAILED, skipped_at=None, skip_reason="")
    assert ": not enough data (23 of 24 planned verdicts)" in analyse(experiment.pk)
    experiment.status = experiment.Status.CLOSED
    experiment.save(update_fields=["status"])
    # Closing early decides too, and says how many trials the close left unjudged.
    closed_early = "supported (on 23 of 24 planned verdicts: the experiment was closed with 1 study trial(s) unjudged)"
    assert closed_early in analyse(experiment.pk)
