"""Attrition: the per-arm table, the test that arms lose alike, its warnings, on hand-made and simulated studies."""

import numpy as np
import pytest
from django.utils import timezone
from scipy.stats import chi2_contingency

from judging.exports import trial_rows
from judging.models import Turn
from judging.services import (
    experiment_launch,
    failed_trials_replace,
    trial_open,
    trial_skip,
    trials_settle,
    verdict_submit,
)
from results.attrition import MAX_LOSS_SHARE, attrition_report, outcome
from results.simulation import Design, Truth, simulate_study
from tests.judging.test_replacement import fail_for_good

SANDWICH = Design(arms=("naive", "assisted-honest", "assisted-misleading"))  # 60 questions x 3, 6 judges
SAME_ACCURACY = {"naive": 0.6, "assisted-honest": 0.6, "assisted-misleading": 0.6}
STUDIES = 200


def trial(arm, status="ready", *, judge="j1", opened=False, verdict="", trial_id=0, replaces=None):
    return {
        "trial_id": trial_id,
        "experiment_id": 1,
        "judge": judge,
        "protocol": "sandwich",
        "condition": arm,
        "status": status,
        "verdict": verdict,
        "opened_at": "2026-01-01T10:00:00+00:00" if opened or verdict else None,
        "replaces_trial_id": replaces,
    }


def test_every_trial_has_one_outcome_and_the_table_counts_them_per_arm():
    rows = [
        trial("naive", "judged", verdict="A"),
        trial("naive", "judged", verdict="B"),
        trial("naive", "ready", opened=True),  # in progress
        trial("naive", "ready"),  # waiting
        trial("assisted-honest", "failed", trial_id=7),
        trial("assisted-honest", "judged", verdict="A", replaces=7),
        trial("assisted-honest", "skipped", opened=True),
        trial("assisted-honest", "generating"),
    ]
    report = attrition_report(rows)
    naive, honest = report.arms
    assert (naive.arm, naive.assigned, naive.opened, naive.judged, naive.in_progress, naive.waiting) == (
        "naive",
        4,
        3,
        2,
        1,
        1,
    )
    assert (naive.lost, naive.settled, naive.lost_share) == (0, 2, 0.0)
    assert (honest.assigned, honest.replacements, honest.failed, honest.skipped, honest.judged) == (4, 1, 1, 1, 1)
    assert (honest.opened, honest.waiting, honest.lost, honest.settled) == (2, 1, 2, 3)
    assert honest.lost_share == pytest.approx(2 / 3)
    assert report.total.assigned == 8 and report.total.lost == 2 and not report.closed
    # Once data collection is closed, what was opened and not finished is abandoned, the rest never reached.
    closed = attrition_report(rows, closed=True)
    assert (closed.arms[0].abandoned, closed.arms[0].not_reached, closed.arms[0].lost) == (1, 1, 2)
    assert (closed.arms[1].abandoned, closed.arms[1].not_reached, closed.arms[1].lost) == (0, 1, 3)
    assert [outcome(r, closed=True) for r in rows[:4]] == ["judged", "judged", "abandoned", "not_reached"]


def test_pooled_experiments_lose_the_unfinished_trials_of_the_closed_ones_only():
    running = [trial("naive", "ready", opened=True), trial("naive", "ready")]
    closed = [dict(r, experiment_id=2) for r in running]
    report = attrition_report(running + closed, closed={2})
    (naive,) = report.arms
    assert (naive.in_progress, naive.waiting, naive.abandoned, naive.not_reached, naive.lost) == (1, 1, 1, 1, 2)
    assert report.closed is None  # some experiments closed, some running
    assert attrition_report(closed, closed={2}).closed is True and attrition_report(running, closed={2}).closed is False
    assert attrition_report(running + closed, closed=True).total.lost == 4


@pytest.mark.django_db
def test_the_table_is_computed_from_the_trials_export(make_model_config, make_experiment, judge):
    experiment = make_experiment(make_model_config("m"), num_questions=4)  # pre-generated debate, one judge
    experiment_launch(experiment=experiment)
    judged, failed, skipped, waiting = experiment.trials.order_by("queue_position")
    for trial in (judged, skipped):
        trial.turns.update(status=Turn.Status.DONE, text="An argument.", finished_at=timezone.now())
        trials_settle([trial.pk])
    trial_open(trial=judged)
    verdict_submit(trial_id=judged.pk, judge=judge, chosen="A", probability=0.8, rationale="r")
    fail_for_good(failed)
    failed_trials_replace(experiment_id=experiment.pk)  # the replacement waits to be generated
    trial_skip(trial_id=skipped.pk, judge=judge, reason="I know this text")
    report = attrition_report(trial_rows([experiment.pk]))
    (debate,) = report.arms
    assert (debate.arm, debate.assigned, debate.replacements, debate.opened) == ("debate", 5, 1, 1)
    assert (debate.judged, debate.failed, debate.skipped, debate.waiting, debate.lost, debate.settled) == (
        1,
        1,
        1,
        2,
        2,
        3,
    )


