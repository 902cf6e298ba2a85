"""The debater ladder (issue 11): simulated cross-play tournaments of debaters of known strength, planned by
the platform's own planner, and the analysis page's ladder.

Seeded, so each run gives the same figures. The validity run is the reduced version of
benchmarks/crossplay_ladder.py: 60 studies of the default design (60 questions x 3 judgments, 6 judges)
with a round-robin of four debaters. Coverage goal 0.93 (docs/statistics standard), less three Monte Carlo
standard errors at 60 studies, sqrt(0.93 * 0.07 / 60) = 0.033: each interval must cover in >= 0.83 of the
studies. An analysis that ignored the clustering or the strengths' uncertainty would fall below that.
"""

import math
from collections import Counter

import numpy as np
import pytest

from results import analysis
from results.simulation import (
    FOUR_DEBATERS,
    LADDER_SCENARIOS,
    LADDER_TRUTH,
    Design,
    Truth,
    ladder_truth,
    ladder_validity,
    simulate_study,
)
from tests.pages import without_csrf_tokens

STUDIES, RESAMPLES = 60, 100
GOAL = 0.93
MONTE_CARLO_SE = math.sqrt(GOAL * (1 - GOAL) / STUDIES)


@pytest.fixture(scope="module")
def validity():
    return ladder_validity(LADDER_SCENARIOS[0], studies=STUDIES, resamples=RESAMPLES)


def test_a_lineup_is_planned_by_the_platforms_planner_into_balanced_cells():
    design = LADDER_SCENARIOS[0].design
    rows, _ = simulate_study(design, LADDER_TRUTH, seed=3)
    cells = Counter((r["honest_config"], r["adversarial_config"]) for r in rows)
    # Round-robin of four: every ordered pairing, self-play included, each an equal share (to within one).
    assert set(cells) == {(h, a) for h in FOUR_DEBATERS for a in FOUR_DEBATERS}
    assert max(cells.values()) - min(cells.values()) <= 1 and sum(cells.values()) == 180
    # Without a line-up the rows are as before: no debater columns.
    plain, _ = simulate_study(Design(num_questions=10, judgments_per_question=1, judges=2), Truth(), seed=3)
    assert "honest_config" not in plain[0]


def test_the_truth_is_the_population_bradley_terry_fit():
    truth = ladder_truth(LADDER_SCENARIOS[0].design, LADDER_TRUTH)
    true = [LADDER_TRUTH.strengths[n] for n in FOUR_DEBATERS]
    marginal = [truth["strengths"][n] for n in FOUR_DEBATERS]
    # Same order, centred, and shrunk by averaging over judges and questions (the marginal model).
    assert np.argsort(marginal).tolist() == np.argsort(true).tolist() == [0, 1, 2, 3]
    assert sum(marginal) == pytest.approx(0, abs=1e-9)
    assert 0.7 < marginal[-1] / true[-1] < 0.95
    # Strength helps the truth (truth_gain > 0): self-play accuracy rises with strength.
    assert np.all(np.diff([truth["self_play"][n] for n in FOUR_DEBATERS]) > 0) and truth["slope"] > 0
    # Without the truth gain the model is Bradley-Terry's: self-play accuracy is flat, strengths symmetric.
    flat = ladder_truth(LADDER_SCENARIOS[3].design, LADDER_SCENARIOS[3].truth)
    assert flat["slope"] == pytest.approx(0, abs=1e-9)
    assert flat["strengths"]["debater 4"] == pytest.approx(-flat["strengths"]["debater 1"])


def test_ladder_intervals_cover_the_true_strengths_at_the_stated_rate(validity):
    coverage = validity["coverage"]
    expected = {f"strength: {n}" for n in FOUR_DEBATERS} | {f"self-play accuracy: {n}" for n in FOUR_DEBATERS}
    assert expected | {"honesty advantage", "self-play slope"} == set(coverage)
    assert all(rate >= GOAL - 3 * MONTE_CARLO_SE for rate in coverage.values()), coverage


def test_a_round_robin_tournament_recovers_the_debaters_order(validity):
    # Adjacent debaters 0.6 logits apart, each in about 80 debates: the full order in most studies.
    assert validity["order_recovered"] >= 0.7, validity["order_recovered"]
    assert validity["mean_spearman"] >= 0.9, validity["mean_spearman"]


