"""The throughput estimator: hand-computed cases, monotonicity, measured inputs, page and command."""

import io
import math

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given, settings
from hypothesis import strategies as st

from results.throughput import DEFAULTS, EstimatorInputError, Quantity, build_inputs, estimate


def hand_inputs(**overrides):
    return build_inputs(DEFAULTS | overrides)


def test_it_matches_a_hand_computed_case():
    # 100 judges x 2,000 h = 720,000,000 judge-seconds; 1,000 words at 250 wpm = 240 s per judgment.
    r = estimate(hand_inputs())
    assert r["seconds_per_judgment"].value == pytest.approx(240)
    assert r["judgments_per_year"].value == pytest.approx(3_000_000)
    assert r["correct_judgments_per_year"].value == pytest.approx(2_400_000)
    assert r["pages_per_year"].value == pytest.approx(6_000_000)  # 3e9 words / 500
    assert r["tokens_per_year"].value == pytest.approx(3.9e9)  # 3e9 words x 1.3
    # 50 million trajectories x 240 s = 3.333e6 judge-hours; x $30; / (100 x 2,000 h) years.
    assert r["judge_hours[50 million]"].value == pytest.approx(50e6 * 240 / 3600)
    assert r["cost[50 million]"].value == pytest.approx(50e6 * 240 / 3600 * 30)
    assert r["calendar_years[50 million]"].value == pytest.approx(50e6 * 240 / 3600 / 200_000)
    assert r["judge_hours[50 thousand]"].value == pytest.approx(5e4 * 240 / 3600)
    assert r["10% faster: judgments_per_year"].value == pytest.approx(3_300_000)
    assert r["10% faster: judge_hours[50 million]"].value == pytest.approx(50e6 * 240 / 3600 / 1.1)


def test_measured_time_per_judgment_overrides_reading_time_and_the_model_ratio_is_computed():
    r = estimate(hand_inputs(active_seconds_per_judgment=600, judgments_per_trajectory=3, model_tokens_per_second=1300))
    assert r["judgments_per_year"].value == pytest.approx(720e6 / 600)
    assert r["judge_hours[50 thousand]"].value == pytest.approx(5e4 * 3 * 600 / 3600)
    # One judge reviews 1,000 words x 1.3 tokens in 600 s = 2.1667 tokens/s.
    assert r["review_tokens_per_second_per_judge"].value == pytest.approx(1300 / 600)
    assert r["generation_to_review_ratio_per_judge"].value == pytest.approx(600)
    assert r["generation_to_review_ratio_all_judges"].value == pytest.approx(6)


def test_the_back_of_envelope_presets_show_where_1e11_pages_comes_from():
    from results.services import preset_inputs

    full_time = estimate(preset_inputs("back-of-envelope"))
    assert full_time["pages_per_year"].value == pytest.approx(6e11)  # 60,000 pages per reader
    assert full_time["tokens_per_year"].value == pytest.approx(6e14)
    quoted = estimate(preset_inputs("back-of-envelope-quoted"))
    assert quoted["pages_per_year"].value == pytest.approx(1e11)
    assert quoted["tokens_per_year"].value == pytest.approx(1e14)
    assert quoted["reading_hours_per_judge"].value == pytest.approx(333.33, rel=1e-3)


def test_measured_inputs_give_intervals_that_contain_the_estimate():
    rng = np.random.default_rng(1)
    measured = {"active_seconds_per_judgment": Quantity.measured(rng.normal(300, 60, 200), source="test")}
    r = estimate(build_inputs(DEFAULTS, measured))
    f = r["judgments_per_year"]
    assert f.low < f.value < f.high
    assert (f.high - f.low) / f.value < 0.2  # n=200: the mean is well determined
    assert r["pages_per_year"].low < r["pages_per_year"].high


def test_turn_measures_are_ratios_of_sums_resampled_by_trial():
    # Tokens over words: a short turn's ratio counts for its few words only.
    tokens, words = [30, 2], [20, 1]
    assert Quantity.measured(tokens, words, source="t").value == pytest.approx(32 / 21)
    # Five turns of each trial alike: resampling turns as if independent would claim five times the data.
    rng = np.random.default_rng(2)
    per_trial = rng.normal(1.3, 0.1, 20)
    turns, trials = np.repeat(per_trial, 5), np.repeat(np.arange(20), 5)
    clustered = Quantity.measured(turns, clusters=trials, source="t").draws
    one_per_trial = Quantity.measured(per_trial, source="t").draws
    independent = Quantity.measured(turns, source="t").draws
    assert np.std(clustered) == pytest.approx(np.std(one_per_trial), rel=0.1)
    assert np.std(independent) < 0.6 * np.std(clustered)


