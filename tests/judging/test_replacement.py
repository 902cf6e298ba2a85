"""Failed generation: a trial that failed for good is replaced in its design cell, and the failure is kept."""

import csv
import io
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from generation.session import record_failure
from judging import selectors
from judging.models import MAX_ATTEMPTS, Trial, Turn
from judging.services import experiment_launch, failed_trials_replace, failed_turns_retry, trials_settle

pytestmark = pytest.mark.django_db

DESIGN_CELL = (
    "experiment_id",
    "judge_id",
    "protocol",
    "condition",
    "honest_side",
    "first_speaker",
    "consultant_side",
    "assistant_side",
    "queue_position",
    "live",
    "honest_config_id",
    "adversary_config_id",
)


@pytest.fixture
def experiment(make_model_config, make_experiment, judge, other_judge):
    """Pre-generated debate and consultancy: 4 of the set's 12 questions, one judgment each, two judges."""
    experiment = make_experiment(
        make_model_config("m"), judges=[judge, other_judge], conditions=["debate", "consultancy"], num_questions=4
    )
    experiment_launch(experiment=experiment)
    return experiment


def fail_for_good(trial):
    """As a worker would: every attempt at the trial's first turn fails until it has none left."""
    for _ in range(MAX_ATTEMPTS):
        turn = trial.turns.order_by("index").first()
        token = Turn.objects.filter(pk=turn.pk).claim("worker-1")
        record_failure(turn, token, "RuntimeError: the model server refused the request")
    trial.refresh_from_db()
    assert trial.status == Trial.Status.FAILED
    return trial


