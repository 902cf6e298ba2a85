"""Judges created from a CSV, and an experiment's time and pay report (docs/recruitment.md)."""

import csv
import io
import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import identify_hasher
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from judging import judge_import, pay_report, recruitment
from judging.models import Invite, Trial
from judging.services import experiment_launch, trial_open, trial_skip, verdict_submit

pytestmark = pytest.mark.django_db
User = get_user_model()


def parse(text: str | bytes):
    return judge_import.parse_judges_csv(text.encode() if isinstance(text, str) else text)


def test_a_file_with_optional_columns_a_bom_and_blank_lines_creates_every_judge(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), judges=[])
    text = "\ufeffusername,email,password\r\nann,ann@example.org,chosen-pass-1\r\n\r\nbob,,\r\n"
    created = judge_import.judges_create(parse(text), experiment=experiment)
    assert [(c.username, bool(c.generated_password)) for c in created] == [("ann", False), ("bob", True)]
    ann, bob = User.objects.get(username="ann"), User.objects.get(username="bob")
    assert ann.email == "ann@example.org" and ann.check_password("chosen-pass-1")
    assert bob.check_password(created[1].generated_password) and len(created[1].generated_password) >= 20
    assert set(experiment.judges.all()) == {ann, bob}
    assert [r.username for r in parse("username\ncy\n")] == ["cy"]  # the other columns are optional


def test_a_generated_password_is_rehashed_at_full_strength_at_the_first_login(client):
    (created,) = judge_import.judges_create(parse("username\nbob\n"))
    assert (
        identify_hasher(User.objects.get(username="bob").password).safe_summary(
            User.objects.get(username="bob").password
        )["iterations"]
        == judge_import.GENERATED_PASSWORD_ITERATIONS
    )
    response = client.post(reverse("login"), {"username": "bob", "password": created.generated_password})
    assert response.status_code == 302
    stored = User.objects.get(username="bob").password
    assert identify_hasher(stored).safe_summary(stored)["iterations"] > judge_import.GENERATED_PASSWORD_ITERATIONS


@pytest.mark.parametrize(
    "data, problems",
    [
        ("username,email\nann,\nbob,\nAnn,\n", ["line 4: username 'Ann' is also on line 2"]),
        ("username\nann\njudy\n", ["line 3: username 'judy' already has an account"]),
        ("username,email\nann,a@example.org,extra\n", ["line 2: 3 fields where the header has 2"]),
        ("username,email\nann,not-an-email\n", ["line 2: 'not-an-email' is not an email address"]),
        ("username,password\nann,short\n", ["line 2: password: This password is too short"]),
        ("username\nbad name!\n", ["line 2: username 'bad name!': Enter a valid username"]),
        ("name,email\nann,\n", ["line 1: the header must be username"]),
        ("username,phone\nann,1\n", ["line 1: the header must be username"]),
        ("username\n", ["line 1: the file has a header but no judges"]),
        (b"username\nann\nb\xe9a\n", ["line 3: not UTF-8 text (byte 15)"]),
        ('username\n"ann\n', ["line 2: unexpected end of data"]),
    ],
)
def test_a_bad_file_is_refused_whole_with_the_line_and_nothing_is_created(judge, data, problems):
    users = User.objects.count()
    with pytest.raises(judge_import.JudgeImportError) as refused:
        judge_import.judges_create(parse(data))
    assert len(refused.value.problems) == len(problems)
    for problem, expected in zip(refused.value.problems, problems, strict=True):
        assert problem.startswith(expected), problem
    assert User.objects.count() == users


def test_a_file_giving_more_passwords_than_a_request_can_hash_is_refused():
    lines = ["username,password"] + [f"j{n},chosen-pass-{n}" for n in range(judge_import.MAX_CHOSEN_PASSWORDS + 1)]
    with pytest.raises(judge_import.JudgeImportError, match=f"line {len(lines)}: more than 40 passwords given"):
        parse("\n".join(lines))
    assert len(parse("\n".join(lines[:-1]))) == judge_import.MAX_CHOSEN_PASSWORDS


def test_every_problem_of_a_file_is_listed_in_line_order():
    with pytest.raises(judge_import.JudgeImportError) as refused:
        parse("username,email\nann,bad\nok,\nbob,x,y\nann,\n")
    assert [p.split(":")[0] for p in refused.value.problems] == ["line 2", "line 4", "line 5"]


