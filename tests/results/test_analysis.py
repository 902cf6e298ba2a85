"""Analysis statistics on hand-checkable and simulated data, and the analysis page."""

import math

import numpy as np
import pytest

from results import accuracy, analysis
from results.simulation import SANDWICH_DESIGN, Truth, simulate_study
from tests.pages import without_csrf_tokens


def row(correct, p, judge="j1", honest="A", protocol="debate", question="q1", config="cfg", condition="debate"):
    return {
        "verdict": honest if correct else ("B" if honest == "A" else "A"),
        "correct": correct,
        "probability": p,
        "judge": judge,
        "honest_side": honest,
        "protocol": protocol,
        "question_id": question,
        "model_settings": {"config_name": config},
        "condition": condition,
    }


def test_bradley_terry_ranks_a_stronger_debater_higher_on_simulated_debates():
    rng = np.random.default_rng(0)
    strength = {"weak": 0.0, "strong": 1.5}
    rows = []
    for _ in range(600):
        honest, adversarial = rng.choice(["weak", "strong"], size=2)
        p = 1 / (1 + math.exp(-(strength[honest] - strength[adversarial] + 0.5)))
        r = row(bool(rng.random() < p), 0.8, question=f"q{rng.integers(60)}", judge=f"j{rng.integers(6)}")
        r["honest_config"], r["adversarial_config"] = honest, adversarial
        rows.append(r)
    ratings = analysis.debater_ratings(rows, resamples=200)
    # Strengths are centred on their mean, so the true gap of 1.5 is split around 0.
    strong, weak = ratings["strengths"]["strong"], ratings["strengths"]["weak"]
    assert strong.value == pytest.approx(-weak.value)
    assert strong.low < 0.75 < strong.high and weak.low < -0.75 < weak.high and weak.high < 0 < strong.low
    assert 0 < ratings["honesty_advantage"].value < 1.2
    elo = analysis.debater_ratings(rows, scale="elo", resamples=200)["strengths"]["strong"]
    assert elo.value == pytest.approx(1000 + strong.value * 400 / math.log(10))


def test_ratings_only_rate_configurations_that_debated_each_other():
    # Two experiments, each with one configuration arguing both sides: nothing to rate, said plainly.
    rows = [row(True, 0.8, config="small") for _ in range(20)] + [row(False, 0.8, config="big") for _ in range(20)]
    error = analysis.debater_ratings(rows)["error"]
    assert "cross-play" in error and "big, small" in error
    # One cross-play pairing plus a configuration that never met another: only the pair is rated.
    rng = np.random.default_rng(2)
    crossed = []
    for k in range(200):
        r = row(bool(rng.random() < 0.6), 0.8, question=f"q{k % 40}", judge=f"j{k % 5}")
        r["honest_config"], r["adversarial_config"] = ("a", "b") if k % 2 else ("b", "a")
        crossed.append(r)
    ratings = analysis.debater_ratings(crossed + [row(True, 0.8, config="loner")], resamples=200)
    assert set(ratings["strengths"]) == {"a", "b"} and ratings["unconnected"] == []
    assert all(e.low < e.value < e.high for e in ratings["strengths"].values())


def test_ratings_and_skill_explain_what_the_data_lacks():
    rows = [row(True, 0.8), row(False, 0.6)]
    assert "cross-play" in analysis.debater_ratings(rows)["error"]
    assert "at least two judges" in analysis.judge_skill(rows)["error"]
    two_judges_no_overlap = [row(True, 0.8, judge="a", question="q1"), row(False, 0.8, judge="b", question="q2")]
    assert "no question was judged by more than one judge" in analysis.judge_skill(two_judges_no_overlap)["error"]


def test_judge_skill_separates_a_skilled_judge_from_hard_questions():
    rng = np.random.default_rng(1)
    skill = {"novice": -0.5, "expert": 1.5}
    difficulty = {f"q{i}": d for i, d in enumerate(rng.normal(0, 1, 40))}
    rows = [
        row(bool(rng.random() < 1 / (1 + math.exp(-(skill[j] - difficulty[q])))), 0.8, judge=j, question=q)
        for q in difficulty
        for j in skill
        for _ in range(4)
    ]
    skills = analysis.judge_skill(rows)["skills"]
    # With two judges each one's skill is its accuracy minus the other's on the same questions.
    expert_accuracy = np.mean([r["correct"] for r in rows if r["judge"] == "expert"])
    novice_accuracy = np.mean([r["correct"] for r in rows if r["judge"] == "novice"])
    assert skills["expert"].value == pytest.approx(expert_accuracy - novice_accuracy)
    assert skills["expert"].low > 0 > skills["novice"].high