def test_self_play_accuracy_rises_with_strength_in_simulation_and_on_the_ladder():
    # Pure self-play, straight from the rows: the honest side wins more often between stronger debaters.
    design = Design(num_questions=120, judgments_per_question=3, judges=6, debaters=FOUR_DEBATERS, pairing="self-play")
    rows, _ = simulate_study(design, LADDER_TRUTH, seed=1)
    rate = [np.mean([r["correct"] for r in rows if r["honest_config"] == n]) for n in FOUR_DEBATERS]
    assert rate[-1] - rate[0] > 0.1 and np.corrcoef(rate, range(4))[0, 1] > 0.8, rate
    # Self-play alone rates nobody, and says why.
    assert "cross-play" in analysis.debater_ratings(rows)["error"]

    # The ladder of a large round-robin (160 x 3, 8 judges) where strength helps the truth a lot: self-play
    # accuracy from about 28% for the weakest to 81% for the strongest. Per rung, and its slope on strength
    # (p < 0.03 in each of seeds 0-11).
    steep = Truth(strengths=dict(zip(FOUR_DEBATERS, (-1.0, -0.3, 0.3, 1.0))), honesty_advantage=0.3, truth_gain=1.5)
    rows, _ = simulate_study(LADDER_SCENARIOS[1].design, steep, seed=2)
    ratings = analysis.debater_ratings(rows, resamples=200)
    ladder = ratings["ladder"]
    assert [rung.name for rung in ladder] == list(reversed(FOUR_DEBATERS))
    assert [rung.strength.value for rung in ladder] == sorted((r.strength.value for r in ladder), reverse=True)
    for rung in ladder:
        mine = [r for r in rows if rung.name in (r["honest_config"], r["adversarial_config"])]
        own = [r["correct"] for r in mine if r["honest_config"] == r["adversarial_config"]]
        assert rung.debates == len(mine) and rung.self_play.n == len(own)
        assert rung.self_play.value == pytest.approx(np.mean(own))
        assert rung.self_play.low < rung.self_play.value < rung.self_play.high
    slope = ratings["self_play_slope"]
    assert slope.configurations == 4 and slope.per == "unit of log-odds"
    assert slope.estimate.value > 0 and slope.test.p < 0.05, slope
    # On the Elo scale the slope is per 100 Elo points.
    elo = analysis.debater_ratings(rows, scale="elo", resamples=200)["self_play_slope"]
    assert elo.estimate.value == pytest.approx(slope.estimate.value * 100 / analysis.ELO_PER_LOGIT)
    assert elo.test.p == pytest.approx(slope.test.p)


def test_over_simulated_studies_the_ladder_finds_the_rise_more_often_than_chance(validity):
    # At 60 x 3 the slope rests on about 11 self-play debates per debater, so its power is low; it must
    # still pass more often than its 5% level would by chance (benchmarks/crossplay_ladder.py: power and
    # the false-pass rate with self-play accuracy flat).
    assert validity["slope_test_passes"] > 0.1, validity["slope_test_passes"]


def test_cross_play_has_no_self_play_and_the_ladder_says_so():
    scenario = LADDER_SCENARIOS[2]
    rows, _ = simulate_study(scenario.design, scenario.truth, seed=4)
    ratings = analysis.debater_ratings(rows, resamples=100)
    assert all(r["honest_config"] != r["adversarial_config"] for r in rows)
    assert ratings["self_play_slope"] is None and len(ratings["ladder"]) == 4
    assert all(not rung.self_play.estimable for rung in ratings["ladder"])
    assert (ratings["resamples"], ratings["seed"]) == (100, analysis.SEED)


