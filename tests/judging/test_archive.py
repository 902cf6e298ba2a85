"""Per-experiment archives: written, restored into an installation without the experiment, analysed the same."""

import gzip
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from judging.archive import ArchiveError, restore_archive, write_archive
from judging.models import Experiment, ModelAnswer, ModelConfig, QuestionSet, Trial, Turn, Verdict
from judging.services import experiment_launch, trial_open, verdict_submit
from tests.pages import without_csrf_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_experiment(make_model_config, make_experiment, judge, other_judge):
    """Debate (pre-generated) and judge-alone trials, every one judged, and the model alone's answers."""
    scorer = make_model_config("scorer")
    debater = make_model_config("debater", best_of_n=2, temperature=0.7, best_of_n_judge=scorer)
    experiment = make_experiment(
        debater,
        judges=[judge, other_judge],
        conditions=["debate", "naive"],
        num_questions=8,
        judgments_per_question=2,
        primary_comparisons=["above-chance:debate"],
    )
    experiment_launch(experiment=experiment)
    for turn in Turn.objects.filter(trial__experiment=experiment):
        Turn.objects.filter(pk=turn.pk).update(status="done", text=f"Argument {turn.pk} of {turn.speaker}.")
    Trial.objects.filter(experiment=experiment, status="generating").update(status="ready")
    k = 0
    for person in (judge, other_judge):
        while (trial := Trial.objects.queue_of(person).first()) is not None:  # in the planned order
            trial_open(trial=trial)
            chosen = trial.honest_side if k % 3 else ("B" if trial.honest_side == "A" else "A")
            verdict_submit(trial_id=trial.pk, judge=person, chosen=chosen, probability=0.6 + k % 4 / 10, rationale="r")
            k += 1
    for trial in Trial.objects.filter(experiment=experiment, condition="naive").order_by("question_id"):
        ModelAnswer.objects.get_or_create(
            experiment=experiment,
            question=trial.question,
            model_config=debater,
            defaults={
                "answer_a_index": trial.answer_a_index,
                "answer_b_index": trial.answer_b_index,
                "honest_side": trial.honest_side,
                "probability_a": 0.3 + trial.question_id % 5 / 10,
                "probability_a_swapped": 0.5,
            },
        )
    return experiment


def analysis_page(client, experiment_id: int) -> str:
    """The analysis page, without the per-response CSRF token of its log-out form."""
    page = client.get(reverse("results:analysis"), {"experiment": experiment_id}).content.decode()
    return without_csrf_tokens(page)


def forget(experiment: Experiment, *users) -> None:
    """Remove the experiment and everything it used, as if restoring into another installation."""
    configs = list(ModelConfig.objects.order_by("-pk"))
    question_set = experiment.question_set
    experiment.delete()
    for config in configs:  # best-of-N judges after the configurations that use them
        config.delete()
    question_set.delete()
    for user in users:
        user.delete()


def test_an_archived_experiment_restores_with_the_same_analysis(admin_client, judged_experiment, judge, other_judge):
    before = analysis_page(admin_client, judged_experiment.pk)
    assert "debate" in before and Verdict.objects.count() == 16
    archive = io.BytesIO()
    header = write_archive(judged_experiment, archive)
    assert header["rows"]["judging.Verdict"] == 16 and header["rows"]["judging.ModelConfig"] == 2
    document = json.loads(gzip.decompress(archive.getvalue()))
    assert document["users"] == ["judy", "otto"]
    assert "password" not in json.dumps(document)  # users travel by name only
    counts = {model: model.objects.count() for model in (Trial, Turn, Verdict, ModelAnswer)}
    experiment_id = judged_experiment.pk
    forget(judged_experiment, judge, other_judge)
    assert not Experiment.objects.exists() and not QuestionSet.objects.exists()

    archive.seek(0)
    restored = restore_archive(archive)
    assert restored.pk == experiment_id and restored.status == "launched"
    assert {model: model.objects.count() for model in counts} == counts
    assert analysis_page(admin_client, experiment_id) == before
    # The judges exist again, by name, inactive and without a usable password.
    judges = list(restored.judges.order_by("username"))
    assert [j.username for j in judges] == ["judy", "otto"]
    assert not any(j.is_active or j.has_usable_password() for j in judges)
    # The plan stays frozen, and new rows take fresh ids.
    assert restored.primary_comparisons == ["above-chance:debate"]
    assert ModelConfig.objects.create(name="new", model_name="m").pk > max(
        ModelConfig.objects.exclude(name="new").values_list("pk", flat=True)
    )


def test_restoring_where_the_rows_exist_changes_nothing_and_says_why(judged_experiment):
    archive = io.BytesIO()
    write_archive(judged_experiment, archive)
    archive.seek(0)
    counts = Trial.objects.count(), Verdict.objects.count()
    with pytest.raises(ArchiveError, match="already holds rows with the archive's ids"):
        restore_archive(archive)
    assert (Trial.objects.count(), Verdict.objects.count()) == counts


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not gzip at all", "not an experiment archive"),
        (gzip.compress(b"[1, 2]", mtime=0), "not an experiment archive of this platform"),
        (
            gzip.compress(
                json.dumps({"format": "debate-platform-experiment-archive", "version": 99}).encode(), mtime=0
            ),
            "version 99",
        ),
    ],
    # Named, not shown: pytest-xdist's processes must collect the same test ids (gzip's header holds a time).
    ids=["not gzip", "gzip of other JSON", "a later archive version"],
)
def test_a_file_that_is_not_an_archive_is_refused(content, message):
    with pytest.raises(ArchiveError, match=message):
        restore_archive(io.BytesIO(content))


def test_the_commands_write_and_restore_an_archive(judged_experiment, judge, other_judge, tmp_path):
    path = tmp_path / "study.json.gz"
    out = io.StringIO()
    call_command("archive_experiment", judged_experiment.name, "-o", str(path), stdout=out)
    assert "archived to" in out.getvalue() and "16 Verdict" in out.getvalue()
    with pytest.raises(CommandError, match="nothing restored: this installation already holds"):
        call_command("restore_experiment", str(path))
    forget(judged_experiment, judge, other_judge)
    out = io.StringIO()
    call_command("restore_experiment", str(path), stdout=out)
    assert "restored Test experiment" in out.getvalue() and "16 trials" in out.getvalue()
