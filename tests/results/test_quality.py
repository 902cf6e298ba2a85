"""The per-judge quality panel (results/quality.py): figures, flags and their wording, the page and its CSV."""

import csv
import io

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.multitest import multipletests

from results import quality


def record(judge, k, *, chosen="A", correct=True, characters=3000, seconds=120.0, on_page=None):
    return {
        "judge": judge,
        "question_id": f"q{k}",
        "characters": characters,
        "seconds": seconds,
        "seconds_on_page": seconds if on_page is None else on_page,
        "chosen": chosen,
        "correct": correct,
    }


def careful(judge, n=20, seed=0):
    """A judge who reads at about 1,500 characters a minute and picks A about half the time."""
    rng = np.random.default_rng(seed)
    return [
        record(judge, k, chosen="AB"[k % 2], correct=bool(rng.random() < 0.7), seconds=float(rng.uniform(90, 150)))
        for k in range(n)
    ]


def test_a_careful_judge_has_figures_with_intervals_and_no_flags():
    (q,) = quality.judge_quality(careful("ann"))
    assert q.verdicts == 20 and q.flags == () and q.fast_verdicts == 0
    assert q.share_a.value == 0.5 and q.position_p == pytest.approx(1.0)
    own = careful("ann")
    # Reading rate: all characters over all active minutes (a ratio of sums).
    expected = sum(r["characters"] for r in own) / sum(r["seconds"] / 60 for r in own)
    assert q.reading_rate.value == pytest.approx(expected)
    assert q.reading_rate.low < expected < q.reading_rate.high < quality.READING_CEILING_CHARS_PER_MINUTE
    seconds = sorted(r["seconds"] for r in own)
    assert q.median_active_seconds.value == pytest.approx(np.median(seconds))
    # The median's interval is a pair of order statistics of the judge's own times.
    assert q.median_active_seconds.low in seconds and q.median_active_seconds.high in seconds
    assert q.accuracy.low < q.accuracy.value < q.accuracy.high


def test_the_reading_rates_interval_stays_above_zero_at_a_few_verdicts():
    """Three verdicts read at very different rates: a symmetric interval would reach below zero."""
    own = [record("cy", 0, seconds=600.0), record("cy", 1, seconds=10.0), record("cy", 2, seconds=15.0)]
    rate = quality.reading_rate(own)
    assert rate.has_interval and 0 < rate.low < rate.value < rate.high
    assert rate.value == pytest.approx(9000 / (625 / 60))
    assert rate.low * rate.high == pytest.approx(rate.value**2)  # symmetric on the log scale


def test_each_implausible_behaviour_is_flagged_and_explained():
    skimmer = [record("sam", k, chosen="AB"[k % 2], characters=5000 + 200 * k, seconds=30.0) for k in range(12)]
    hasty = careful("hal")[:10] + [record("hal", 10 + k, chosen="AB"[k % 2], seconds=4.0) for k in range(2)]
    always_a = [record("abe", k, chosen="A", seconds=100.0) for k in range(20)]
    panel = {q.judge: q for q in quality.judge_quality(skimmer + hasty + always_a + careful("ann"))}
    assert panel["ann"].flags == ()
    (flag,) = panel["sam"].flags
    assert flag.startswith("reads faster than a human can: 12,200 characters a minute") and "ceiling of 2,500" in flag
    # Every verdict at the same rate: no interval, but the rate itself is far above the ceiling.
    (same,) = quality.judge_quality(
        [record("sue", k, chosen="AB"[k % 2], characters=6000, seconds=30) for k in range(4)]
    )
    assert not same.reading_rate.has_interval and same.flags[0].startswith("reads faster than a human can: 12,000")
    (flag,) = panel["hal"].flags
    assert flag == "2 verdicts within 10 s of opening the trial: too soon to have read the question and answers"
    (flag,) = panel["abe"].flags
    # Exact binomial test of 20 of 20, Holm-adjusted across the four judges (as statsmodels adjusts).
    raw = [panel[j].position_p for j in sorted(panel)]
    assert panel["abe"].position_p == pytest.approx(binomtest(20, 20, 0.5).pvalue)
    holm = multipletests(raw, method="holm")[1]
    assert [panel[j].position_p_adjusted for j in sorted(panel)] == pytest.approx(list(holm))
    assert flag.startswith("answer position: chose A in 20 of 20 verdicts") and "Holm-adjusted across 4 judges" in flag
    assert panel["abe"].share_a.high == 1.0 and panel["abe"].share_a.low == pytest.approx(
        binomtest(20, 20).proportion_ci(method="exact").low
    )


