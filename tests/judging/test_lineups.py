"""Debater line-ups: pairing designs, their balance in the plan, what each trial and export records,
and judges kept from questions they met in other experiments."""

import collections

import pytest

from judging import exports
from judging.assignment import AssignmentError, QuestionInfo, plan_trials
from judging.lineups import Cell, LineupError, Member, arm_cells, design_cells
from judging.models import LineupMember, Trial, Turn
from judging.services import LaunchError, experiment_launch
from tests.judging.admin_form import experiment_form

QUESTIONS = [QuestionInfo(id=i, n_choices=3, correct_index=i % 3) for i in range(1, 201)]


def pairs(cells):
    return [(c.honest, c.adversary) for c in cells]


@pytest.mark.parametrize(
    "members, pairing, expected",
    [
        ([Member(1), Member(2)], "self-play", [(1, 1), (2, 2)]),
        ([Member(1), Member(2)], "round-robin", [(1, 1), (1, 2), (2, 1), (2, 2)]),
        ([Member(1), Member(2), Member(3)], "cross-play", [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]),
        # An honest-vs-adversary matrix: roles restrict who may take which side.
        ([Member(1, "honest"), Member(2, "adversary"), Member(3, "adversary")], "round-robin", [(1, 2), (1, 3)]),
        ([Member(1), Member(2, "adversary")], "cross-play", [(1, 2)]),
        ([], "self-play", [(9, 9)]),  # no line-up: the experiment's debater model argues both sides
    ],
)
def test_pairing_designs_of_a_debate_arm(members, pairing, expected):
    assert pairs(arm_cells("debate", members, pairing, default_config=9)) == expected


def test_single_speaker_arms_have_a_cell_per_member_and_the_judge_alone_none():
    assert pairs(arm_cells("assisted-misleading", [Member(4), Member(5)], "cross-play", 9)) == [(4, 4), (5, 5)]
    assert pairs(arm_cells("consultancy", [], "self-play", 9)) == [(9, 9)]
    assert arm_cells("naive", [], "round-robin", 9) == [Cell("naive", None, None)]


@pytest.mark.parametrize(
    "arm, members, pairing, message",
    [
        ("debate", [Member(1)], "cross-play", "gives no pairing"),
        ("debate", [Member(1, "honest")], "self-play", "self-play"),
        ("debate", [Member(1), Member(1)], "round-robin", "twice"),
        ("debate", [Member(1)], "swiss", "unknown pairing design"),
        ("naive", [Member(1)], "self-play", "takes no line-up"),
        ("consultancy", [Member(1, "honest")], "self-play", "roles are for debaters"),
    ],
)
def test_impossible_line_ups_are_refused_with_the_reason(arm, members, pairing, message):
    with pytest.raises(LineupError, match=message):
        arm_cells(arm, members, pairing, default_config=9)


def test_a_line_up_for_an_arm_the_experiment_does_not_run_is_refused():
    with pytest.raises(LineupError, match="does not run"):
        design_cells(["debate"], {"consultancy": [Member(1)]}, "self-play", 9)


def cell_of(plan):
    return (
        plan.condition if plan.protocol != "consultancy" else "consultancy",
        plan.honest_config,
        plan.adversary_config,
    )


def debate_cell(plan):
    return plan.honest_config, plan.adversary_config


DESIGNS = [
    # arms, line-ups, pairing, questions, judgments per question, judges
    (["debate"], {"debate": [Member(1), Member(2)]}, "round-robin", 40, 2, 4),
    (["debate"], {"debate": [Member(1), Member(2), Member(3)]}, "round-robin", 90, 3, 6),
    (["debate"], {"debate": [Member(1), Member(2), Member(3)]}, "cross-play", 60, 3, 6),
    (
        ["debate"],
        {"debate": [Member(1, "honest"), Member(2, "adversary"), Member(3, "adversary")]},
        "round-robin",
        40,
        2,
        4,
    ),
    (["debate", "consultancy"], {"debate": [Member(1), Member(2)]}, "cross-play", 60, 3, 6),
]


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: f"{d[2]}-{d[3]}x{d[4]}x{d[5]}")
def test_pairings_sides_and_positions_are_balanced_per_judge_and_per_question_over_many_seeds(design):
    arms, lineups, pairing, n_questions, judgments, n_judges = design
    cells = design_cells(arms, lineups, pairing, default_config=9)
    debate_pairings = {(c.honest, c.adversary) for c in cells if c.arm == "debate"}
    for seed in range(10):
        plans = plan_trials(
            QUESTIONS,
            list(range(1, n_judges + 1)),
            num_questions=n_questions,
            judgments_per_question=judgments,
            seed=seed,
            arms=arms,
            cells=cells,
        )
        debates = [p for p in plans if p.protocol == "debate"]
        assert {debate_cell(p) for p in debates} == debate_pairings
        # Every pairing gets an equal share overall, and within each judge's trials (to within 2).
        overall = collections.Counter(debate_cell(p) for p in debates)
        assert max(overall.values()) - min(overall.values()) <= 2, (seed, overall)
        for judge in range(1, n_judges + 1):
            mine = collections.Counter(debate_cell(p) for p in debates if p.judge_id == judge)
            counts = [mine.get(pairing, 0) for pairing in debate_pairings]
            assert max(counts) - min(counts) <= 2, (seed, judge, counts)
            # The honest side and the first speaker stay balanced within each judge's debates.
            group = [p for p in debates if p.judge_id == judge]
            assert abs(2 * sum(p.honest_side == "A" for p in group) - len(group)) <= 2
            assert abs(2 * sum(p.first_speaker == "A" for p in group) - len(group)) <= 2
        # A question's trials are in different cells (with no more judgments than cells).
        by_question = collections.defaultdict(list)
        for p in plans:
            by_question[p.question_id].append(cell_of(p))
        assert all(len(set(found)) == len(found) for found in by_question.values())
        # Each pairing argues from both positions equally often (to within 2), over all judges.
        for pairing_ in debate_pairings:
            sides = collections.Counter(p.honest_side for p in debates if debate_cell(p) == pairing_)
            assert abs(sides["A"] - sides["B"]) <= 2, (seed, pairing_, sides)


