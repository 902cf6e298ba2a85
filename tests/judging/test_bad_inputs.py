"""Every bad input a clear error, nothing lost (issue 13, part 3)."""

import json
from unittest import mock

import pytest
from kombu.exceptions import OperationalError

from judging.models import Experiment, QuestionSet, Turn

# Transactional, as in production: the work is announced when the launch's transaction commits, before
# the admin writes its message (inside a test's outer transaction it would wait for the test's end).
broker = pytest.mark.django_db(transaction=True)

UNREACHABLE = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def post_action(admin_client, action, experiment):
    response = admin_client.post(
        "/admin/judging/experiment/", {"action": action, "_selected_action": [experiment.pk]}, follow=True
    )
    return response.content.decode()


@broker
def test_a_launch_whose_work_cannot_reach_the_broker_says_so_and_how_to_recover(
    admin_client, make_model_config, make_experiment
):
    experiment = make_experiment(make_model_config("m"))
    with mock.patch("generation.tasks.generate_turns.apply_async", side_effect=UNREACHABLE):
        page = post_action(admin_client, "launch", experiment)
    assert "launched 4 trials, but the work could not be sent to the workers" in page
    assert "Re-queue unfinished generation" in page and "queued for the workers" not in page
    # Nothing is lost: the trials and their pending turns are there for the re-queue.
    assert Experiment.objects.get(pk=experiment.pk).status == "launched"
    assert Turn.objects.filter(trial__experiment=experiment, status="pending").count() == 16
    with mock.patch("generation.tasks.generate_turns.apply_async") as send:
        page = post_action(admin_client, "requeue", experiment)
    assert send.called and "the work is queued for the workers" in page and "could not be sent" not in page


@broker
def test_a_launch_whose_work_is_sent_says_it_is_queued(admin_client, make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"))
    with mock.patch("generation.tasks.generate_turns.apply_async"):
        page = post_action(admin_client, "launch", experiment)
    assert "launched 4 trials; the work is queued for the workers." in page
    with mock.patch("generation.tasks.generate_turns.apply_async", side_effect=UNREACHABLE):
        page = post_action(admin_client, "requeue", experiment)
    assert "could not be sent to the workers" in page


GOOD = {"id": "q1", "question": "Is it?", "choices": ["yes", "no"], "correct_index": 0}


def import_lines(*objects_or_lines, set_name="set"):
    from judging.importers import import_jsonl_file

    lines = [o if isinstance(o, str) else json.dumps(o) for o in objects_or_lines]
    return import_jsonl_file(set_name=set_name, lines=lines)


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [21, 100_000])
def test_deeply_nested_json_is_refused_with_its_line_and_nothing_is_imported(depth):
    from judging.importers import QuestionImportError

    nested = '{"id": "q2", "question": "Q", "choices": ["a", "b"], "correct_index": 0, "metadata": {"x": '
    line = nested + "[" * depth + "]" * depth + "}}"
    with pytest.raises(QuestionImportError, match="line 2: nested more than 20 levels deep"):
        import_lines(GOOD, line)
    assert not QuestionSet.objects.exists()


@pytest.mark.django_db
def test_the_admin_upload_of_a_deeply_nested_line_is_a_clear_error_not_a_server_error(admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    line = json.dumps(GOOD) + "\n" + '{"id": "q2", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    response = admin_client.post(
        "/admin/judging/questionset/import/",
        {"set_name": "nested", "file": SimpleUploadedFile("q.jsonl", line.encode())},
    )
    assert response.status_code == 200
    assert "Nothing was imported. line 2: nested more than 20 levels deep" in response.content.decode()
    assert not QuestionSet.objects.exists()


@pytest.mark.django_db
def test_an_overlong_line_is_refused_before_decoding():
    from judging.importers import MAX_LINE_CHARACTERS, QuestionImportError

    huge = json.dumps(GOOD | {"id": "q2", "passage": "x" * MAX_LINE_CHARACTERS})
    with pytest.raises(QuestionImportError, match="line 2: longer than 2,000,000 characters"):
        import_lines(GOOD, huge)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["n" * 201, "   ", "a\x00b"])
def test_a_set_name_that_cannot_be_stored_is_a_clear_error_from_the_command_too(tmp_path, name):
    from django.core.management import CommandError, call_command

    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(CommandError, match="a question set's name must be 1 to 200 characters"):
        call_command("import_questions", name, str(path))
    assert not QuestionSet.objects.exists()


@pytest.mark.django_db
def test_text_is_stored_exactly_as_imported():
    question = {
        "id": " q1 ",
        "question": "\u3000Full-width space and\u00a0no-break space\u00a0",
        "choices": ["\u00a0yes", "no\u3000", " maybe"],
        "correct_index": 0,
        "passage": "\u3000Indented passage.\n",
    }
    question_set = import_lines(question)
    stored = question_set.questions.get()
    assert stored.external_id == "q1"  # an id is a key: trimmed
    assert (stored.text, stored.choices, stored.passage) == (
        question["question"],
        question["choices"],
        question["passage"],
    )
