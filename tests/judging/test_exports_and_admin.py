"""Researcher side: admin launch and progress, exports from admin and the command."""

import csv
import io
import json

import pytest
from django.core.management import call_command

from judging.models import Experiment, Trial
from judging.services import trial_open, verdict_submit


def export_command(*args):
    out = io.StringIO()
    call_command("export_results", *args, stdout=out)
    return out.getvalue()


def test_trial_export_has_one_row_per_trial_with_everything_researchers_need(judged_trial):
    experiment = judged_trial.experiment
    rows = list(csv.DictReader(io.StringIO(export_command(str(experiment.pk)))))
    assert len(rows) == experiment.trials.count() == 4
    row = next(r for r in rows if r["trial_id"] == str(judged_trial.pk))
    assert row["question_id"] == judged_trial.question.external_id
    assert row["protocol"] == "debate" and row["honest_side"] == judged_trial.honest_side
    assert row["answer_a_index"] == str(judged_trial.answer_a_index)
    assert row["judge"] == "judy" and row["verdict"] == judged_trial.honest_side
    assert row["probability"] == "0.85" and row["correct"] == "True"
    assert row["rationale"] == 'Convincing <b>quotes</b>, "really"'
    assert float(row["seconds_on_page"]) >= 0 and row["active_seconds"] == "30.0"
    assert json.loads(row["active_seconds_by_round"]) == {"2": 30.0} and row["active_time_source"] == "server"
    assert json.loads(row["model_settings"])["model_name"] == "SECRET-MODEL-NAME"
    unjudged = [r for r in rows if r["trial_id"] != str(judged_trial.pk)]
    assert all(r["verdict"] == "" and r["correct"] == "" for r in unjudged)


def test_jsonl_exports_of_trials_and_turns(judged_trial):
    experiment = judged_trial.experiment
    trials = [json.loads(line) for line in export_command(experiment.name, "--format", "jsonl").splitlines()]
    assert len(trials) == 4 and {t["trial_id"] for t in trials} == set(experiment.trials.values_list("id", flat=True))
    judged = next(t for t in trials if t["trial_id"] == judged_trial.pk)
    assert judged["correct"] is True and judged["probability"] == 0.85
    turns = [
        json.loads(line)
        for line in export_command(str(experiment.pk), "--table", "turns", "--format", "jsonl").splitlines()
    ]
    assert len(turns) == 16
    mine = [t for t in turns if t["trial_id"] == judged_trial.pk]
    assert [t["turn_index"] for t in mine] == [0, 1, 2, 3]
    assert {t["role"] for t in mine} == {"honest", "adversarial"}
    honest = next(t for t in mine if t["role"] == "honest")
    assert honest["speaker"] == judged_trial.honest_side and honest["prompt"] == "SECRET-PROMPT"


def test_export_command_writes_a_file_and_refuses_unknown_experiments(judged_trial, tmp_path):
    from django.core.management.base import CommandError

    target = tmp_path / "turns.csv"
    export_command(str(judged_trial.experiment.pk), "--table", "turns", "--output", str(target))
    assert len(list(csv.DictReader(target.open()))) == 16
    with pytest.raises(CommandError, match="no experiment"):
        export_command("99999")


def test_admin_launches_an_experiment_and_shows_progress(
    admin_client, make_model_config, make_experiment, django_capture_on_commit_callbacks
):
    from unittest import mock

    experiment = make_experiment(make_model_config("m"))
    with mock.patch("generation.tasks.generate_turns.apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                "/admin/judging/experiment/", {"action": "launch", "_selected_action": [experiment.pk]}, follow=True
            )
    assert "launched 4 trials" in response.content.decode()
    send.assert_called_once_with(args=[experiment.pk, "generation"], countdown=None, queue="generation")
    assert Trial.objects.filter(experiment=experiment).count() == 4
    page = admin_client.get("/admin/judging/experiment/").content.decode()
    assert "0 / 16" in page and "0 / 4" in page
    # Launching twice is refused with a message, and creates nothing.
    response = admin_client.post(
        "/admin/judging/experiment/", {"action": "launch", "_selected_action": [experiment.pk]}, follow=True
    )
    assert "already been launched" in response.content.decode()
    assert Trial.objects.filter(experiment=experiment).count() == 4


