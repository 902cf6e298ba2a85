"""Practice trials and attention checks are never analysed (docs/onboarding.md): every table and figure the
analysis reads holds study trials only; practice and attention checks are exported apart, attention checks
feed the judge quality panel, and trials withdrawn from judges who did not qualify count as such in attrition."""

import csv
import io

import pytest
from django.core.management import call_command

from judging import exports
from judging.models import Experiment, Trial, Verdict
from judging.selectors import experiment_balance
from judging.services import experiment_launch, instructions_confirm, trial_open, verdict_submit
from results import quality
from results.attrition import attrition_report
from results.measure import measured_quantities, verdict_records
from tests.judging.onboarding import easy_set


def _other(side):
    return "B" if side == "A" else "A"


def judge_it(trial, right: bool):
    trial_open(trial=trial)
    chosen = trial.honest_side if right else _other(trial.honest_side)
    verdict_submit(trial_id=trial.pk, judge=trial.judge, chosen=chosen, probability=0.9, rationale="read it")


@pytest.fixture
def judged_study(make_model_config, make_experiment, judge, other_judge):
    """Judge-alone trials (live, judgeable without a model): 3 study trials, 2 practice trials and 1 attention
    check per judge, practice judged to a 50% gate. judy qualifies (1 of 2 practice right), then gets every study
    trial right and the attention check wrong; otto gets no practice right and is withdrawn. So any figure that
    counted a practice trial or an attention check would show judy below 100%."""
    experiment = make_experiment(
        make_model_config("m"),
        judges=[judge, other_judge],
        conditions=["naive"],
        num_questions=6,
        practice_trials=2,
        qualification_accuracy=0.5,
        attention_rate=0.34,
        attention_question_set=easy_set(),
    )
    experiment_launch(experiment=experiment)
    for who in (judge, other_judge):
        instructions_confirm(experiment_id=experiment.pk, judge=who)
    practice = list(experiment.trials.filter(role="practice", judge=judge).order_by("queue_position"))
    judge_it(practice[0], right=True)
    judge_it(practice[1], right=False)
    for trial in experiment.trials.filter(role="practice", judge=other_judge).order_by("queue_position"):
        judge_it(trial, right=False)
    while (trial := Trial.objects.queue_of(judge).first()) is not None:
        judge_it(trial, right=trial.role == "study")
    experiment.refresh_from_db()
    return experiment


def test_every_analysis_table_holds_the_study_only(judged_study, judge, other_judge):
    ids = [judged_study.pk]
    study = judged_study.trials.study()
    assert study.count() == 6 and Verdict.objects.filter(trial__experiment=judged_study).count() == 3 + 4 + 1
    rows = list(exports.trial_rows(ids))
    assert sorted(r["trial_id"] for r in rows) == sorted(study.values_list("pk", flat=True))
    assert {r["trial_role"] for r in rows} == {"study"}
    judged = [r for r in rows if r["verdict"]]
    assert len(judged) == 3 and all(r["correct"] for r in judged)
    assert {r["judge"] for r in judged} == {"judy"}
    assert [r["trial_role"] for r in exports.verdict_rows(ids)] == ["study"] * 3
    records = verdict_records(ids)
    assert len(records) == 3 and all(r["correct"] for r in records)
    # Measured throughput reads the same records: judy's accuracy there is 100% too.
    assert measured_quantities(ids, ["judge_accuracy"])["judge_accuracy"].value == 1.0
    # Practice and attention checks, apart, on request.
    practice = list(exports.trial_rows(ids, role="practice"))
    assert len(practice) == 4 and {r["trial_role"] for r in practice} == {"practice"}
    (check,) = [r for r in exports.trial_rows(ids, role="attention") if r["judge"] == "judy"]
    assert check["correct"] is False and check["question_set"] == "Attention checks"
    assert {r["question_set"] for r in exports.question_rows(ids, role="attention")} == {"Attention checks"}
    assert "Attention checks" not in {r["question_set"] for r in exports.question_rows(ids)}
    # The design balance is the study's.
    assert experiment_balance(judged_study) == experiment_balance_of(judged_study.trials.study())


