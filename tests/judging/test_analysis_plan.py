"""The analysis plan: declared on the experiment, validated against its arms, frozen at launch, exported."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from judging import analysis_plan, exports
from judging.models import Experiment
from judging.services import experiment_launch
from tests.judging.admin_form import experiment_form


def test_the_comparisons_offered_follow_the_arms():
    keys = [c.key for c in analysis_plan.available_comparisons(["naive", "assisted-honest", "assisted-misleading"])]
    assert keys[:2] == ["sandwich-helpful", "sandwich-robust"]
    assert "above-chance:naive" in keys and "difference:assisted-honest:naive" in keys
    debate_only = [c.key for c in analysis_plan.available_comparisons(["debate"])]
    assert debate_only == ["above-chance:debate"]
    assert "honest debaters win more than half" in analysis_plan.comparison("above-chance:debate").label
    for bad in ("above-chance:nonsense", "difference:debate:debate", "sandwich-helpful:naive", "whatever"):
        with pytest.raises(ValueError):
            analysis_plan.comparison(bad)


def test_a_plan_that_cannot_be_analysed_is_refused_with_reasons(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), conditions=["debate"])
    experiment.primary_comparisons = ["sandwich-helpful"]
    experiment.alpha = 0.5
    experiment.non_inferiority_margin = -0.1
    experiment.planned_judgments = 999
    with pytest.raises(ValidationError) as raised:
        experiment.full_clean()
    errors = raised.value.message_dict
    assert "not available with arms debate" in errors["primary_comparisons"][0]
    assert "between 0 and 0.2" in errors["alpha"][0]
    assert "between 0 and 0.5" in errors["non_inferiority_margin"][0]
    assert "between 1 and the experiment's 4 trials" in errors["planned_judgments"][0]


def test_the_database_refuses_an_alpha_or_margin_out_of_range(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"))
    for field, value in (("alpha", 0.0), ("non_inferiority_margin", 0.9)):
        with pytest.raises(IntegrityError), transaction.atomic():
            Experiment.objects.filter(pk=experiment.pk).update(**{field: value})


def test_the_plan_is_frozen_at_launch_and_exported(make_model_config, make_experiment):
    experiment = make_experiment(
        make_model_config("m"),
        conditions=["debate", "consultancy"],
        primary_comparisons=["above-chance:debate", "difference:debate:consultancy"],
        alpha=0.01,
        planned_judgments=3,
    )
    experiment.full_clean()
    experiment.alpha = 0.02  # still a draft: the plan may change
    experiment.save()
    experiment_launch(experiment=experiment)
    experiment.refresh_from_db()

    experiment.alpha = 0.05
    with pytest.raises(ValidationError) as raised:
        experiment.save()
    assert "frozen when the experiment was launched" in raised.value.message_dict["alpha"][0]
    experiment.alpha = 0.02
    experiment.primary_comparisons = ["above-chance:debate"]
    with pytest.raises(ValidationError):
        experiment.full_clean()
    experiment.refresh_from_db()
    experiment.name = "Renamed after launch"  # other fields are not the plan
    experiment.save()

    (row,) = exports.experiment_rows([experiment.pk])
    assert row["primary_comparisons"] == ["above-chance:debate", "difference:debate:consultancy"]
    assert (row["alpha"], row["non_inferiority_margin"], row["planned_judgments"]) == (0.02, 0.05, 3)
    assert row["arms"] == ["debate", "consultancy"] and row["judges"] == 1 and row["launched_at"]


def test_blank_plan_numbers_take_their_defaults_on_the_admin_form(admin_client, question_set, make_model_config):
    config = make_model_config("m")
    response = admin_client.post(
        "/admin/judging/experiment/add/",
        experiment_form(
            question_set,
            config,
            name="Planned",
            conditions=["naive", "assisted-honest"],
            primary_comparisons=["sandwich-helpful"],
            mode="live",
            char_limit=300,
            seed=7,
            alpha="",
            non_inferiority_margin="",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    experiment = Experiment.objects.get(name="Planned")
    assert experiment.primary_comparisons == ["sandwich-helpful"]
    assert (experiment.alpha, experiment.non_inferiority_margin) == (0.05, 0.05)