def replace(experiment, django_capture_on_commit_callbacks):
    """Replace the experiment's failed trials; returns what was done and the generation tasks sent."""
    with mock.patch("generation.tasks.generate_turns.apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            done = failed_trials_replace(experiment_id=experiment.pk)
    return done, send.call_count


def cell(trial):
    return {name: getattr(trial, name) for name in DESIGN_CELL}


def test_a_failed_trial_is_replaced_in_its_cell_on_the_same_question_and_stays_failed(
    experiment, judge, django_capture_on_commit_callbacks
):
    failed = fail_for_good(experiment.trials.filter(judge=judge, protocol="consultancy").first())
    done, sent = replace(experiment, django_capture_on_commit_callbacks)
    assert (done.same_question, done.new_question, done.refused) == (1, 0, [])
    assert sent == 1  # its generation is queued
    replacement = failed.replacement
    assert replacement.replaces_id == failed.pk and cell(replacement) == cell(failed)
    assert (replacement.question_id, replacement.answer_a_index, replacement.answer_b_index) == (
        failed.question_id,
        failed.answer_a_index,
        failed.answer_b_index,
    )
    assert replacement.status == Trial.Status.GENERATING
    assert list(replacement.turns.values_list("status", flat=True)) == [Turn.Status.PENDING] * experiment.rounds
    assert Trial.objects.get(pk=failed.pk).status == Trial.Status.FAILED  # kept, as attrition
    # Once generated, it is in the judge's queue at the failed trial's place.
    replacement.turns.update(status=Turn.Status.DONE, text="An argument.")
    trials_settle([replacement.pk])
    assert [t.pk for t in selectors.judge_queue(judge)] == [replacement.pk]
    # The export keeps both, the replacement pointing at the failed trial.
    out = io.StringIO()
    call_command("export_results", str(experiment.pk), stdout=out)
    rows = {int(r["trial_id"]): r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows[failed.pk]["status"] == "failed" and rows[failed.pk]["replaces_trial_id"] == ""
    assert rows[replacement.pk]["replaces_trial_id"] == str(failed.pk)


def test_a_question_that_fails_twice_gives_way_to_one_the_judge_has_not_had(
    experiment, judge, django_capture_on_commit_callbacks
):
    first = fail_for_good(experiment.trials.filter(judge=judge).first())
    replace(experiment, django_capture_on_commit_callbacks)
    second = fail_for_good(first.replacement)  # the same question fails again: it is to blame
    done, _ = replace(experiment, django_capture_on_commit_callbacks)
    assert (done.same_question, done.new_question) == (0, 1)
    third = Trial.objects.get(replaces=second)
    assert cell(third) == cell(first)
    had = set(
        Trial.objects.filter(experiment=experiment, judge=judge).exclude(pk=third.pk).values_list("question", flat=True)
    )
    assert third.question_id not in had
    # From the experiment's own sample (the other judge's questions), so every arm shares the question pool.
    assert third.question_id in set(
        Trial.objects.filter(experiment=experiment).exclude(judge=judge).values_list("question", flat=True)
    )
    # The correct answer on the same side as planned, against one of the question's incorrect choices.
    question = third.question
    correct = third.answer_a_index if third.honest_side == "A" else third.answer_b_index
    wrong = third.answer_b_index if third.honest_side == "A" else third.answer_a_index
    assert correct == question.correct_index and wrong != correct and 0 <= wrong < len(question.choices)


def test_with_the_exposure_registry_a_replacement_question_is_new_to_the_judge_everywhere(
    make_model_config, make_experiment, judge, django_capture_on_commit_callbacks
):
    config = make_model_config("m")
    earlier = make_experiment(config, judges=[judge], name="earlier", num_questions=7, seed=5)
    experiment_launch(experiment=earlier)
    experiment = make_experiment(config, judges=[judge], name="later", num_questions=4, avoid_reexposure=True)
    experiment_launch(experiment=experiment)
    first = fail_for_good(experiment.trials.first())
    replace(experiment, django_capture_on_commit_callbacks)
    fail_for_good(first.replacement)
    done, _ = replace(experiment, django_capture_on_commit_callbacks)
    # 12 questions: 7 met earlier, 4 in this experiment; the one left is the only possible replacement.
    assert (done.new_question, done.refused) == (1, [])
    met = set(Trial.objects.filter(judge=judge).exclude(replaces__replaces=first).values_list("question", flat=True))
    assert Trial.objects.get(replaces__replaces=first).question_id not in met


def test_replacing_again_adds_nothing_and_a_retry_leaves_replaced_trials_failed(
    experiment, judge, other_judge, django_capture_on_commit_callbacks
):
    replaced = fail_for_good(experiment.trials.filter(judge=judge).first())
    replace(experiment, django_capture_on_commit_callbacks)
    done, sent = replace(experiment, django_capture_on_commit_callbacks)
    assert (done.same_question, done.new_question, sent) == (0, 0, 0)
    assert Trial.objects.filter(experiment=experiment).count() == 5
    # A trial that failed and was not replaced is retried; the replaced one stays failed, in the data.
    retried = fail_for_good(experiment.trials.filter(judge=other_judge).first())
    with mock.patch("generation.tasks.generate_turns.apply_async"):
        assert failed_turns_retry(experiment_id=experiment.pk) == 1
    assert Trial.objects.get(pk=retried.pk).status == Trial.Status.GENERATING
    assert Trial.objects.get(pk=replaced.pk).status == Trial.Status.FAILED
    assert replaced.turns.filter(status=Turn.Status.FAILED).count() == 1


def test_when_the_judge_has_had_every_question_nothing_is_made_and_the_reason_is_given(
    make_model_config, make_experiment, django_capture_on_commit_callbacks
):
    experiment = make_experiment(make_model_config("m"), num_questions=12)  # the whole set, one judge
    experiment_launch(experiment=experiment)
    first = fail_for_good(experiment.trials.first())
    replace(experiment, django_capture_on_commit_callbacks)
    fail_for_good(first.replacement)
    done, sent = replace(experiment, django_capture_on_commit_callbacks)
    assert (done.same_question, done.new_question, sent) == (0, 0, 0)
    assert len(done.refused) == 1 and "has had every question" in done.refused[0]
    assert Trial.objects.filter(experiment=experiment).count() == 13


def test_the_admin_action_replaces_failed_trials(admin_client, experiment, judge, django_capture_on_commit_callbacks):
    failed = fail_for_good(experiment.trials.filter(judge=judge).first())
    with mock.patch("generation.tasks.generate_turns.apply_async"):
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                "/admin/judging/experiment/",
                {"action": "replace_failed", "_selected_action": [experiment.pk]},
                follow=True,
            )
    assert "1 failed trial(s) replaced (1 on the same question, 0 on a new one)" in response.content.decode()
    assert Trial.objects.get(replaces=failed).judge == judge


def test_the_database_allows_one_replacement_per_trial_and_one_unfailed_trial_per_judge_and_question(experiment):
    trial = experiment.trials.first()
    fields = {name: getattr(trial, name) for name in DESIGN_CELL} | {
        "question_id": trial.question_id,
        "answer_a_index": trial.answer_a_index,
        "answer_b_index": trial.answer_b_index,
    }

    def refused(write):
        try:
            with transaction.atomic():
                write()
        except IntegrityError:
            return True
        return False

    assert refused(lambda: Trial.objects.create(**fields))  # the same question twice for one judge
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.FAILED)
    assert not refused(lambda: Trial.objects.create(**fields, replaces=trial))  # once it has failed
    assert refused(lambda: Trial.objects.create(**fields | {"status": "failed"}, replaces=trial))
