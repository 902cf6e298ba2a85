"""The achieved design balance, computed from an experiment's trials and shown on its admin page."""

import pytest

from judging.assignment import QuestionInfo, plan_trials
from judging.balance import balance_report
from judging.protocols.registry import ARM_OF_CONDITION
from judging.services import experiment_launch


def as_trials(plans):
    return [
        {
            "judge": p.judge_id,
            "question": p.question_id,
            "arm": ARM_OF_CONDITION[p.condition],
            "honest_side": p.honest_side,
            "first_speaker": p.first_speaker,
            "speaker_side": p.speaker_side,
            "pairing": (p.honest_config, p.adversary_config),
        }
        for p in plans
    ]


@pytest.mark.unit
def test_the_planner_balances_arms_and_sides_per_judge_and_the_report_says_so():
    arms = ["debate", "consultancy", "naive"]
    plans = plan_trials(
        [QuestionInfo(q, 2, 0) for q in range(40)],
        [1, 2, 3, 4, 5, 6],
        num_questions=40,
        judgments_per_question=3,
        seed=5,
        arms=arms,
    )
    lines = {line.what: line for line in balance_report(as_trials(plans), arms)}
    assert lines["arms per judge"].balanced and lines["honest side per judge and arm"].balanced
    # Per question the planner does not balance arms: the report shows how many questions saw all three.
    every = lines["questions seen in every arm"]
    assert "of 40" in every.achieved and every.balanced == every.achieved.startswith("40 of 40")


@pytest.mark.unit
def test_an_unbalanced_design_is_reported_as_such():
    trials = [
        {"judge": 1, "question": q, "arm": "debate", "honest_side": "A", "first_speaker": "A", "speaker_side": ""}
        for q in range(6)
    ] + [{"judge": 1, "question": 9, "arm": "naive", "honest_side": "B", "first_speaker": "A", "speaker_side": ""}]
    lines = {line.what: line for line in balance_report(trials, ["debate", "naive"])}
    assert not lines["arms per judge"].balanced and "at most 5" in lines["arms per judge"].achieved
    assert not lines["honest side per judge and arm"].balanced
    assert "impossible with 1 judgment(s) per question and 2 arms" in lines["questions seen in every arm"].achieved
    assert balance_report([], ["debate"]) == []


def test_the_experiment_page_shows_the_achieved_balance(admin_client, make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), conditions=["debate", "consultancy"], num_questions=8)
    experiment_launch(experiment=experiment)
    page = admin_client.get(f"/admin/judging/experiment/{experiment.pk}/change/").content.decode()
    assert "Design balance (achieved)" in page and "arms per judge" in page
    assert "speaker&#x27;s side per judge" in page or "speaker's side per judge" in page


@pytest.mark.unit
def test_pairings_are_reported_only_where_an_arm_has_several():
    from judging.lineups import Member, design_cells

    cells = design_cells(["debate"], {"debate": [Member(1), Member(2), Member(3)]}, "cross-play", 9)
    plans = plan_trials(
        [QuestionInfo(q, 2, 0) for q in range(60)],
        [1, 2, 3, 4, 5, 6],
        num_questions=60,
        judgments_per_question=3,
        seed=2,
        arms=["debate"],
        cells=cells,
    )
    lines = {line.what: line for line in balance_report(as_trials(plans), ["debate"])}
    assert lines["pairings per judge"].balanced and lines["honest side per pairing"].balanced
    # One pairing that always has the honest side at A is reported.
    stuck = [t | {"honest_side": "A"} if t["pairing"] == (1, 2) else t for t in as_trials(plans)]
    assert not {line.what: line for line in balance_report(stuck, ["debate"])}["honest side per pairing"].balanced
    single = plan_trials(
        [QuestionInfo(q, 2, 0) for q in range(8)], [1, 2], num_questions=8, judgments_per_question=1, seed=2
    )
    assert "pairings per judge" not in {line.what for line in balance_report(as_trials(single), ["debate"])}


def test_the_experiment_page_shows_the_pairings_balance(admin_client, make_model_config, make_experiment):
    from judging.models import LineupMember

    experiment = make_experiment(make_model_config("m"), num_questions=8, pairing="round-robin")
    for name in ("one", "two"):
        LineupMember.objects.create(experiment=experiment, arm="debate", model_config=make_model_config(name))
    experiment_launch(experiment=experiment)
    page = admin_client.get(f"/admin/judging/experiment/{experiment.pk}/change/").content.decode()
    assert "pairings per judge" in page and "honest side per pairing" in page