def test_a_turn_measure_from_one_trial_has_no_interval_and_a_warning():
    rate = Quantity.measured([100.0, 130.0], clusters=["t1", "t1"], source="t")
    inputs = build_inputs(DEFAULTS | {"model_tokens_per_second": None}, {"model_tokens_per_second": rate})
    figure = estimate(inputs)["generation_to_review_ratio_per_judge"]
    assert rate.draws is None and figure.low == figure.value == figure.high
    assert any("measured from the turns of one trial, so no interval" in w for w in inputs.warnings())


def test_turn_measures_from_few_trials_get_t_quantiles_with_their_degrees_of_freedom():
    from scipy.stats import t

    rate = Quantity.measured([100.0, 130.0, 85.0], clusters=["t1", "t2", "t3"], source="t")
    figure = estimate(build_inputs(DEFAULTS | {"model_tokens_per_second": None}, {"model_tokens_per_second": rate}))[
        "generation_to_review_ratio_per_judge"
    ]
    # Three trials: the bootstrap's variance times 3 / 2, and t with 2 degrees of freedom (4.30, not 1.96).
    half = t.ppf(0.975, 2) * math.sqrt(np.var(np.log(rate.draws), ddof=1) * 3 / 2)
    assert math.log(figure.high / figure.value) == pytest.approx(half)
    assert math.log(figure.value / figure.low) == pytest.approx(half)


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"judges": 0}, "judges"),
        ({"reading_wpm": -5}, "reading_wpm"),
        ({"judge_accuracy": 1.2}, "judge_accuracy"),
        ({"cost_per_judge_hour": -1}, "cost_per_judge_hour"),
        ({"hours_per_judge_per_year": 9000}, "hours_per_judge_per_year"),
        ({"active_seconds_per_judgment": 0}, "active_seconds_per_judgment"),
        ({"tokens_per_word": float("nan")}, "tokens_per_word"),
    ],
)
def test_out_of_range_inputs_are_refused_by_name(overrides, field):
    with pytest.raises(EstimatorInputError) as excinfo:
        estimate(hand_inputs(**overrides))
    assert field in excinfo.value.errors


positive = st.floats(min_value=1e-3, max_value=1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    judges=positive,
    more=st.floats(min_value=1.0, max_value=1e3),
    wpm=positive,
    faster=st.floats(min_value=1.0, max_value=1e3),
)
def test_more_judges_never_means_fewer_judgments_and_faster_reading_never_fewer_pages(judges, more, wpm, faster):
    base = estimate(hand_inputs(judges=judges, reading_wpm=wpm))
    more_judges = estimate(hand_inputs(judges=judges * more, reading_wpm=wpm))
    quicker = estimate(hand_inputs(judges=judges, reading_wpm=wpm * faster))
    assert more_judges["judgments_per_year"].value >= base["judgments_per_year"].value * (1 - 1e-12)
    assert quicker["pages_per_year"].value >= base["pages_per_year"].value * (1 - 1e-12)
    assert quicker["judge_hours[50 million]"].value <= base["judge_hours[50 million]"].value * (1 + 1e-12)


def test_inputs_measured_from_an_experiment(ready_trial, judge, tiny_model_dir, spend_active_time):
    from judging.models import ModelConfig, Turn
    from judging.services import trial_open, verdict_submit
    from results.services import throughput_estimate

    ModelConfig.objects.filter(pk=ready_trial.experiment.debater_model_id).update(model_name=str(tiny_model_dir))
    Turn.objects.filter(trial=ready_trial).update(tokens_out=10, wall_seconds=2.0, model_settings={"batch_size": 4})
    trial_open(trial=ready_trial)  # the judge opens the trial, reads for a minute, then answers
    spend_active_time(ready_trial, judge, 60)
    verdict_submit(
        trial_id=ready_trial.pk,
        judge=judge,
        chosen=ready_trial.honest_side,
        probability=0.9,
        rationale="r",
    )
    inputs, r = throughput_estimate(
        values=DEFAULTS,
        experiment_ids=[ready_trial.experiment.pk],
        measure=[
            "words_per_trial",
            "active_seconds_per_judgment",
            "reading_wpm",
            "judge_accuracy",
            "tokens_per_word",
            "model_tokens_per_second",
        ],
    )
    words = (
        sum(len(t.text.split()) for t in ready_trial.turns.all())
        + len(ready_trial.question.text.split())
        + len(ready_trial.answer_text("A").split())
        + len(ready_trial.answer_text("B").split())
    )
    assert inputs.words_per_trial.value == words and inputs.active_seconds_per_judgment.value == 60
    assert inputs.reading_wpm.value == pytest.approx(words) and inputs.judge_accuracy.value == 1.0
    assert inputs.model_tokens_per_second.value == pytest.approx(20)  # 10 tokens x batch 4 / 2 s
    assert 1.0 < inputs.tokens_per_word.value < 3.0
    assert "measured from experiment" in inputs.active_seconds_per_judgment.source
    assert r["judgments_per_year"].value == pytest.approx(720e6 / 60)


