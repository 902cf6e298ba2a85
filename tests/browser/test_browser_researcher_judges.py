"""A researcher in Chromium (docs/recruitment.md), a staff member with only the permissions the pages ask for: a
malformed CSV of judges is refused whole with its lines and creates nothing; a CSV of 100 judges creates them as
the experiment's judges; after some have judged, the time and pay report is downloaded as a CSV and read back."""

import csv
import os
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from judging import pay_report
from judging.models import Trial
from judging.services import experiment_launch, trial_open, verdict_submit
from tests.browser.test_browser_judge import browser, new_context  # noqa: F401

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
User = get_user_model()

JUDGES = 100
# A chosen password is hashed at full strength (about 0.4 s each): one is enough to show it is kept.
CHOSEN_PASSWORD = "chosen-pass-4821"


@pytest.fixture
def researcher(django_user_model):
    """Staff, not a superuser: may add users (the CSV import), and view invites (where the pages are linked) and
    experiments (the pay report)."""
    user = django_user_model.objects.create_user(username="rita", password="researcher-pass-1", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=["auth", "judging"],
            codename__in=["add_user", "view_invite", "view_experiment"],
        )
    )
    return user


def open_from_the_invites(page, base_url, link_text):
    page.goto(base_url + reverse("admin:judging_invite_changelist"))
    page.click(f"text={link_text}")


def test_a_researcher_creates_100_judges_from_a_csv_and_downloads_the_time_and_pay_report(
    browser,  # noqa: F811
    live_server,
    researcher,
    make_model_config,
    make_experiment,
    spend_active_time,
    tmp_path,
):
    # Judge-alone trials (judgeable without a model); 12 questions × 9 judgments: every judge gets a trial or two.
    experiment = make_experiment(
        make_model_config("m"), judges=[], conditions=["naive"], num_questions=12, judgments_per_question=9
    )
    context = new_context(browser, bypass_csp=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", "rita")
    page.fill("#id_password", "researcher-pass-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{reverse('admin:index')}")

    # A file with a duplicate username and a line of three fields under a two-column header: refused whole.
    users = User.objects.count()
    bad = tmp_path / "bad-judges.csv"
    bad.write_text("username,email\nann,ann@example.org\nbob,bob@example.org\nANN,\ncarl,carl@example.org,extra\n")
    open_from_the_invites(page, live_server.url, "Create judges from a CSV")
    page.wait_for_url(f"**{reverse('admin:judging_judges_import')}")
    page.set_input_files("#id_file", bad)
    page.select_option("#id_experiment", str(experiment.pk))
    page.click("#import-judges input[type=submit]")
    error = page.locator("#import-judges .errorlist").inner_text()
    assert error.startswith("Nothing was created.")
    assert "line 4: username 'ANN' is also on line 2" in error
    assert "line 5: 3 fields where the header has 2" in error
    assert User.objects.count() == users and experiment.judges.count() == 0

    # 100 judges, one with a password of their own, the rest generated and shown once.
    names = [f"crowd{n:03d}" for n in range(JUDGES)]
    rows = [f"{name},{name}@example.org," for name in names]
    rows[0] += CHOSEN_PASSWORD
    good = tmp_path / "judges.csv"
    good.write_text("username,email,password\n" + "\n".join(rows) + "\n")
    page.set_input_files("#id_file", good)
    page.select_option("#id_experiment", str(experiment.pk))
    page.click("#import-judges input[type=submit]")
    page.wait_for_selector("#import-summary")
    assert page.inner_text("#import-summary") == f"Created {JUDGES} judges, judges of “{experiment.name}”."
    assert page.locator("#generated-passwords tbody tr").count() == JUDGES - 1
    assert sorted(experiment.judges.values_list("username", flat=True)) == names
    assert User.objects.count() == users + JUDGES
    assert User.objects.get(username="crowd000").check_password(CHOSEN_PASSWORD)
    with page.expect_download() as passwords:
        page.click("#download-passwords")
    generated = list(csv.DictReader(passwords.value.path().open(newline="")))
    assert [row["username"] for row in generated] == names[1:]
    assert User.objects.get(username="crowd001").check_password(generated[0]["password"])

    # The study runs; three judges give a verdict each, with active time on the server's clock.
    experiment_launch(experiment=experiment)
    worked = {"crowd000": 90, "crowd001": 45, "crowd002": 30}  # seconds of active time
    for username, seconds in worked.items():
        judge = User.objects.get(username=username)
        trial = Trial.objects.queue_of(judge).first()
        trial_open(trial=trial)
        spend_active_time(trial, judge, seconds)
        verdict_submit(trial_id=trial.pk, judge=judge, chosen=trial.honest_side, probability=0.8, rationale="r")

    open_from_the_invites(page, live_server.url, "Time and pay report")
    page.wait_for_url(f"**{reverse('admin:judging_pay_report')}")
    page.select_option("#id_experiment", str(experiment.pk))
    page.fill("#id_per_active_hour", "12.00")
    page.fill("#id_per_point", "0")
    page.click("#pay-form input[type=submit]")
    page.wait_for_selector("#pay-report")
    assert page.locator("#pay-report tbody tr").count() == JUDGES
    with page.expect_download() as report:
        page.click("#pay-csv")
    assert report.value.suggested_filename.startswith(f"experiment-{experiment.pk}-pay-")
    with report.value.path().open(newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == list(pay_report.COLUMNS)
        paid = list(reader)
    assert [row["judge"] for row in paid] == names  # one row per judge, by username
    trials = Counter(Trial.objects.filter(experiment=experiment).values_list("judge__username", flat=True))
    for row in paid:
        assert int(row["trials"]) == trials[row["judge"]] >= 1
        seconds = worked.get(row["judge"], 0)
        assert (row["judged"], row["skipped"]) == (str(int(seconds > 0)), "0")
        assert float(row["active_seconds"]) == seconds
        assert row["base_pay"] == f"{seconds * 12 / 3600:.2f}" == row["total_pay"]  # no bonus at 0 per point
    assert sum(int(row["trials"]) for row in paid) == 12 * 9
    context.close()
