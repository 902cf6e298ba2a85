"""One experiment mixing protocols and conditions, balanced per judge."""

import collections

from generation.worker import generate_batch
from judging import selectors
from judging.models import Experiment, Trial
from judging.services import experiment_launch, trial_skip, verdict_submit
from tests.judging.admin_form import experiment_form
from tests.judging.pages import open_trial

ARMS = ["debate", "consultancy", "naive", "assisted-honest", "assisted-misleading"]


def test_an_experiment_mixes_all_arms_balanced_per_judge(
    make_model_config, make_experiment, tiny_model_dir, judge, other_judge, client
):
    experiment = make_experiment(
        make_model_config(tiny_model_dir),
        judges=[judge, other_judge],
        conditions=ARMS,
        num_questions=10,
        judgments_per_question=1,
    )
    experiment_launch(experiment=experiment)
    trials = list(experiment.trials.all())
    for j in (judge, other_judge):
        counts = collections.Counter(
            "consultancy" if t.protocol == "consultancy" else t.condition for t in trials if t.judge == j
        )
        assert counts == {arm: 1 for arm in ARMS}, counts
    by_protocol = collections.Counter(t.protocol for t in trials)
    assert by_protocol == {"debate": 2, "consultancy": 2, "sandwich": 6}
    # Pre-generated experiment: debate and consultancy are generated in advance, sandwiching is live.
    assert all(t.live == (t.protocol == "sandwich") for t in trials)
    assert {t.status for t in trials if not t.live} == {Trial.Status.GENERATING}
    while generate_batch(experiment.pk):
        pass
    assert {t.status for t in experiment.trials.filter(live=False)} == {Trial.Status.READY}
    client.force_login(judge)
    labels = {"debate": "Debater A", "consultancy": "Consultant (for answer", "sandwich": "Answer this question"}
    shown = []
    # The judge's trials one at a time, in their planned order.
    while (trial := selectors.judge_queue(judge).first()) is not None:
        if trial.condition.startswith("assisted"):  # its assistant speaks live (test_sandwich): skipped unopened
            trial_skip(trial_id=trial.pk, judge=judge, reason="assisted trials are tested in test_sandwich")
            continue
        page = open_trial(client, trial).content.decode()
        assert labels[trial.protocol] in page, trial.protocol
        verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability=0.7, rationale="r")
        shown.append(trial.protocol)
    assert sorted(shown) == ["consultancy", "debate", "sandwich"]


def test_the_admin_form_offers_the_arms_and_validates_them(admin_client, question_set, make_model_config):
    model = make_model_config("m")
    data = experiment_form(question_set, model, name="mixed", conditions=["debate", "naive"])
    response = admin_client.post("/admin/judging/experiment/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Experiment.objects.get(name="mixed").conditions == ["debate", "naive"]
    response = admin_client.post("/admin/judging/experiment/add/", data | {"name": "none", "conditions": []})
    assert response.status_code == 200 and not Experiment.objects.filter(name="none").exists()
    assert "This field is required" in response.content.decode()


def test_the_experiment_list_says_where_trials_are_live_and_shows_ids(admin_client, make_model_config, make_experiment):
    model = make_model_config("m")
    sandwich = make_experiment(model, name="sandwich only", conditions=["naive", "assisted-honest"])
    mixed = make_experiment(model, name="mixed", conditions=["debate", "assisted-misleading"])
    debate = make_experiment(model, name="debate live", mode="live")
    page = admin_client.get("/admin/judging/experiment/").content.decode()
    # Sandwiching is always live, whatever the mode field says (its default is pre-generated).
    assert sandwich.mode == "pregenerated"
    from judging.services import experiment_launch

    experiment_launch(experiment=debate)
    page = admin_client.get("/admin/judging/experiment/").content.decode()
    assert "0 / 0 (live: written as judges go)" in page  # a launched live experiment before any judge starts
    for experiment, shown in [(sandwich, "live"), (mixed, "pre-generated (sandwiching live)"), (debate, "live")]:
        row = page[page.index(f">{experiment.name}<") - 600 : page.index(f">{experiment.name}<") + 600]
        assert f'<td class="field-mode_short">{shown}</td>' in row, row
        assert f">{experiment.pk}<" in row


def test_a_launched_experiments_page_shows_its_design_in_words(admin_client, make_model_config, make_experiment):
    from judging.services import experiment_launch

    experiment = make_experiment(
        make_model_config("m"),
        conditions=["naive", "assisted-misleading"],
        primary_comparisons=["sandwich-robust"],
        num_questions=4,
    )
    experiment_launch(experiment=experiment)
    page = admin_client.get(f"/admin/judging/experiment/{experiment.pk}/change/").content.decode()
    assert "Sandwiching: judge alone (no assistant), Sandwiching: judge with an assistant steering" in page
    assert "sandwiching, robust: a misleading assistant lowers accuracy" in page
    assert "4 (every trial: none declared)" in page
    # The words replace the stored JSON's rows (the provenance record further down keeps its JSON).
    assert 'class="form-row field-arms_shown"' in page
    assert 'class="form-row field-conditions"' not in page
    assert 'class="form-row field-primary_comparisons"' not in page


def test_saving_a_live_simultaneous_debate_warns_that_the_judge_waits_for_both_speeches(
    admin_client, question_set, make_model_config
):
    model = make_model_config("m")
    data = experiment_form(question_set, model, name="live sim", mode="live", turn_style="simultaneous")
    page = admin_client.post("/admin/judging/experiment/add/", data, follow=True).content.decode()
    assert "Live debates with simultaneous turns: the judge sees nothing of a round" in page
    sequential = experiment_form(question_set, model, name="live seq", mode="live", turn_style="sequential")
    page = admin_client.post("/admin/judging/experiment/add/", sequential, follow=True).content.decode()
    assert "Live debates with simultaneous turns" not in page