def test_the_analysis_page_shows_the_ladder_escaped(
    admin_client, make_model_config, make_experiment, django_user_model
):
    from judging.models import LineupMember, Trial, Verdict
    from judging.services import experiment_launch

    judges = [
        django_user_model.objects.create_user(username=f"ladder-judge-{k}", password="pw-12345678") for k in range(3)
    ]
    configs = [make_model_config(f"m{k}", name=name) for k, name in enumerate(["weak", "middling", "<b>strong</b>"])]
    experiment = make_experiment(
        configs[0], judges=judges, num_questions=12, judgments_per_question=3, pairing="round-robin"
    )
    for config in configs:
        LineupMember.objects.create(experiment=experiment, arm="debate", model_config=config)
    experiment_launch(experiment=experiment)
    rank = {config.pk: k for k, config in enumerate(configs)}
    trials = list(experiment.trials.order_by("queue_position"))
    assert len(trials) == 36
    for k, trial in enumerate(trials):
        # The stronger side wins; between equals (self-play) the honest side wins two debates in three.
        gap = rank[trial.honest_config_id] - rank[trial.adversary_config_id]
        honest_wins = gap > 0 or (gap == 0 and k % 3 != 0) or (gap < 0 and k % 4 == 0)
        chosen = trial.honest_side if honest_wins else ("B" if trial.honest_side == "A" else "A")
        Verdict.objects.create(
            trial=trial, judge=trial.judge, chosen=chosen, probability=0.8, rationale="r", seconds_on_page=9
        )
        Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.JUDGED)
    page = admin_client.get(f"/results/analysis/?experiment={experiment.pk}").content.decode()
    table = page[page.index('id="ratings"') : page.index("</table>", page.index('id="ratings"'))]
    # Strongest first, the configuration's name escaped, never raw HTML.
    assert table.index("&lt;b&gt;strong&lt;/b&gt;") < table.index("middling") < table.index("weak")
    assert "<b>strong</b>" not in page
    assert "self-play: judge chose the honest side" in table and "no self-play debates" not in table
    assert 'id="self-play-slope"' in page and "across the 3 configurations" in page.lower()
    assert "1000 resamples each" in page and f"seed {analysis.SEED}" in page
    elo = admin_client.get(f"/results/analysis/?experiment={experiment.pk}&ratings=elo").content.decode()
    assert "per 100 Elo points of strength" in elo
    assert "nan" not in without_csrf_tokens(page).lower().replace("nanosecond", "")


# X beats Y and Z in every debate; Y and Z split theirs (the auditor's example: with the first name as a
# reference the ridge pulled the others towards it, so X's strength moved by 75 Elo with the names).
SEPARATED = [("X", "Y", 3, 3), ("Y", "X", 0, 3), ("X", "Z", 3, 3), ("Z", "X", 0, 3), ("Y", "Z", 2, 3), ("Z", "Y", 1, 3)]


def bradley_terry_of(pairings_with_wins, names):
    pairings = [(honest, adversary) for honest, adversary, _, _ in pairings_with_wins]
    wins = np.array([w for *_, w, _ in pairings_with_wins], float)
    debates = np.array([n for *_, n in pairings_with_wins], float)
    fitted, _ = analysis.fit_bradley_terry(analysis.pairing_design(pairings, names), wins, debates)
    return dict(zip([*names, "honesty"], fitted))


@pytest.mark.unit
def test_renaming_or_reordering_the_configurations_leaves_the_ratings_unchanged():
    first = bradley_terry_of(SEPARATED, ["X", "Y", "Z"])
    for order in (["Y", "Z", "X"], ["Z", "X", "Y"]):
        again = bradley_terry_of(SEPARATED, order)
        assert again == pytest.approx(first, abs=1e-9)
    assert first["X"] > first["Y"] > first["Z"] and sum(first[c] for c in "XYZ") == pytest.approx(0, abs=1e-12)


@pytest.mark.unit
def test_the_ratings_maximise_the_penalised_likelihood_as_a_general_minimiser_finds_it():
    from scipy.optimize import minimize

    names = ["X", "Y", "Z"]
    design = analysis.pairing_design([(h, a) for h, a, _, _ in SEPARATED], names)
    wins = np.array([w for *_, w, _ in SEPARATED], float)
    losses = np.array([n - w for *_, w, n in SEPARATED], float)

    def penalised(beta):  # the negative log-likelihood of wins and losses, plus λ/2 · |β|²
        logit = design @ beta
        return (
            wins * np.logaddexp(0, -logit) + losses * np.logaddexp(0, logit)
        ).sum() + analysis.RIDGE / 2 * beta @ beta

    reference = minimize(penalised, np.zeros(design.shape[1]), method="BFGS", options={"gtol": 1e-10}).x
    fitted, raw = analysis.fit_bradley_terry(design, wins, wins + losses)
    assert raw == pytest.approx(reference, abs=1e-5)
    assert fitted[:3] == pytest.approx(reference[:3] - reference[:3].mean(), abs=1e-5)
