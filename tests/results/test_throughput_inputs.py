"""Throughput inputs measured from verdicts: ratios of sums, resampled jointly by judge, checked on
simulated judges whose true seconds per judgment are known; warnings when inputs contradict each other."""

import io
import math

import numpy as np
import pytest
from django.core.management import call_command

from results.simulation import Design, Truth, simulate_study
from results.throughput import DEFAULTS, build_inputs, estimate, measured_from_verdicts

WORDS = 1000.0  # mean words per trial
WPM = 250.0  # the median judge's reading rate


def simulated_verdicts(seed, *, judges=6, per_judge=30, speed_sd=0.3):
    """The platform's default design (60 questions x 3 judgments by 6 judges). Judges read at 250 wpm x
    lognormal(0, speed_sd); a verdict's time is its words at the judge's rate, times a per-verdict
    lognormal factor of mean 1 (some trials take longer than their words)."""
    rng = np.random.default_rng(seed)
    wpm = WPM * np.exp(rng.normal(0, speed_sd, judges))
    verdicts = []
    for judge in range(judges):
        for _ in range(per_judge):
            words = rng.gamma(4, WORDS / 4)
            seconds = 60 * words / wpm[judge] * np.exp(rng.normal(-0.08, 0.4))  # E[exp(N(-0.08, 0.4))] = 1
            verdicts.append(
                {
                    "judge": f"judge{judge}",
                    "question_id": f"q{rng.integers(40)}",
                    "words": words,
                    "seconds": seconds,
                    "correct": bool(rng.random() < 0.7),
                }
            )
    return verdicts


def true_seconds_per_judgment(speed_sd=0.3):
    """Over the population of judges and trials: E[words] x 60 x E[1 / wpm]."""
    return WORDS * 60 / WPM * math.exp(speed_sd**2 / 2)


def seconds_per_judgment(verdicts, names=("words_per_trial", "reading_wpm"), draws=500):
    measured = measured_from_verdicts(verdicts, names, source="simulated", draws=draws)
    return estimate(build_inputs(DEFAULTS, measured))["seconds_per_judgment"]


def test_measured_seconds_per_judgment_are_unbiased_and_covered_when_judges_differ_in_speed():
    truth = true_seconds_per_judgment()
    values, covered, mean_of_rates = [], [], []
    for seed in range(2000):
        verdicts = simulated_verdicts(seed)
        figure = seconds_per_judgment(verdicts)
        values.append(figure.value)
        covered.append(figure.low <= truth <= figure.high)
        words = np.array([v["words"] for v in verdicts])
        minutes = np.array([v["seconds"] for v in verdicts]) / 60
        mean_of_rates.append(60 * words.mean() / np.mean(words / minutes))
    assert abs(np.mean(values) - truth) < 3 * np.std(values) / math.sqrt(len(values))
    assert np.mean(covered) >= 0.93 - 0.01  # 0.934: the goal, less about two Monte Carlo errors at 2,000 studies
    # The judges differ enough for it to matter: the mean of per-verdict rates understates the time by ~20%.
    assert np.mean(mean_of_rates) < 0.85 * truth


def test_inputs_are_resampled_by_question_too_where_judges_share_questions():
    """A question's length is its judges' and its difficulty too (the planner's 60 questions x 3 judgments, 6
    judges): resampling judges alone covered the words per trial, and seconds per judgment at a reading rate
    set by hand, about 0.68-0.72, and judge accuracy 0.89 where questions differ widely."""
    design = Design(num_questions=60, judgments_per_question=3, judges=6)
    truth = Truth(accuracy={"debate": 0.7}, judge_sd=0.2, question_sd=1.5)
    # Every output as it is in the population: the inputs measured here at their true values.
    true = estimate(build_inputs(DEFAULTS | {"words_per_trial": WORDS, "judge_accuracy": 0.7}))
    covered = {"seconds_per_judgment": [], "correct_judgments_per_year": []}
    for seed in range(200):
        rows, _ = simulate_study(design, truth, seed)
        rng = np.random.default_rng(10_000 + seed)
        words = {f"q{q}": rng.gamma(4, WORDS / 4) for q in range(design.num_questions)}
        verdicts = [
            {"judge": r["judge"], "question_id": r["question_id"], "words": words[r["question_id"]], "seconds": 60.0}
            | {"correct": r["correct"]}
            for r in rows
        ]
        measured = measured_from_verdicts(verdicts, ["words_per_trial", "judge_accuracy"], source="simulated")
        figures = estimate(build_inputs(DEFAULTS, measured))
        for name, c in covered.items():
            c.append(figures[name].low <= true[name].value <= figures[name].high)
    assert all(np.mean(c) >= 0.88 for c in covered.values()), {k: np.mean(c) for k, c in covered.items()}