def test_a_judge_who_judged_mostly_the_hardest_arm_is_not_read_as_unskilled():
    # Every judge equally skilled; judge1 (a crowd judge who left early) kept only misleading-help trials,
    # 30 points below the honest arm. Compared with the others' verdicts whatever their arm, judge1 read
    # about 0.19 below them.
    truth = Truth(
        accuracy={"naive": 0.6, "assisted-honest": 0.75, "assisted-misleading": 0.45}, judge_sd=0.0, question_sd=1.0
    )
    found = []
    for seed in range(20):
        rows, _ = simulate_study(SANDWICH_DESIGN, truth, seed)
        rows = [r for r in rows if r["judge"] != "judge1" or r["condition"] == "assisted-misleading"]
        found.append(analysis.judge_skill(rows)["skills"]["judge1"])
    assert abs(np.mean([e.value for e in found])) < 0.05
    assert np.mean([e.low <= 0 <= e.high for e in found]) >= 0.85


def test_a_difference_of_shares_is_shown_within_100_points_and_a_slope_is_not_cut():
    from results.templatetags.results_format import points, points_per

    assert points_per(1.5) == "+150.0 pts" and points_per(-0.0001) == "+0.0 pts"

    # Two judges: 1 degree of freedom, t = 12.7, and an interval of -384 to +384 points before the cut.
    assert [points(x) for x in (-3.838, -0.25, 0.0, -0.0001, 3.838)] == [
        "−100.0 pts",
        "−25.0 pts",
        "+0.0 pts",
        "+0.0 pts",
        "+100.0 pts",
    ]


def test_data_warnings_say_plainly_what_is_missing():
    assert analysis.data_warnings([]) == ["These experiments have no trials yet."]
    assert "No verdicts yet" in analysis.data_warnings([{"verdict": None}])[0]
    notes = " ".join(analysis.data_warnings([row(True, 0.8)]))
    assert "one judge" in notes and "Only one protocol" in notes and "No sandwiching trials" in notes


def test_plots_are_svg_with_titles_and_axis_labels():
    from results import plots

    svg = plots.reliability_diagram(analysis.calibration([row(True, 0.9), row(False, 0.7)]), title="Reliability")
    assert svg.startswith("<svg") and "Reliability" in svg and "stated probability" in svg
    bars = plots.interval_bars(
        accuracy.by_arm(accuracy.Judged([row(True, 0.9) | {"condition": "debate"}])), title="Accuracy", ylabel="share"
    )
    assert "Accuracy" in bars and "share" in bars


def test_the_analysis_page_handles_no_verdicts_and_shows_figures_with_verdicts(
    admin_client, ready_trial, judge, spend_active_time
):
    from judging.services import trial_open, verdict_submit

    url = f"/results/analysis/?experiment={ready_trial.experiment.pk}"
    empty = admin_client.get(url).content.decode()
    assert "No verdicts yet" in empty and "nan" not in without_csrf_tokens(empty).lower()
    trial_open(trial=ready_trial)  # the judge opens the trial, reads for 42 s, then answers
    spend_active_time(ready_trial, judge, 42)
    verdict_submit(
        trial_id=ready_trial.pk,
        judge=judge,
        chosen=ready_trial.honest_side,
        probability=0.97,
        rationale="r",
    )
    page = admin_client.get(url).content.decode()
    assert "1 judged trial" in page and "100.0%" in page and "<svg" in page
    assert "All verdicts come from one judge" in page
    assert "cross-play" in page and "Primary results" in page and "Exploratory results" in page
    assert "nan" not in without_csrf_tokens(page).lower().replace("nanosecond", "")
    assert admin_client.get("/results/analysis/").status_code == 200
    assert "Choose one or more experiments" in admin_client.get("/results/analysis/?experiment=x").content.decode()


def test_the_admin_action_opens_the_analysis(admin_client, ready_trial):
    response = admin_client.post(
        "/admin/judging/experiment/", {"action": "analyse", "_selected_action": [ready_trial.experiment.pk]}
    )
    assert response.status_code == 302 and response.url == f"/results/analysis/?experiment={ready_trial.experiment.pk}"