def test_admin_export_actions_download_csv_and_jsonl(admin_client, judged_trial):
    experiment = judged_trial.experiment
    response = admin_client.post(
        "/admin/judging/experiment/", {"action": "export_trials_csv", "_selected_action": [experiment.pk]}
    )
    assert response["Content-Type"] == "text/csv"
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 4 and any(r["verdict"] for r in rows)
    response = admin_client.post(
        "/admin/judging/experiment/", {"action": "export_turns_jsonl", "_selected_action": [experiment.pk]}
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 16 and json.loads(lines[0])["schema_version"] == 4


def test_admin_pages_render(admin_client, judged_trial):
    for url in [
        "/admin/",
        "/admin/judging/experiment/",
        f"/admin/judging/experiment/{judged_trial.experiment.pk}/change/",
        "/admin/judging/trial/",
        f"/admin/judging/trial/{judged_trial.pk}/change/",
        "/admin/judging/turn/",
        "/admin/judging/verdict/",
        "/admin/judging/questionset/",
        "/admin/judging/question/",
        "/admin/judging/modelconfig/",
        "/admin/judging/modelconfig/add/",
        "/admin/judging/experiment/add/",
        "/admin/judging/questionset/import/",
    ]:
        assert admin_client.get(url).status_code == 200, url
    assert "/results/throughput/" in admin_client.get("/admin/").content.decode()


def test_model_config_validation_names_the_bad_placeholder(db):
    from django.core.exceptions import ValidationError

    from judging.models import ModelConfig

    config = ModelConfig(name="x", model_name="m", prompt_template="Argue {my_anser} now", temperature=-1)
    with pytest.raises(ValidationError) as excinfo:
        config.full_clean()
    assert "unknown placeholder {my_anser}" in str(excinfo.value)
    assert "temperature" in excinfo.value.message_dict


def test_experiment_status_is_launched_after_launch(judged_trial):
    assert Experiment.objects.get(pk=judged_trial.experiment.pk).status == Experiment.Status.LAUNCHED


def test_experiment_validation_refuses_more_questions_than_the_set_has(make_model_config, question_set):
    from django.core.exceptions import ValidationError

    experiment = Experiment(
        name="too big", question_set=question_set, num_questions=13, rounds=0, debater_model=make_model_config("m")
    )
    with pytest.raises(ValidationError) as excinfo:
        experiment.full_clean()
    assert excinfo.value.message_dict["num_questions"] == ["the question set has only 12 questions"]
    assert "rounds" in excinfo.value.message_dict


@pytest.mark.parametrize("table", ["trials", "turns", "verdicts", "questions"])
def test_every_table_writes_its_documented_columns_in_order_in_every_format(judged_trial, table, tmp_path):
    import pyarrow.parquet as pq

    from judging import exports

    ids = [judged_trial.experiment.pk]
    rows_for, columns = exports.TABLES[table]
    rows = list(rows_for(ids))
    assert rows and all(list(r) == list(columns) for r in rows)
    header = next(csv.reader(io.StringIO("".join(exports.iter_export(table, "csv", ids)))))
    assert header == list(columns)
    exports.write_export(table, "parquet", ids, tmp_path / "x.parquet")
    parquet = pq.read_table(tmp_path / "x.parquet")
    assert parquet.column_names == list(columns) and parquet.num_rows == len(rows)
    streamed = b"".join(exports.iter_export(table, "parquet", ids))
    assert pq.read_table(io.BytesIO(streamed)).num_rows == len(rows)


def test_the_questions_table_has_the_full_text_and_every_choice_of_each_question_used(judged_trial):
    from judging import exports

    question = judged_trial.question
    question.choices = ["\u3000shown one", "shown two\u00a0", "never shown"]
    question.save()
    rows = list(exports.question_rows([judged_trial.experiment.pk]))
    used = set(judged_trial.experiment.trials.values_list("question__external_id", flat=True))
    assert {r["question_id"] for r in rows} == used and len(rows) == len(used)
    [row] = [r for r in rows if r["question_id"] == question.external_id]
    assert row["question"] == question.text and row["passage"] == question.passage
    assert row["choices"] == ["\u3000shown one", "shown two\u00a0", "never shown"]  # all, exactly as stored
    assert row["correct_index"] == question.correct_index


def test_verdict_table_has_one_row_per_verdict(judged_trial):
    rows = [
        json.loads(line)
        for line in export_command(
            str(judged_trial.experiment.pk), "--table", "verdicts", "--format", "jsonl"
        ).splitlines()
    ]
    assert len(rows) == 1
    assert rows[0]["trial_id"] == judged_trial.pk and rows[0]["correct"] is True and rows[0]["judge"] == "judy"


def test_parquet_to_standard_output_is_refused(judged_trial):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--output"):
        export_command(str(judged_trial.experiment.pk), "--format", "parquet")


def test_the_export_url_serves_researchers_only(client, admin_user, judged_trial, judge):
    import base64

    url = f"/results/export/?experiment={judged_trial.experiment.pk}&table=verdicts&format=csv"
    anonymous = client.get(url)
    assert anonymous.status_code == 401 and "Basic" in anonymous["WWW-Authenticate"]
    wrong = client.get(url, HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"admin:nope").decode())
    assert wrong.status_code == 401
    client.force_login(judge)
    assert client.get(url).status_code == 403
    client.logout()
    basic = "Basic " + base64.b64encode(b"admin:password").decode()  # pytest-django's admin_user
    response = client.get(url, HTTP_AUTHORIZATION=basic)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1 and rows[0]["correct"] == "True"
    assert client.get(url.replace("csv", "xlsx"), HTTP_AUTHORIZATION=basic).status_code == 400
    assert client.get("/results/export/?experiment=999", HTTP_AUTHORIZATION=basic).status_code == 404
    assert client.get("/results/export/?experiment=x", HTTP_AUTHORIZATION=basic).status_code == 400


def test_turn_export_includes_best_of_n_candidates_when_present(judged_trial):
    turn = judged_trial.turns.order_by("index").first()
    turn.candidates = [{"text": "kept", "score": 0.8}, {"text": "dropped", "score": 0.3}]
    turn.save()
    rows = [
        json.loads(line)
        for line in export_command(
            str(judged_trial.experiment.pk), "--table", "turns", "--format", "jsonl"
        ).splitlines()
    ]
    exported = next(r for r in rows if r["trial_id"] == judged_trial.pk and r["turn_index"] == turn.index)
    assert exported["candidates"] == turn.candidates
    assert all(r["candidates"] == [] for r in rows if r is not exported)


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(ready_trial, judge):
    trial_open(trial=ready_trial)
    verdict_submit(
        trial_id=ready_trial.pk, judge=judge, chosen="A", probability=0.7, rationale='=HYPERLINK("http://evil","click")'
    )
    rows = list(csv.DictReader(io.StringIO(export_command(str(ready_trial.experiment.pk), "--table", "verdicts"))))
    assert rows[0]["rationale"] == '\'=HYPERLINK("http://evil","click")'