def experiment_balance_of(trials):
    from judging.balance import balance_report
    from judging.protocols.registry import ARM_OF_CONDITION

    rows = [
        {
            "judge": t.judge_id,
            "question": t.question_id,
            "arm": ARM_OF_CONDITION[t.condition],
            "honest_side": t.honest_side,
            "first_speaker": t.first_speaker,
            "speaker_side": t.consultant_side or t.assistant_side,
            "pairing": t.honest_config_id or t.adversary_config_id,
        }
        for t in trials
    ]
    return balance_report(rows, ["naive"])


def test_the_analysis_page_counts_study_verdicts_only(judged_study, admin_client):
    response = admin_client.get(f"/results/analysis/?experiment={judged_study.pk}")
    assert response.status_code == 200
    context = response.context
    assert context["n_judged"] == 3
    (naive,) = context["by_arm"].values()
    assert naive.value == 1.0 and naive.n == 3  # a practice or attention verdict would pull it below 100%
    # Attrition: judy's 3 judged; otto's 3 study trials withdrawn, counted apart, not lost.
    total = context["attrition"].total
    assert (total.assigned, total.judged, total.not_qualified, total.lost) == (6, 3, 3, 0)
    page = response.content.decode()
    assert "did not qualify" in page


def test_attrition_counts_withdrawn_trials_as_not_qualified_never_lost():
    rows = [
        {"trial_id": 1, "judge": "a", "condition": "debate", "status": "judged", "verdict": "A"},
        {"trial_id": 2, "judge": "b", "condition": "debate", "status": "withdrawn", "verdict": None},
        {"trial_id": 3, "judge": "b", "condition": "consultancy", "status": "withdrawn", "verdict": None},
    ]
    report = attrition_report(rows, closed=True)
    assert report.total.not_qualified == 2 and report.total.lost == 0 and report.total.settled == 1
    assert not report.warnings


def test_the_quality_panel_shows_attention_accuracy_and_flags_failing_judges(judged_study, admin_client):
    ids = [judged_study.pk]
    (judy,) = quality.judge_quality(verdict_records(ids), verdict_records(ids, role="attention"))
    assert judy.verdicts == 3 and judy.accuracy.value == 1.0
    assert (judy.attention.n, judy.attention.value) == (1, 0.0)
    assert not [f for f in judy.flags if f.startswith("attention")]  # one check wrong is too few to flag
    response = admin_client.get(f"/results/analysis/judge-quality.csv?experiment={judged_study.pk}")
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["attention_checks"] == "1" and float(row["attention_accuracy"]) == 0.0


def record(judge, k, correct=True):
    return {
        "judge": judge,
        "question_id": f"q{k}",
        "words": 300,
        "characters": 1500,
        "seconds": 90.0,
        "seconds_on_page": 100.0,
        "chosen": "A" if k % 2 else "B",
        "correct": correct,
    }


def test_a_judge_failing_enough_attention_checks_is_flagged():
    study = [record(name, k) for name in ("ann", "bob", "cat") for k in range(10)]
    checks = (
        [record("ann", k, correct=k < 4) for k in range(5)]  # 4 of 5: at the threshold, not flagged
        + [record("bob", k, correct=k < 3) for k in range(5)]  # 3 of 5: flagged
        + [record("cat", k, correct=False) for k in range(2)]  # 0 of 2: too few to say
    )
    panel = {q.judge: q for q in quality.judge_quality(study, checks)}
    assert panel["ann"].flags == () and panel["ann"].attention.value == 0.8
    (flag,) = panel["bob"].flags
    assert flag.startswith("attention checks: 3 of 5 right, below 80%")
    assert panel["bob"].attention.low < 0.6 < panel["bob"].attention.high
    assert panel["cat"].flags == () and panel["cat"].attention.n == 2
    # Study figures are the study's: the checks change none of them.
    assert all(q.accuracy.value == 1.0 and q.verdicts == 10 for q in panel.values())