def test_inputs_from_the_same_verdicts_stay_coupled_draw_by_draw():
    verdicts = simulated_verdicts(1)
    from_rate = seconds_per_judgment(verdicts)
    measured_time = seconds_per_judgment(verdicts, names=("active_seconds_per_judgment",))
    # Every verdict is timed, so 60 x words / rate is the mean time in every resample of the judges.
    assert from_rate.value == pytest.approx(measured_time.value)
    assert (from_rate.low, from_rate.high) == pytest.approx((measured_time.low, measured_time.high))
    assert from_rate.low < from_rate.value < from_rate.high


def test_a_reading_rate_is_total_words_over_total_minutes_and_untimed_verdicts_are_left_out():
    verdicts = [
        {"judge": "a", "question_id": 1, "words": 600, "seconds": 60, "correct": True},  # 600 wpm
        {"judge": "b", "question_id": 2, "words": 600, "seconds": 600, "correct": False},  # 60 wpm
        {"judge": "b", "question_id": 3, "words": 300, "seconds": None, "correct": True},
    ]
    measured = measured_from_verdicts(verdicts, ["reading_wpm", "words_per_trial", "judge_accuracy"], source="t")
    assert measured["reading_wpm"].value == pytest.approx(1200 / 11)  # not (600 + 60) / 2
    assert measured["words_per_trial"].value == 500 and measured["judge_accuracy"].value == pytest.approx(2 / 3)
    assert "2 judges" in measured["reading_wpm"].source and measured["reading_wpm"].judges == 2
    alone = measured_from_verdicts(verdicts[:1], ["reading_wpm"], source="t")["reading_wpm"]
    assert alone.resampled is None and alone.judges == 1


def test_inconsistent_inputs_are_warned_about():
    # 1,000 words at 250 wpm take 240 s: 60 s per judgment would mean 4 x 2,000 reading hours a year.
    fast = build_inputs(DEFAULTS | {"active_seconds_per_judgment": 60})
    (warning,) = fast.warnings()
    assert "240 s" in warning and "8,000 hours" in warning and "2,000 working hours" in warning
    assert build_inputs(DEFAULTS | {"active_seconds_per_judgment": 300}).warnings() == []
    assert build_inputs(DEFAULTS).warnings() == []
    one_judge = {"judge": "a", "question_id": 1, "words": 500, "seconds": 300, "correct": True}
    measured = measured_from_verdicts([one_judge], ["active_seconds_per_judgment"], source="t")
    (warning,) = build_inputs(DEFAULTS, measured).warnings()
    assert "active_seconds_per_judgment: measured from one judge, so no interval" in warning


def test_the_page_and_the_command_show_the_warning(admin_client):
    page = admin_client.get("/results/throughput/", DEFAULTS | {"active_seconds_per_judgment": "60"})
    assert page.status_code == 200 and 'id="warnings"' in page.content.decode()
    assert "more than their 2,000 working hours" in page.content.decode()
    assert 'id="warnings"' not in admin_client.get("/results/throughput/", DEFAULTS).content.decode()
    out = io.StringIO()
    call_command("estimate_throughput", "--active-seconds-per-judgment", "60", stdout=out)
    assert "Warning: Inconsistent inputs" in out.getvalue()


def test_zero_active_seconds_are_a_time_not_a_missing_one():
    from results.analysis import time_summary

    verdicts = [
        {"judge": "a", "question_id": 1, "words": 600, "seconds": 0.0, "correct": True},  # on the page, never active
        {"judge": "b", "question_id": 2, "words": 600, "seconds": 120, "correct": True},
    ]
    measured = measured_from_verdicts(verdicts, ["active_seconds_per_judgment", "reading_wpm"], source="t")
    assert measured["active_seconds_per_judgment"].value == 60  # (0 + 120) / 2, not 120 / 1
    assert measured["reading_wpm"].value == 600  # 1,200 words over 2 minutes
    assert time_summary(verdicts)["active_seconds_per_judgment"].value == pytest.approx(60)
    only_zero = measured_from_verdicts(verdicts[:1], ["active_seconds_per_judgment", "reading_wpm"], source="t")
    assert only_zero["active_seconds_per_judgment"].value == 0 and "reading_wpm" not in only_zero  # no rate from 0 s


def test_words_read_leave_out_the_judges_own_questions(make_model_config, make_experiment, judge, server_clock):
    from judging.services import experiment_launch, live_move, trial_open, verdict_submit
    from results.measure import verdict_records
    from tests.judging.test_trial_partials import finish_round, first_trial

    experiment = make_experiment(make_model_config("m"), mode="live", rounds=2, min_rounds=1)
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    finish_round(trial)
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="my own question of six words")
    finish_round(trial)
    verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability=0.8, rationale="r")
    assert trial.turns.filter(speaker="judge").count() == 1
    speeches = sum(len(t.text.split()) for t in trial.turns.exclude(speaker="judge"))
    shown = trial.question.text, trial.answer_text("A"), trial.answer_text("B")
    (record,) = verdict_records([experiment.pk])
    assert record["words"] == speeches + sum(len(text.split()) for text in shown)
    assert record["seconds"] == 0  # no beat came: the seconds on the page, 0 on the frozen clock, and 0 is a time