def test_a_single_speaker_speaks_only_for_its_own_side():
    cells = design_cells(
        ["consultancy", "assisted-honest", "assisted-misleading", "naive"],
        {"assisted-misleading": [Member(4), Member(5)]},
        "self-play",
        default_config=9,
    )
    plans = plan_trials(
        QUESTIONS,
        [1, 2, 3, 4],
        num_questions=100,
        judgments_per_question=4,
        seed=3,
        cells=cells,
        arms=["consultancy", "assisted-honest", "assisted-misleading", "naive"],
    )
    for p in plans:
        honest_speaks = p.condition in ("honest consultant", "assisted-honest")
        wrong_speaks = p.condition in ("dishonest consultant", "assisted-misleading")
        assert (p.honest_config is not None) == honest_speaks, p
        assert (p.adversary_config is not None) == wrong_speaks, p
    misleading = collections.Counter(p.adversary_config for p in plans if p.condition == "assisted-misleading")
    naive = sum(p.condition == "naive" for p in plans)
    # Each misleading configuration is a cell with the share of an arm.
    assert misleading == {4: naive, 5: naive}


def test_cells_must_cover_the_arms():
    with pytest.raises(AssignmentError, match="cover"):
        plan_trials(
            QUESTIONS,
            [1],
            num_questions=4,
            judgments_per_question=1,
            seed=1,
            arms=["debate", "naive"],
            cells=[Cell("debate", 1, 1)],
        )


@pytest.fixture
def three_debaters(make_model_config):
    return [
        make_model_config("weak", queue="small"),
        make_model_config("middling", queue="small"),
        make_model_config("strong", queue="large"),
    ]


def lineup(experiment, configs, arm="debate", role="both"):
    for config in configs:
        LineupMember.objects.create(experiment=experiment, arm=arm, model_config=config, role=role)


def test_a_round_robin_launch_records_each_sides_configuration_and_generates_each_turn_with_it(
    make_experiment, three_debaters, judge, other_judge
):
    weak, middling, strong = three_debaters
    experiment = make_experiment(
        weak, judges=[judge, other_judge], num_questions=9, judgments_per_question=2, pairing="cross-play"
    )
    lineup(experiment, three_debaters)
    assert experiment_launch(experiment=experiment) == 18
    trials = list(Trial.objects.filter(experiment=experiment).prefetch_related("turns"))
    met = collections.Counter((t.honest_config.name, t.adversary_config.name) for t in trials)
    assert len(met) == 6 and set(met.values()) == {3}  # every ordered pair of different debaters, 3 debates each
    for trial in trials:
        assert trial.turns.count() == 4
        for turn in trial.turns.all():
            expected = trial.honest_config if turn.speaker == trial.honest_side else trial.adversary_config
            assert turn.model_config == expected
    experiment.refresh_from_db()
    speakers = experiment.provenance["speakers"]
    assert sorted(c["config_name"] for c in speakers.values()) == [
        "config for middling",
        "config for strong",
        "config for weak",
    ]
    assert [m["config_id"] for m in experiment.provenance["lineup"]] == [weak.pk, middling.pk, strong.pk]
    assert experiment.provenance["design"]["pairing"] == "cross-play"