def test_judges_cannot_be_added_to_a_launched_experiment(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"))
    experiment_launch(experiment=experiment)
    with pytest.raises(judge_import.JudgeImportError, match="was launched"):
        judge_import.judges_create(parse("username\nann\n"), experiment=experiment)
    assert not User.objects.filter(username="ann").exists()


def test_the_admin_refuses_a_bad_file_with_its_line(admin_client):
    upload = SimpleUploadedFile("judges.csv", b"username\nann\nann\n", content_type="text/csv")
    response = admin_client.post(reverse("admin:judging_judges_import"), {"file": upload})
    assert response.status_code == 400
    assert "Nothing was created. line 3: username &#x27;ann&#x27; is also on line 2" in response.content.decode()
    assert not User.objects.filter(username="ann").exists()


def pay_of(rows, username):
    (row,) = [r for r in rows if r["judge"] == username]
    return row


def test_the_report_pays_active_time_and_the_score_above_chance(judged_trial, judge, other_judge):
    """judged_trial: 30 s of active time, correct at 0.85 under the log rule."""
    experiment = judged_trial.experiment
    rates = pay_report.Rates(per_active_hour=Decimal("12.00"), per_point=Decimal("2.00"))
    row = pay_of(pay_report.pay_rows(experiment, rates), "judy")
    points = math.log(0.85) - math.log(0.5)
    assert row["trials"] == 4 and row["judged"] == 1 and row["skipped"] == 0
    assert row["active_seconds"] == 30.0 and row["scored_verdicts"] == 1
    assert row["points_above_chance"] == pytest.approx(points, abs=1e-4)
    assert row["base_pay"] == Decimal("0.10")  # 30 s at 12 an hour
    assert row["bonus"] == Decimal(str(round(2 * points, 2)))  # 1.06
    assert row["total_pay"] == row["base_pay"] + row["bonus"]


def test_a_total_below_chance_earns_no_bonus_and_skipped_trials_are_counted(
    ready_trial, judge, spend_active_time, plan_first
):
    trial_open(trial=ready_trial)
    spend_active_time(ready_trial, judge, 60)
    wrong = "B" if ready_trial.honest_side == "A" else "A"
    verdict_submit(trial_id=ready_trial.pk, judge=judge, chosen=wrong, probability=0.95, rationale="sure")
    other = Trial.objects.filter(experiment=ready_trial.experiment, judge=judge).exclude(pk=ready_trial.pk).first()
    Trial.objects.filter(pk=other.pk).update(status=Trial.Status.READY)
    trial_skip(trial_id=Trial.objects.queue_of(judge).first().pk, judge=judge, reason="unreadable")
    rates = pay_report.Rates(per_active_hour=Decimal("10"), per_point=Decimal("5"))
    row = pay_of(pay_report.pay_rows(ready_trial.experiment, rates), "judy")
    assert row["points_above_chance"] < 0 and row["bonus"] == Decimal("0.00")
    assert row["skipped"] == 1 and row["base_pay"] == Decimal("0.17")  # 60 s at 10 an hour


def test_the_report_names_participants_and_leaves_out_seats_nobody_took(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"), judges=[], conditions=["naive"])
    invite = recruitment.invite_create(
        experiment=experiment, kind=Invite.Kind.CROWD, max_uses=3, expires_at=timezone.now() + timedelta(days=1)
    )
    judge, _ = recruitment.seat_take_crowd(token=invite.token, participant=recruitment.Participant("PID-1"))
    experiment_launch(experiment=experiment)
    rows = pay_report.pay_rows(experiment, pay_report.Rates(Decimal(1), Decimal(1)))
    assert [(r["judge"], r["participant_id"]) for r in rows] == [(judge.username, "PID-1")]


def test_a_researcher_creates_100_judges_from_a_csv_and_downloads_the_time_and_pay_report(
    admin_client, make_model_config, make_experiment, spend_active_time
):
    experiment = make_experiment(make_model_config("m"), judges=[], conditions=["naive"], num_questions=12)
    lines = ["username,email,password"] + [f"crowd{n:03d},crowd{n:03d}@example.org," for n in range(100)]
    upload = SimpleUploadedFile("judges.csv", "\n".join(lines).encode(), content_type="text/csv")
    response = admin_client.post(reverse("admin:judging_judges_import"), {"file": upload, "experiment": experiment.pk})
    page = response.content.decode()
    assert response.status_code == 200 and "Created 100 judges" in page
    assert experiment.judges.count() == 100
    event = AuditEvent.objects.get(summary__startswith="Created 100 judges from judges.csv")
    assert len(event.detail["judges"]) == 100 and event.detail["passwords_generated"] == 100

    # The generated passwords, downloaded from the page that showed them, log the judges in.
    generated = page.split('name="generated" value="')[1].split('"')[0].replace("&quot;", '"')
    download = admin_client.post(reverse("admin:judging_judges_passwords"), {"generated": generated})
    passwords = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(passwords) == 100 and passwords[0]["username"] == "crowd000"
    assert User.objects.get(username="crowd000").check_password(passwords[0]["password"])

    experiment_launch(experiment=experiment)
    trial = Trial.objects.filter(experiment=experiment).order_by("judge__username", "queue_position").first()
    judge = trial.judge
    trial_open(trial=trial)
    spend_active_time(trial, judge, 90)
    verdict_submit(trial_id=trial.pk, judge=judge, chosen=trial.honest_side, probability=0.9, rationale="r")

    query = {"experiment": experiment.pk, "per_active_hour": "12.00", "per_point": "1.00"}
    page = admin_client.get(reverse("admin:judging_pay_report"), query).content.decode()
    assert 'id="pay-report"' in page and "crowd099" in page
    response = admin_client.get(reverse("admin:judging_pay_report"), query | {"format": "csv"})
    assert response["Content-Disposition"].startswith(f'attachment; filename="experiment-{experiment.pk}-pay-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 100 and list(rows[0]) == list(pay_report.COLUMNS)
    paid = {r["judge"]: r for r in rows}[judge.username]
    points = math.log(0.9) - math.log(0.5)
    assert (paid["judged"], paid["active_seconds"], paid["base_pay"]) == ("1", "90.0", "0.30")
    assert paid["bonus"] == f"{round(points, 2):.2f}"
    assert sum(int(r["trials"]) for r in rows) == 12
    assert AuditEvent.objects.filter(kind="export", detail__table="pay", detail__experiments=[experiment.pk]).exists()


def test_the_report_opened_from_the_experiment_list_asks_for_the_rates(admin_client, ready_trial):
    experiment = ready_trial.experiment
    response = admin_client.post(
        reverse("admin:judging_experiment_changelist"), {"action": "pay", "_selected_action": [experiment.pk]}
    )
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert 'name="per_active_hour"' in page and "This field is required" not in page
    assert 'id="pay-report"' not in page  # no rates yet, no figures
    assert f'<option value="{experiment.pk}" selected>' in page
    assert "Time and pay report" in admin_client.get(reverse("admin:index")).content.decode()