def test_practice_and_attention_checks_are_exported_separately(judged_study, admin_client, tmp_path):
    base = f"/results/export/?experiment={judged_study.pk}&format=csv"

    def rows(url):
        response = admin_client.get(url)
        assert response.status_code == 200, response.content
        return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert {r["trial_role"] for r in rows(base + "&table=trials")} == {"study"}
    practice = rows(base + "&table=trials&role=practice")
    assert len(practice) == 4 and {r["trial_role"] for r in practice} == {"practice"}
    assert len(rows(base + "&table=verdicts&role=attention")) == 1
    response = admin_client.get(base + "&table=trials&role=practice")
    assert "practice-trials.csv" in response["Content-Disposition"]
    for bad in ("&table=trials&role=everything", "&table=model_answers&role=practice"):
        response = admin_client.get(base + bad)
        assert response.status_code == 400 and "role must be one of" in response.json()["error"]
    out = tmp_path / "attention.csv"
    call_command("export_results", str(judged_study.pk), "--table", "trials", "--role", "attention", "-o", str(out))
    assert [r["trial_role"] for r in csv.DictReader(out.open())] == ["attention", "attention"]
    with pytest.raises(ValueError, match="holds the study only"):
        list(exports.iter_export("model_verdicts", "csv", [judged_study.pk], role="practice"))


def test_the_experiment_list_counts_study_trials(judged_study, admin_client):
    page = admin_client.get("/admin/judging/experiment/").content.decode()
    assert "3 / 6" in page  # study trials judged of the study's; not 8 of 12
    assert Experiment.objects.get().trials.count() == 12


def test_an_archive_carries_the_practice_and_attention_sets_and_the_onboardings(judged_study, judge, other_judge):
    from judging.archive import restore_archive, write_archive
    from judging.models import ModelConfig, Onboarding, QuestionSet

    archive = io.BytesIO()
    header = write_archive(judged_study, archive)
    assert header["rows"]["judging.QuestionSet"] == 2 and header["rows"]["judging.Onboarding"] == 2
    counts = {"trials": Trial.objects.count(), "onboardings": list(Onboarding.objects.values_list("qualified"))}
    experiment_id, attention_set = judged_study.pk, judged_study.attention_question_set
    judged_study.delete()
    ModelConfig.objects.all().delete()
    for question_set in QuestionSet.objects.all():
        question_set.delete()
    judge.delete(), other_judge.delete()
    archive.seek(0)
    restored = restore_archive(archive)
    assert restored.pk == experiment_id and restored.attention_question_set.name == attention_set.name
    assert Trial.objects.count() == counts["trials"]
    assert list(Onboarding.objects.values_list("qualified")) == counts["onboardings"]


def test_the_pay_report_counts_practice_work_but_not_withdrawn_trials_nor_practice_scores(judged_study):
    from decimal import Decimal

    from judging import pay_report, scoring

    rows = {
        r["judge"]: r
        for r in pay_report.pay_rows(judged_study, pay_report.Rates(per_active_hour=Decimal(10), per_point=Decimal(1)))
    }
    # judy: 2 practice, 3 study, 1 attention check, all judged; the bonus from the study and the check only.
    assert (rows["judy"]["trials"], rows["judy"]["judged"], rows["judy"]["scored_verdicts"]) == (6, 6, 4)
    expected = 3 * scoring.verdict_score("log", 0.9, True) + scoring.verdict_score("log", 0.9, False)
    assert rows["judy"]["score_total"] == pytest.approx(expected, abs=1e-4)
    # otto: his 2 practice trials; the 4 withdrawn trials were never his to judge.
    assert (rows["otto"]["trials"], rows["otto"]["judged"], rows["otto"]["scored_verdicts"]) == (2, 2, 0)


def test_one_slip_on_the_attention_checks_never_flags_a_judge():
    """A careful reader slips now and then: with 3 or 4 checks one wrong answer is below 80%, and flagging it would
    flag most attentive judges sooner or later. Two slips or more below 80% flag."""
    study = [record(name, k) for name in ("dan", "eve", "fay") for k in range(10)]
    checks = (
        [record("dan", k, correct=k < 2) for k in range(3)]  # 2 of 3: one slip
        + [record("eve", k, correct=k < 3) for k in range(4)]  # 3 of 4: one slip
        + [record("fay", k, correct=k < 1) for k in range(3)]  # 1 of 3: two slips
    )
    panel = {q.judge: q for q in quality.judge_quality(study, checks)}
    assert panel["dan"].flags == () and panel["eve"].flags == ()
    (flag,) = panel["fay"].flags
    assert flag.startswith("attention checks: 1 of 3 right, below 80%")