def test_a_lopsided_but_not_significant_share_is_not_flagged_after_adjustment():
    # 8 of 10 on A: p = 0.11 alone, so no flag; the share and its exact interval are still shown.
    (q,) = quality.judge_quality([record("amy", k, chosen="A" if k < 8 else "B") for k in range(10)])
    assert q.share_a.value == 0.8 and q.position_p > 0.05 and q.flags == ()


def test_what_cannot_be_measured_is_said_not_reported():
    untimed = [record("one", 0, seconds=None, on_page=200.0), record("one", 1, seconds=None, on_page=90.0)]
    (q,) = quality.judge_quality(untimed)
    assert not q.reading_rate.has_interval and q.reading_rate.method == "no active time measured"
    assert q.median_active_seconds.method == "no timed verdicts"
    (q,) = quality.judge_quality([record("two", k) for k in range(3)])
    assert not q.median_active_seconds.has_interval and "too few" in q.median_active_seconds.method
    row = next(quality.panel_rows([q]))
    assert list(row) == quality.PANEL_COLUMNS
    assert row["median_active_seconds"] is None and row["median_active_seconds_low"] is None


def test_the_panel_is_on_the_analysis_page_and_in_its_csv_for_researchers_only(
    admin_client, client, make_model_config, make_experiment, judge, other_judge
):
    from audit.models import AuditEvent
    from judging.models import Trial, Verdict
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), judges=[judge, other_judge], num_questions=8)
    experiment_launch(experiment=experiment)
    for trial in experiment.trials.all():
        # judy answers A every time within 3 s; otto reads for two minutes and follows the honest side.
        hasty = trial.judge == judge
        Verdict.objects.create(
            trial=trial,
            judge=trial.judge,
            chosen="A" if hasty else trial.honest_side,
            probability=0.8,
            rationale="r",
            seconds_on_page=3 if hasty else 120,
            active_seconds=3 if hasty else 110,
        )
    experiment.trials.update(status=Trial.Status.JUDGED)
    url = f"/results/analysis/?experiment={experiment.pk}"
    page = admin_client.get(url).content.decode()
    panel = page[page.index('id="quality"') : page.index("</table>", page.index('id="quality"'))]
    judy = panel[panel.index("<td>judy</td>") : panel.index("<td>otto</td>")]
    assert "4 verdicts within 10 s of opening the trial" in judy and 'class="flagged"' in panel
    otto = panel[panel.index("<td>otto</td>") :]
    assert "<td>none</td>" in otto and "100.0%" in otto
    link = f'href="/results/analysis/judge-quality.csv?experiment={experiment.pk}"'
    assert link in page

    response = admin_client.get(f"/results/analysis/judge-quality.csv?experiment={experiment.pk}")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["judge"] for r in rows] == ["judy", "otto"] and list(rows[0]) == quality.PANEL_COLUMNS
    assert rows[0]["verdicts_within_10_s_of_opening"] == "4" and "within 10 s" in rows[0]["flags"]
    assert rows[1]["flags"] == "" and float(rows[1]["accuracy"]) == 1.0
    assert AuditEvent.objects.filter(summary__contains="Exported judge_quality as csv").exists()

    assert admin_client.get("/results/analysis/judge-quality.csv?experiment=999").status_code == 400
    client.force_login(judge)  # a judge never sees the panel or its CSV
    assert client.get(f"/results/analysis/judge-quality.csv?experiment={experiment.pk}").status_code == 302
    assert client.get(url).status_code == 302