def test_measuring_from_an_experiment_without_verdicts_says_so(ready_trial):
    from results.services import throughput_estimate

    with pytest.raises(EstimatorInputError) as excinfo:
        throughput_estimate(values=DEFAULTS, experiment_ids=[ready_trial.experiment.pk], measure=["judge_accuracy"])
    assert excinfo.value.errors == {"judge_accuracy": "the chosen experiments have no measurements of this yet"}


def test_the_page_estimates_and_reports_bad_input(admin_client, client, judge):
    url = "/results/throughput/"
    page = admin_client.get(url)
    assert page.status_code == 200 and "Estimate" in page.content.decode()
    body = admin_client.get(url, {"preset": "back-of-envelope"}).content.decode()
    assert "600,000,000,000 (6.00e+11)" in body  # pages per year, full-time year
    body = admin_client.get(url, {"preset": "back-of-envelope-quoted"}).content.decode()
    assert "100,000,000,000 (1.00e+11)" in body and "333" in body
    bad = admin_client.get(url, DEFAULTS | {"judges": "0", "judge_accuracy": "1.5"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "must be greater than 0" in text and "must be between 0 and 1" in text
    client.force_login(judge)
    assert client.get(url).status_code == 302  # judges are sent to the admin login


def test_the_command_prints_estimates_and_refuses_bad_input(db):
    out = io.StringIO()
    call_command("estimate_throughput", "--preset", "back-of-envelope", stdout=out)
    assert "Pages reviewed per year" in out.getvalue() and "6e+11" in out.getvalue()
    with pytest.raises(CommandError, match="--judges must be greater than 0"):
        call_command("estimate_throughput", "--judges", "0")


def test_the_faster_judge_figures_carry_the_measured_interval_too():
    measured = {"active_seconds_per_judgment": Quantity.measured([200, 300, 400, 250, 350], source="test")}
    r = estimate(build_inputs(DEFAULTS, measured))
    faster = r["10% faster: judgments_per_year"]
    assert faster.low < faster.value < faster.high
    assert faster.value == pytest.approx(r["judgments_per_year"].value * 1.1)


def test_a_number_typed_beside_a_preset_is_used_not_silently_replaced(admin_client):
    url = "/results/throughput/"
    # Chosen on its own, the preset fills the inputs with its numbers, shown in the form.
    filled = admin_client.get(url, {"preset": "back-of-envelope"})
    assert 'name="judges" value="10000000.0"' in filled.content.decode()
    # Then 200 judges typed beside it: used, and shown as set by hand; the preset's other numbers stay.
    data = {name: value for name, value in filled.context["form"].data.items()} | {"judges": "200"}
    response = admin_client.get(url, data)
    rows = {name: (value, source) for name, value, source in response.context["inputs"].rows()}
    assert rows["judges"] == (200.0, "set by hand")
    assert rows["hours_per_judge_per_year"][0] == 2000.0 and "back-of-envelope" in rows["hours_per_judge_per_year"][1]


def test_the_command_uses_inputs_given_beside_a_preset(db):
    out = io.StringIO()
    call_command("estimate_throughput", "--preset", "back-of-envelope", "--judges", "200", stdout=out)
    judges = [line for line in out.getvalue().splitlines() if line.strip().startswith("judges ")]
    assert judges and "200" in judges[0] and "set by hand" in judges[0], out.getvalue()


@pytest.mark.parametrize(
    "years, shown",
    [
        (8.33e-08, "2.63 seconds"),
        (0.5, "183 days"),
        (1 / 365.25 / 24 * 3, "3 hours"),
        (12.5, "12.5 years"),
        (2500, "2,500 years"),
    ],
)
def test_calendar_time_reads_in_a_human_unit(years, shown):
    from results.throughput import readable_years

    assert readable_years(years) == shown
