"""Experiment results as rows: one per trial, one per turn; written as CSV or JSONL.

Rows are produced by generators and written incrementally, so an export never
holds a whole experiment in memory. For researchers only: these rows include
the honest side and the gold answer.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Iterable, Iterator

from .models import Trial, Turn

SCHEMA_VERSION = 1

TRIAL_FIELDS = [
    "schema_version", "experiment_id", "experiment", "protocol", "trial_id", "question_set", "question_id",
    "honest_side", "answer_a_index", "answer_b_index", "answer_a", "answer_b", "correct_index", "first_speaker",
    "turn_style", "rounds", "char_limit", "seed", "queue_position", "status", "judge", "verdict", "probability",
    "correct", "rationale", "seconds_on_page", "active_seconds", "verdict_at", "model_settings",
]

TURN_FIELDS = [
    "schema_version", "experiment_id", "trial_id", "question_id", "turn_index", "round", "speaker", "role",
    "status", "text", "prompt", "tokens_in", "tokens_out", "wall_seconds", "attempts", "error", "finished_at",
    "model_settings",
]


def _iso(value):
    return value.isoformat() if value is not None else None


def trial_rows(experiment_ids: Iterable[int]) -> Iterator[dict]:
    trials = (
        Trial.objects.filter(experiment_id__in=list(experiment_ids))
        .select_related("experiment", "question__question_set", "judge", "verdict", "experiment__debater_model")
        .order_by("experiment_id", "id")
    )
    for t in trials.iterator(chunk_size=500):
        e, q = t.experiment, t.question
        verdict = getattr(t, "verdict", None)
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": e.pk,
            "experiment": e.name,
            "protocol": e.protocol,
            "trial_id": t.pk,
            "question_set": q.question_set.name,
            "question_id": q.external_id,
            "honest_side": t.honest_side,
            "answer_a_index": t.answer_a_index,
            "answer_b_index": t.answer_b_index,
            "answer_a": q.choices[t.answer_a_index],
            "answer_b": q.choices[t.answer_b_index],
            "correct_index": q.correct_index,
            "first_speaker": t.first_speaker,
            "turn_style": e.turn_style,
            "rounds": e.rounds,
            "char_limit": e.char_limit,
            "seed": e.seed,
            "queue_position": t.queue_position,
            "status": t.status,
            "judge": t.judge.get_username(),
            "verdict": verdict.chosen if verdict else None,
            "probability": verdict.probability if verdict else None,
            "correct": verdict.correct if verdict else None,
            "rationale": verdict.rationale if verdict else None,
            "seconds_on_page": verdict.seconds_on_page if verdict else None,
            "active_seconds": verdict.active_seconds if verdict else None,
            "verdict_at": _iso(verdict.created_at) if verdict else None,
            "model_settings": e.debater_model.settings_snapshot(),
        }


def turn_rows(experiment_ids: Iterable[int]) -> Iterator[dict]:
    turns = (
        Turn.objects.filter(trial__experiment_id__in=list(experiment_ids))
        .select_related("trial__question")
        .order_by("trial__experiment_id", "trial_id", "index")
    )
    for turn in turns.iterator(chunk_size=500):
        trial = turn.trial
        if turn.speaker == "judge":
            role = "judge"
        else:
            role = "honest" if turn.speaker == trial.honest_side else "adversarial"
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": trial.experiment_id,
            "trial_id": trial.pk,
            "question_id": trial.question.external_id,
            "turn_index": turn.index,
            "round": turn.round,
            "speaker": turn.speaker,
            "role": role,
            "status": turn.status,
            "text": turn.text,
            "prompt": turn.prompt,
            "tokens_in": turn.tokens_in,
            "tokens_out": turn.tokens_out,
            "wall_seconds": turn.wall_seconds,
            "attempts": turn.attempts,
            "error": turn.error,
            "finished_at": _iso(turn.finished_at),
            "model_settings": turn.model_settings,
        }


TABLES = {"trials": (trial_rows, TRIAL_FIELDS), "turns": (turn_rows, TURN_FIELDS)}
FORMATS = ("csv", "jsonl")


def _csv_cell(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else value


def iter_export(table: str, fmt: str, experiment_ids: Iterable[int]) -> Iterator[str]:
    """Yield the export as text chunks (a header, then one chunk per row)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rows_for, fields = TABLES[table]
    rows = rows_for(experiment_ids)
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