def balanced_study(lost_by_arm: dict, per_arm=40, judges=4):
    """Each judge has per_arm / judges trials of each arm; ``lost_by_arm[arm]`` of them are lost, spread over
    the judges."""
    rows = []
    for arm, lost in lost_by_arm.items():
        for i in range(per_arm):
            failed = i < lost
            rows.append(
                trial(arm, "failed" if failed else "judged", judge=f"j{i % judges}", verdict="" if failed else "A")
            )
    return [dict(r, trial_id=n) for n, r in enumerate(rows)]


def test_arms_that_lose_different_shares_get_a_warning_and_equal_ones_do_not():
    differ = attrition_report(balanced_study({"naive": 0, "assisted-honest": 8}))
    assert differ.test.p_value < 0.05 and differ.test.strata == 4
    assert len(differ.warnings) == 1
    assert "Arms lose different shares" in differ.warnings[0] and "assisted-honest 8 of 40" in differ.warnings[0]
    same = attrition_report(balanced_study({"naive": 4, "assisted-honest": 4}))
    assert same.test.p_value > 0.5 and same.warnings == ()
    # The same data in another order give the same p-value (the export's order is restored).
    rows = balanced_study({"naive": 0, "assisted-honest": 8})
    assert attrition_report(rows[::-1]).test.p_value == differ.test.p_value


def test_an_arm_losing_more_than_a_fifth_warns_even_when_every_arm_loses_as_much():
    lost = int(40 * MAX_LOSS_SHARE) + 2
    report = attrition_report(balanced_study({"naive": lost, "assisted-honest": lost}))
    assert report.test.p_value > 0.5
    assert [w.split(" lost ")[0] for w in report.warnings] == ["naive", "assisted-honest"]
    assert f"lost {lost} of its 40 settled trials" in report.warnings[0]


def test_a_judge_who_loses_all_their_trials_does_not_make_arms_differ():
    # Judge j0 stops after being assigned an unbalanced handful (9 naive, 1 assisted), all lost; the others
    # lose nothing. Trials taken as independent, the arms look different; within judges they do not.
    rows = [trial("naive", "skipped", judge="j0") for _ in range(9)]
    rows += [trial("assisted-honest", "skipped", judge="j0") for _ in range(1)]
    for k in range(1, 9):
        rows += [
            trial(arm, "judged", judge=f"j{k}", verdict="A") for arm in ("naive", "assisted-honest") for _ in range(5)
        ]
    rows = [dict(r, trial_id=n) for n, r in enumerate(rows)]
    table = [[9, 40], [1, 40]]  # lost, kept per arm
    assert chi2_contingency(table, correction=False).pvalue < 0.05
    report = attrition_report(rows)
    assert report.test.p_value == 1.0 and report.warnings == ()


def test_nothing_to_test_is_said_plainly():
    assert attrition_report([]).note.startswith("Fewer than two arms")
    one_arm = attrition_report([trial("naive", "failed")] + [trial("naive", "judged", verdict="A")] * 5)
    assert one_arm.test is None and one_arm.note.startswith("Fewer than two arms") and one_arm.warnings == ()
    none_lost = attrition_report(
        [trial("naive", "judged", verdict="A"), trial("assisted-honest", "judged", verdict="B")]
    )
    assert none_lost.test is None and none_lost.note == "No trial has been lost." and none_lost.warnings == ()
    assert attrition_report([trial("naive")]).arms[0].lost_share is None  # nothing settled yet


def warning_rate(truth, studies=STUDIES):
    """Share of simulated sandwiching studies (the platform's planner, known truth) that get a warning."""
    fired = [bool(attrition_report(simulate_study(SANDWICH, truth, seed)[0]).warnings) for seed in range(studies)]
    return float(np.mean(fired))


def test_losing_the_hardest_tenth_of_assisted_trials_is_flagged_in_most_simulated_studies():
    truth = Truth(
        accuracy=SAME_ACCURACY,
        failure_rate={"assisted-honest": 0.1, "assisted-misleading": 0.1},
        failures_on_hard_questions=True,
    )
    assert warning_rate(truth) >= 0.6  # measured: 0.735 over these 200 seeds, 0.72 over 5,000


@pytest.mark.parametrize("hard_questions", [False, True])
def test_arms_losing_at_the_same_rate_are_rarely_flagged(hard_questions):
    # 5% of every arm's trials fail, at random or (clustered by question) mostly on hard questions.
    truth = Truth(
        accuracy=SAME_ACCURACY,
        failure_rate=dict.fromkeys(SAME_ACCURACY, 0.05),
        failures_on_hard_questions=hard_questions,
    )
    # At most 5% plus about two Monte Carlo standard errors over 200 studies. Measured over these 200 seeds:
    # 0.06 and 0.06; over 5,000: 0.032 and 0.030.
    assert warning_rate(truth) <= 0.08