def test_exports_name_each_sides_configuration_as_launched(make_experiment, three_debaters, judge):
    weak, middling, strong = three_debaters
    experiment = make_experiment(weak, num_questions=6, pairing="round-robin")
    lineup(experiment, [weak], role="honest")
    lineup(experiment, [middling, strong], role="adversary")
    experiment_launch(experiment=experiment)
    strong.name = "renamed after launch"
    strong.save()
    rows = list(exports.trial_rows([experiment.pk]))
    assert {r["honest_config"] for r in rows} == {"config for weak"}
    assert collections.Counter(r["adversarial_config"] for r in rows) == {
        "config for middling": 3,
        "config for strong": 3,
    }


def test_an_impossible_line_up_refuses_the_launch_and_creates_nothing(make_experiment, three_debaters):
    weak = three_debaters[0]
    experiment = make_experiment(weak, pairing="cross-play")
    lineup(experiment, [weak])
    with pytest.raises(LaunchError, match="gives no pairing"):
        experiment_launch(experiment=experiment)
    assert not Trial.objects.filter(experiment=experiment).exists()


def test_generation_is_sent_to_every_speaking_configurations_queue(make_experiment, three_debaters):
    from generation.tasks import experiment_queues

    weak, _, strong = three_debaters
    experiment = make_experiment(weak)
    assert experiment_queues(experiment.pk) == ["small"]
    lineup(experiment, [weak, strong])
    assert experiment_queues(experiment.pk) == ["large", "small"]


def test_the_admin_saves_a_line_up(admin_client, question_set, three_debaters):
    from judging.models import Experiment

    weak, middling, _ = three_debaters
    data = experiment_form(
        question_set,
        weak,
        {"arm": "debate", "model_config": weak.pk, "role": "both"},
        {"arm": "debate", "model_config": middling.pk, "role": "adversary"},
        name="ladder",
        pairing="round-robin",
    )
    response = admin_client.post("/admin/judging/experiment/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.objects.get(name="ladder")
    assert [(m.model_config, m.role) for m in experiment.lineup.all()] == [(weak, "both"), (middling, "adversary")]
    page = admin_client.get(f"/admin/judging/experiment/{experiment.pk}/change/").content.decode()
    assert "line-up" in page


def launched(make_experiment, config, judges, name, **fields):
    experiment = make_experiment(config, judges=judges, name=name, **fields)
    experiment_launch(experiment=experiment)
    return experiment


def pairs_of(experiment):
    return set(Trial.objects.filter(experiment=experiment).values_list("judge_id", "question_id"))


def test_with_the_registry_on_no_judge_meets_a_question_from_another_experiment(
    make_experiment, make_model_config, judge, other_judge
):
    config = make_model_config("m")
    judges = [judge, other_judge]
    first = launched(make_experiment, config, judges, "first", num_questions=6, seed=1)
    # Off (the default): a second experiment on the same 12 questions meets some of them again.
    again = launched(make_experiment, config, judges, "again", num_questions=10, seed=2)
    assert pairs_of(first) & pairs_of(again)
    fresh = launched(make_experiment, config, judges, "fresh", num_questions=4, seed=3, avoid_reexposure=True)
    met_before = pairs_of(first) | pairs_of(again)
    assert pairs_of(fresh) and not pairs_of(fresh) & met_before
    assert Trial.objects.filter(experiment=fresh).count() == 4


def test_the_registry_refuses_a_launch_it_cannot_satisfy_and_says_why(make_experiment, make_model_config, judge):
    config = make_model_config("m")
    launched(make_experiment, config, [judge], "first", num_questions=10, seed=1)
    experiment = make_experiment(config, judges=[judge], name="second", num_questions=4, avoid_reexposure=True)
    with pytest.raises(LaunchError, match="only 2 questions of the set have 1 judge"):
        experiment_launch(experiment=experiment)
    assert not Trial.objects.filter(experiment=experiment).exists()
    assert Turn.objects.filter(trial__experiment=experiment).count() == 0


def test_a_cross_play_experiment_is_generated_with_each_sides_model(make_model_config, make_experiment, tiny_model_dir):
    from generation.worker import generate_batch

    greedy = make_model_config(tiny_model_dir, name="greedy")
    sampled = make_model_config(tiny_model_dir, name="sampled", temperature=0.9, repetition_penalty=1.2)
    experiment = make_experiment(greedy, num_questions=4, rounds=2, pairing="cross-play", turn_style="sequential")
    lineup(experiment, [greedy, sampled])
    experiment_launch(experiment=experiment)
    while generate_batch(experiment.pk):
        pass
    trials = list(Trial.objects.filter(experiment=experiment).prefetch_related("turns"))
    assert {t.status for t in trials} == {Trial.Status.READY}
    assert {(t.honest_config.name, t.adversary_config.name) for t in trials} == {
        ("greedy", "sampled"),
        ("sampled", "greedy"),
    }
    for trial in trials:
        for turn in trial.turns.all():
            side = trial.honest_config if turn.speaker == trial.honest_side else trial.adversary_config
            assert turn.model_settings["config_name"] == side.name
            assert turn.model_settings["temperature"] == side.temperature and turn.text
