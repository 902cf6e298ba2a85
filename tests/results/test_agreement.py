"""Agreement between judges of the same question (results/agreement.py): checked against reference
implementations (the krippendorff package, statsmodels' Fleiss' kappa) on studies simulated through the
platform's planner, interval coverage on studies of known agreement, and the analysis page."""

import math
import re
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from results import agreement
from results.simulation import AGREEMENT_SCENARIOS, Design, Truth, agreement_truth, agreement_validity, simulate_study


def reliability_matrix(rows, label=agreement.correctness):
    """The krippendorff package's input: judges x units, NaN where a judge did not judge the unit."""
    units = sorted({(r["condition"], r["question_id"]) for r in rows if r["verdict"]})
    judges = sorted({r["judge"] for r in rows if r["verdict"]})
    data = np.full((len(judges), len(units)), np.nan)
    for r in rows:
        if r["verdict"]:
            data[judges.index(r["judge"]), units.index((r["condition"], r["question_id"]))] = label(r)
    return data


@pytest.mark.parametrize(
    "design,truth",
    [
        (Design(num_questions=60, judgments_per_question=3, judges=6), Truth(accuracy={"debate": 0.7})),
        (Design(num_questions=30, judgments_per_question=2, judges=5), Truth(accuracy={"debate": 0.8}, question_sd=2)),
        # Units of two to four judges (a question's four judgments split between the two conditions).
        (
            Design(arms=("consultancy",), num_questions=30, judgments_per_question=4, judges=8),
            Truth(accuracy={"honest consultant": 0.8, "dishonest consultant": 0.5}),
        ),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_and_kappa_equal_the_reference_implementations_on_planned_studies(design, truth, seed):
    rows, _ = simulate_study(design, truth, seed)
    units = agreement.overlapping_units(rows)
    reference = krippendorff.alpha(reliability_data=reliability_matrix(rows), level_of_measurement="nominal")
    assert agreement.krippendorff_alpha(units) == pytest.approx(reference, abs=1e-12)
    raters = set(units.raters)
    if len(raters) == 1:
        assert agreement.fleiss_kappa(units) == pytest.approx(statsmodels_fleiss_kappa(units.counts), abs=1e-12)
    else:
        with pytest.raises(ValueError, match="same number of judges"):
            agreement.fleiss_kappa(units)
    found = agreement.agreement(units, resamples=200)
    assert found.alpha.value == pytest.approx(reference, abs=1e-12)
    assert (found.kappa is None) == (len(raters) > 1)


def test_agreement_on_letters_is_chance_where_agreement_on_correctness_is_not():
    """Why the label is correctness: sides are drawn per trial, so judges who agree on the answer pick
    the same letter only half the time."""
    rows, _ = simulate_study(Design(num_questions=60, judgments_per_question=3, judges=6), Truth(question_sd=2.0), 3)
    on_letters = agreement.overlapping_units(rows, label=lambda r: "AB".index(r["verdict"]))
    on_correctness = agreement.overlapping_units(rows)
    assert agreement.krippendorff_alpha(on_correctness) > 0.25
    assert abs(agreement.krippendorff_alpha(on_letters)) < 0.1
    # The same reference agrees on letters too (the code does not depend on which label it is given).
    letters = reliability_matrix(rows, label=lambda r: "AB".index(r["verdict"]))
    assert agreement.krippendorff_alpha(on_letters) == pytest.approx(
        krippendorff.alpha(reliability_data=letters, level_of_measurement="nominal")
    )


def row(question, judge, correct, condition="debate", protocol="debate"):
    return {
        "question_id": question,
        "judge": judge,
        "correct": correct,
        "verdict": "A" if correct else "B",
        "condition": condition,
        "protocol": protocol,
    }


def test_what_cannot_be_measured_is_said_not_shown():
    # No question judged twice in one condition: no units.
    assert agreement.agreement_by_arm([row("q1", "a", True), row("q2", "b", False)]) == {"debate": None}
    # Two judges in different conditions of one question are no unit either.
    split = [row("q1", "a", True, "honest consultant", "consultancy"), row("q1", "b", True, "dishonest consultant")]
    assert agreement.agreement_by_arm(split)["consultancy"] is None
    # Every verdict correct: chance agreement is 1, so agreement beyond it is undefined.
    alike = agreement.agreement_by_arm([row(q, j, True) for q in ("q1", "q2", "q3") for j in ("a", "b")])["debate"]
    assert alike.units == 3 and not alike.alpha.has_interval and "alike" in alike.alpha.method
    # Every unit unanimous: alpha is 1 in every resample, so there is no interval and no figure reported.
    unanimous = [row(q, j, q != "q1") for q in ("q1", "q2", "q3", "q4") for j in ("a", "b")]
    assert agreement.krippendorff_alpha(agreement.overlapping_units(unanimous)) == 1.0
    found = agreement.agreement_by_arm(unanimous)["debate"]
    assert math.isnan(found.alpha.value) and not found.alpha.has_interval and "did not vary" in found.alpha.method
    assert found.pairs_agreeing == 1.0 and found.raters == (2, 2) and found.questions == 4


def test_by_arm_reports_each_condition_of_a_two_condition_arm():
    rows, _ = simulate_study(
        Design(arms=("consultancy",), num_questions=30, judgments_per_question=4, judges=8),
        Truth(accuracy={"honest consultant": 0.8, "dishonest consultant": 0.5}, question_sd=1.5),
        5,
    )
    found = agreement.agreement_by_arm(rows, resamples=200)
    assert list(found) == ["consultancy", "consultancy: honest consultant", "consultancy: dishonest consultant"]
    assert found["consultancy"].units == found["consultancy: honest consultant"].units + (
        found["consultancy: dishonest consultant"].units
    )
    for a in found.values():
        assert a.alpha.low < a.alpha.value < a.alpha.high and -1 <= a.alpha.low and a.alpha.high <= 1


def test_the_population_agreement_is_zero_when_questions_do_not_differ_and_grows_with_their_spread():
    assert agreement_truth(Truth(question_sd=0.0), ["debate"]) == pytest.approx(0.0, abs=1e-12)
    spreads = [agreement_truth(Truth(question_sd=sd), ["debate"]) for sd in (0.5, 1.0, 2.0)]
    assert spreads == sorted(spreads) and 0 < spreads[0] and spreads[-1] < 1


def test_the_population_agreement_matches_a_large_simulated_study():
    truth = Truth(accuracy={"debate": 0.7}, question_sd=1.5, judge_sd=0.3)
    rows, _ = simulate_study(Design(num_questions=3000, judgments_per_question=4, judges=40), truth, 11)
    estimate = agreement.krippendorff_alpha(agreement.overlapping_units(rows))
    assert estimate == pytest.approx(agreement_truth(truth, ["debate"]), abs=0.03)


STUDIES, RESAMPLES = 200, 200


@pytest.mark.parametrize("scenario", [AGREEMENT_SCENARIOS[k] for k in (0, 1, 3)], ids=lambda s: s.name)
def test_intervals_cover_the_known_agreement(scenario):
    """A reduced benchmarks/agreement_validity.py: seeded, so the figures are the same on every run; the
    threshold allows three Monte Carlo standard errors at 200 studies below the goal of 0.93."""
    report = agreement_validity(scenario, studies=STUDIES, resamples=RESAMPLES)
    assert report["coverage"] and all(rate >= 0.88 for rate in report["coverage"].values()), report
    assert all(count == STUDIES for count in report["with_interval"].values()), report


def test_the_analysis_page_shows_agreement_per_arm(
    admin_client, make_model_config, make_experiment, judge, other_judge
):
    from judging.models import Trial, Verdict
    from judging.services import experiment_launch

    experiment = make_experiment(
        make_model_config("m"), judges=[judge, other_judge], num_questions=8, judgments_per_question=2
    )
    experiment_launch(experiment=experiment)
    questions = sorted({t.question.external_id for t in experiment.trials.all()})
    verdicts = []
    for trial in experiment.trials.order_by("pk"):
        # The two judges agree on the first six questions (both right, then both wrong, alternately) and
        # disagree on the last two.
        rank = questions.index(trial.question.external_id)
        correct = rank % 2 == 0 if rank < 6 else trial.judge == judge
        wrong = "B" if trial.honest_side == "A" else "A"
        verdicts.append((trial.question.external_id, trial.judge.username, correct))
        Verdict.objects.create(
            trial=trial,
            judge=trial.judge,
            chosen=trial.honest_side if correct else wrong,
            probability=0.8,
            rationale="r",
            seconds_on_page=30,
        )
    experiment.trials.update(status=Trial.Status.JUDGED)
    data = np.full((2, len(questions)), np.nan)
    for q, name, correct in verdicts:
        data[["judy", "otto"].index(name), questions.index(q)] = int(correct)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    page = admin_client.get(f"/results/analysis/?experiment={experiment.pk}").content.decode()
    table = page[page.index('id="agreement"') : page.index("</table>", page.index('id="agreement"'))]
    assert "<td>debate</td><td>8</td><td>16</td><td>2</td><td>75.0%</td>" in table
    assert f"<td>{expected:.3f}</td>" in table and "not reported" not in table and not math.isnan(expected)
    single = make_experiment(make_model_config("n"), name="one judgment each", num_questions=4)
    experiment_launch(experiment=single)
    for trial in single.trials.all():
        Verdict.objects.create(
            trial=trial, judge=trial.judge, chosen="A", probability=0.8, rationale="r", seconds_on_page=30
        )
    single.trials.update(status=Trial.Status.JUDGED)
    page = admin_client.get(f"/results/analysis/?experiment={single.pk}").content.decode()
    assert "no overlapping judgments" in page


def test_the_documented_recomputation_from_the_export_gives_the_page_figures(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text()
    code = re.search(r"```python\n(.*?)```", text[text.index("**Agreement between judges**") :], re.S).group(1)
    rows = []
    for experiment_id, (design, truth) in enumerate(
        [
            (Design(num_questions=30, judgments_per_question=3, judges=6), Truth(question_sd=1.5)),
            (
                Design(arms=("consultancy",), num_questions=30, judgments_per_question=4, judges=8),
                Truth(accuracy={"honest consultant": 0.8, "dishonest consultant": 0.5}),
            ),
        ],
        start=1,
    ):
        simulated, _ = simulate_study(design, truth, 7)
        rows += [r | {"experiment_id": experiment_id} for r in simulated]
    rows[0]["verdict"], rows[0]["correct"] = "", None  # an unjudged trial is in no unit
    pd.DataFrame(rows).to_csv(tmp_path / "trials.csv", index=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code, namespace)
    page = agreement.agreement_by_arm(rows, resamples=50)
    documented = namespace["by_arm"] | namespace["by_condition"]
    # The page names a condition "arm: condition"; the recomputation names it by the condition alone.
    named = {group.partition(": ")[2] or group: found for group, found in page.items()}
    assert set(named) == set(documented) == {"debate", "consultancy", "honest consultant", "dishonest consultant"}
    for group, found in named.items():
        alpha, kappa = documented[group]
        assert alpha == pytest.approx(found.alpha.value, abs=1e-12)
        assert (kappa is None) == (found.kappa is None)
        if kappa is not None:
            assert kappa == pytest.approx(found.kappa.value, abs=1e-12)