def test_the_analysis_page_shows_attrition_per_arm(admin_client, make_model_config, make_experiment):
    from judging.models import Trial, Verdict
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), conditions=["debate", "consultancy"], num_questions=8)
    experiment_launch(experiment=experiment)
    trials = list(experiment.trials.order_by("queue_position"))
    Trial.objects.filter(pk=trials[0].pk).update(status=Trial.Status.FAILED)
    for trial in trials[1:5]:
        Verdict.objects.create(
            trial=trial, judge=trial.judge, chosen=trial.honest_side, probability=0.9, rationale="r", seconds_on_page=9
        )
        Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.JUDGED)
    url = f"/results/analysis/?experiment={experiment.pk}"
    page = admin_client.get(url).content.decode()
    assert 'id="attrition"' in page and "Data collection still running" in page
    total = page[page.index('class="total"') :]
    cells = [c.split("</td>")[0] for c in total.split("<td>")[2:12]]
    assert cells[:6] == ["8", "0", "4", "4", "1", "0"]  # assigned, replacements, opened, judged, failed, skipped
    assert cells[7] == "3" and cells[8] == "1"  # waiting 3; lost 1 (the failed one)
    closed = admin_client.get(url + "&closed=1").content.decode()
    assert "Data collection marked as over" in closed
    closed_total = closed[closed.index('class="total"') :]
    assert [c.split("</td>")[0] for c in closed_total.split("<td>")[2:12]][8] == "4"  # 3 never reached + 1 failed
    # Changing one setting of the view keeps the others (the ratings' scale here).
    kept = admin_client.get(url + "&ratings=elo&closed=1").content.decode()
    assert f'href="?experiment={experiment.pk}&amp;ratings=elo&amp;closed=0"' in kept
    # A closed experiment's collection is over without being told so; the researcher may still look at it open.
    experiment.status = experiment.Status.CLOSED
    experiment.save(update_fields=["status"])
    assert "Data collection marked as over" in admin_client.get(url).content.decode()
    assert "Data collection still running" in admin_client.get(url + "&closed=0").content.decode()
    # Pooled with a running experiment, the closed one's unfinished trials are still lost, the other's waiting.
    other = make_experiment(make_model_config("m2"), name="Still running", num_questions=4)
    experiment_launch(experiment=other)
    pooled = admin_client.get(f"{url}&experiment={other.pk}").content.decode()
    assert "Data collection is over in the closed experiments chosen" in pooled
    header = pooled[pooled.index('id="attrition"') : pooled.index("</tr>", pooled.index('id="attrition"'))]
    assert [h in header for h in ("in progress", "waiting", "abandoned", "not reached")] == [True] * 4
    pooled_total = pooled[pooled.index('class="total"') :]
    # assigned, replacements, opened, judged, failed, skipped, in progress, waiting, abandoned, not reached, lost
    cells = [c.split("</td>")[0] for c in pooled_total.split("<td>")[2:14]]
    assert cells[0] == "12" and cells[6:11] == ["0", "4", "0", "3", "4"]


def test_a_model_judge_is_compared_with_the_humans_on_the_same_trials_with_an_interval():
    rng = np.random.default_rng(4)
    humans, model = [], []
    for k in range(120):
        human = row(bool(rng.random() < 0.6), 0.7, judge=f"j{k % 8}", question=f"q{k % 30}") | {"trial_id": k}
        humans.append(human)
        # The model is right on 85% of trials, and more often where the human was (they share hard questions).
        right = bool(rng.random() < (0.95 if human["correct"] else 0.7))
        model.append({"trial_id": k, "question_id": human["question_id"], "correct": right, "judge_model": "m"})
    model.append({"trial_id": 999, "question_id": "q99", "correct": False, "judge_model": "m"})  # no human's
    result = analysis.model_judge_accuracy(humans, model)["m"]
    paired = result["model_minus_humans"]
    assert paired.n == 120 and result["all"].n == 121
    assert paired.value == pytest.approx(result["model_on_shared"].value - result["humans_on_shared"].value)
    assert paired.low < paired.value < paired.high and paired.low > 0  # the model is the more accurate here
    # Pairing removes what the two share: the interval is narrower than the two levels' own widths combined.
    own = [result[k].high - result[k].low for k in ("model_on_shared", "humans_on_shared")]
    assert paired.high - paired.low < math.hypot(*own)
    assert not analysis.model_judge_accuracy([], model)["m"]["model_minus_humans"].estimable


def test_the_paired_model_human_difference_is_clustered_by_the_human_judge_too():
    from results.inference import TwoWayBootstrap

    # Half the judges are always right, half always wrong; the model always right: all the spread is the judges'.
    humans = [row(k % 6 < 3, 0.7, judge=f"j{k % 6}", question=f"q{k % 40}") | {"trial_id": k} for k in range(120)]
    model = [
        {"trial_id": k, "question_id": h["question_id"], "correct": True, "judge_model": "m"}
        for k, h in enumerate(humans)
    ]
    paired = analysis.model_judge_accuracy(humans, model)["m"]["model_minus_humans"]
    by_question_only = TwoWayBootstrap([h["question_id"] for h in humans], [None] * 120).mean(
        [1.0 - h["correct"] for h in humans]
    )
    assert paired.value == pytest.approx(0.5) == by_question_only.value
    assert paired.high - paired.low > 2 * (by_question_only.high - by_question_only.low)
