"""Experiment results as tables (trials, turns, verdicts), written as CSV, JSONL or Parquet.

Rows come from database cursors in chunks (``values_list(...).iterator()``)
and are written incrementally, so an export of millions of rows runs in
bounded memory (see benchmarks/export_benchmark.py). For researchers only:
these rows include the honest side and the gold answer. Columns and their
types are documented in docs/exports.md; SCHEMA_VERSION changes whenever a
column is renamed, removed or changes meaning.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from typing import Iterable, Iterator

from django.db.models import Count, OuterRef, Q, Subquery
from django.http import StreamingHttpResponse

from . import baseline_verdicts
from .models import Experiment, ModelAnswer, ModelConfig, ModelVerdict, Question, Trial, Turn, Verdict

SCHEMA_VERSION = 4
CHUNK = 5000

# Column name -> type ("int", "float", "str", "bool", "json"): the Parquet
# schema and the documentation are derived from these.
TRIAL_COLUMNS = {
    "schema_version": "int",
    "experiment_id": "int",
    "experiment": "str",
    "protocol": "str",
    "trial_id": "int",
    "question_set": "str",
    "question_id": "str",
    "honest_side": "str",
    "answer_a_index": "int",
    "answer_b_index": "int",
    "answer_a": "str",
    "answer_b": "str",
    "correct_index": "int",
    "first_speaker": "str",
    "turn_style": "str",
    "rounds": "int",
    "char_limit": "int",
    "seed": "int",
    "queue_position": "int",
    "status": "str",
    "judge": "str",
    "verdict": "str",
    "probability": "float",
    "correct": "bool",
    "rationale": "str",
    "seconds_on_page": "float",
    "active_seconds": "float",
    "verdict_at": "str",
    "model_settings": "json",
    "mode": "str",
    "rounds_spoken": "int",
    "ended_by_judge": "bool",
    "leanings": "json",
    "scoring_rule": "str",
    "score": "float",
    "active_seconds_by_round": "json",
    "consultant_side": "str",
    "assistant_side": "str",
    "condition": "str",
    "opened_at": "str",
    "skipped_at": "str",
    "skip_reason": "str",
    "replaces_trial_id": "int",
    "active_time_source": "str",
    "honest_config": "str",
    "adversarial_config": "str",
    "honest_person": "str",
    "adversarial_person": "str",
    "trial_role": "str",
}
TURN_COLUMNS = {
    "schema_version": "int",
    "experiment_id": "int",
    "trial_id": "int",
    "question_id": "str",
    "turn_index": "int",
    "round": "int",
    "speaker": "str",
    "role": "str",
    "status": "str",
    "text": "str",
    "prompt": "str",
    "tokens_in": "int",
    "tokens_out": "int",
    "wall_seconds": "float",
    "attempts": "int",
    "error": "str",
    "finished_at": "str",
    "model_settings": "json",
    "addressed_to": "json",
    "first_text_at": "str",
    "response_delay_seconds": "float",
    "candidates": "json",
    "queue_wait_seconds": "float",
    "ttft_seconds": "float",
    "passage_chars_dropped": "int",
    "speech_end": "str",
    "tokens_past_limit": "int",
    "tokens_prefilled": "int",
    "trial_role": "str",
}
VERDICT_COLUMNS = {
    "schema_version": "int",
    "experiment_id": "int",
    "trial_id": "int",
    "question_id": "str",
    "judge": "str",
    "honest_side": "str",
    "verdict": "str",
    "probability": "float",
    "correct": "bool",
    "rationale": "str",
    "seconds_on_page": "float",
    "active_seconds": "float",
    "verdict_at": "str",
    "score": "float",
    "active_time_source": "str",
    "trial_role": "str",
}

# Which trials an export holds (docs/onboarding.md): the study's by default, the only ones any analysis reads;
# practice trials and attention checks are exported separately, on request.
ROLES = tuple(Trial.Role.values)
STUDY = Trial.Role.STUDY
# The tables that hold trials' rows, so can be asked for another role; the others are the study's only.
ROLE_TABLES = ("questions", "trials", "turns", "verdicts")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown trial role {role!r}; choose one of {', '.join(ROLES)}")


def _iso(value):
    return value.isoformat() if value is not None else None


# Keys of a configuration's provenance that are not among the settings every turn records.
PROVENANCE_ONLY = (
    "queue",
    "system_prompt",
    "prompt_template",
    "consultant_system_prompt",
    "consultant_prompt_template",
    "adapter_sha256",
    "best_of_n_judge_config",
)


def launched_settings(experiment_id: int, model_id: int) -> dict:
    """The debater configuration's settings as frozen at launch (Experiment.provenance); the current
    configuration only for a draft, which has no record yet."""
    provenance = Experiment.objects.values_list("provenance", flat=True).get(pk=experiment_id) or {}
    debater = provenance.get("configs", {}).get("debater")
    if debater is None:
        return ModelConfig.objects.get(pk=model_id).settings_snapshot()
    return {key: value for key, value in debater.items() if key not in PROVENANCE_ONLY}


def launched_config_names(experiment_id: int) -> dict[int, str]:
    """Configuration id -> name as frozen at launch (provenance ``speakers``); names as they are now for a
    draft, or an experiment launched before line-ups were recorded."""
    provenance = Experiment.objects.values_list("provenance", flat=True).get(pk=experiment_id) or {}
    frozen = {int(pk): config["config_name"] for pk, config in provenance.get("speakers", {}).items()}
    debater = provenance.get("configs", {}).get("debater")
    if debater is not None and debater.get("config_id") is not None:
        frozen.setdefault(debater["config_id"], debater["config_name"])
    used = Trial.objects.filter(experiment_id=experiment_id)
    ids = {*used.values_list("honest_config_id", flat=True).distinct()}
    ids |= {*used.values_list("adversary_config_id", flat=True).distinct()}
    now = dict(ModelConfig.objects.filter(pk__in=ids - set(frozen) - {None}).values_list("pk", "name"))
    return frozen | now


def trial_rows(experiment_ids: Iterable[int], role: str = STUDY) -> Iterator[dict]:
    """One row per trial of the experiments in ``role`` (study trials by default: what the analysis reads)."""
    _check_role(role)
    fields = [
        "experiment_id",
        "experiment__name",
        "protocol",
        "id",
        "question__question_set__name",
        "question__external_id",
        "honest_side",
        "answer_a_index",
        "answer_b_index",
        "question__choices",
        "question__correct_index",
        "first_speaker",
        "experiment__turn_style",
        "experiment__rounds",
        "experiment__char_limit",
        "experiment__seed",
        "queue_position",
        "status",
        "judge__username",
        "verdict__chosen",
        "verdict__probability",
        "verdict__rationale",
        "verdict__seconds_on_page",
        "verdict__active_seconds",
        "verdict__created_at",
        "experiment__debater_model_id",
        "live",
        "ended_by_judge",
        "leanings",
        "rounds_spoken",
        "experiment__scoring_rule",
        "verdict__score",
        "verdict__active_seconds_by_round",
        "consultant_side",
        "assistant_side",
        "condition",
        "opened_at",
        "skipped_at",
        "skip_reason",
        "replaces_id",
        "verdict__active_time_source",
        "honest_config_id",
        "adversary_config_id",
        "honest_person__username",
        "adversary_person__username",
    ]
    last_round = (
        Turn.objects.filter(trial=OuterRef("pk"), status=Turn.Status.DONE)
        .exclude(speaker="judge")
        .order_by("-round")
        .values("round")[:1]
    )
    rows = (
        Trial.objects.filter(experiment_id__in=list(experiment_ids), role=role)
        .annotate(rounds_spoken=Subquery(last_round))
        .order_by("experiment_id", "id")
        .values_list(*fields)
        .iterator(chunk_size=CHUNK)
    )
    settings_cache: dict[int, dict] = {}
    names_cache: dict[int, dict[int, str]] = {}
    for (
        experiment_id,
        name,
        protocol,
        trial_id,
        set_name,
        qid,
        honest,
        a_index,
        b_index,
        choices,
        correct_index,
        first,
        style,
        rounds,
        limit,
        seed,
        position,
        status,
        judge,
        chosen,
        probability,
        rationale,
        seconds,
        active,
        verdict_at,
        model_id,
        live,
        ended_by_judge,
        leanings,
        rounds_spoken,
        rule,
        score,
        by_round,
        consultant,
        assistant,
        condition,
        opened_at,
        skipped_at,
        skip_reason,
        replaces_id,
        time_source,
        honest_config_id,
        adversary_config_id,
        honest_person,
        adversary_person,
    ) in rows:
        if experiment_id not in settings_cache:
            settings_cache[experiment_id] = launched_settings(experiment_id, model_id)
            names_cache[experiment_id] = launched_config_names(experiment_id)
        names = names_cache[experiment_id]
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": experiment_id,
            "experiment": name,
            "protocol": protocol,
            "trial_id": trial_id,
            "question_set": set_name,
            "question_id": qid,
            "honest_side": honest,
            "answer_a_index": a_index,
            "answer_b_index": b_index,
            "answer_a": choices[a_index],
            "answer_b": choices[b_index],
            "correct_index": correct_index,
            "first_speaker": first,
            "turn_style": style,
            "rounds": rounds,
            "char_limit": limit,
            "seed": seed,
            "queue_position": position,
            "status": status,
            "judge": judge,
            "verdict": chosen,
            "probability": probability,
            "correct": (chosen == honest) if chosen else None,
            "rationale": rationale,
            "seconds_on_page": seconds,
            "active_seconds": active,
            "verdict_at": _iso(verdict_at),
            "model_settings": settings_cache[experiment_id],
            "mode": "live" if live else "pregenerated",
            "rounds_spoken": rounds_spoken or 0,
            "ended_by_judge": ended_by_judge,
            "leanings": leanings,
            "scoring_rule": rule,
            "score": score,
            "active_seconds_by_round": by_round,
            "consultant_side": consultant or None,
            "assistant_side": assistant or None,
            "condition": condition,
            "opened_at": _iso(opened_at),
            "skipped_at": _iso(skipped_at),
            "skip_reason": skip_reason or None,
            "replaces_trial_id": replaces_id,
            "active_time_source": time_source,
            "honest_config": names.get(honest_config_id),
            "adversarial_config": names.get(adversary_config_id),
            "honest_person": honest_person,
            "adversarial_person": adversary_person,
            "trial_role": role,
        }


def turn_rows(experiment_ids: Iterable[int], role: str = STUDY) -> Iterator[dict]:
    _check_role(role)
    fields = [
        "trial__experiment_id",
        "trial_id",
        "trial__question__external_id",
        "index",
        "round",
        "speaker",
        "trial__honest_side",
        "status",
        "text",
        "prompt",
        "tokens_in",
        "tokens_out",
        "wall_seconds",
        "attempts",
        "error",
        "finished_at",
        "model_settings",
        "addressed_to",
        "first_text_at",
        "response_delay_seconds",
        "candidates",
        "queue_wait_seconds",
        "ttft_seconds",
        "passage_chars_dropped",
        "speech_end",
        "tokens_past_limit",
        "tokens_prefilled",
    ]
    rows = (
        Turn.objects.filter(trial__experiment_id__in=list(experiment_ids), trial__role=role)
        .order_by("trial__experiment_id", "trial_id", "index")
        .values_list(*fields)
        .iterator(chunk_size=CHUNK)
    )
    for (
        experiment_id,
        trial_id,
        qid,
        index,
        round_number,
        speaker,
        honest,
        status,
        text,
        prompt,
        tokens_in,
        tokens_out,
        wall,
        attempts,
        error,
        finished,
        model_settings,
        addressed_to,
        first_text_at,
        delay,
        candidates,
        queue_wait,
        ttft,
        passage_chars_dropped,
        speech_end,
        tokens_past_limit,
        tokens_prefilled,
    ) in rows:
        if speaker == "judge":
            role = "judge"
        else:  # a debater or consultant is honest when it argues for the correct position
            role = "honest" if speaker == honest else "adversarial"
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": experiment_id,
            "trial_id": trial_id,
            "question_id": qid,
            "turn_index": index,
            "round": round_number,
            "speaker": speaker,
            "role": role,
            "status": status,
            "text": text,
            "prompt": prompt,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "wall_seconds": wall,
            "attempts": attempts,
            "error": error,
            "finished_at": _iso(finished),
            "model_settings": model_settings,
            "addressed_to": addressed_to,
            "first_text_at": _iso(first_text_at),
            "response_delay_seconds": delay,
            "candidates": candidates,
            "queue_wait_seconds": queue_wait,
            "ttft_seconds": ttft,
            "passage_chars_dropped": passage_chars_dropped,
            "speech_end": speech_end,
            "tokens_past_limit": tokens_past_limit,
            "tokens_prefilled": tokens_prefilled,
            "trial_role": role,
        }


def verdict_rows(experiment_ids: Iterable[int], role: str = STUDY) -> Iterator[dict]:
    _check_role(role)
    fields = [
        "trial__experiment_id",
        "trial_id",
        "trial__question__external_id",
        "judge__username",
        "trial__honest_side",
        "chosen",
        "probability",
        "rationale",
        "seconds_on_page",
        "active_seconds",
        "created_at",
        "score",
        "active_time_source",
    ]
    rows = (
        Verdict.objects.filter(trial__experiment_id__in=list(experiment_ids), trial__role=role)
        .order_by("trial__experiment_id", "trial_id")
        .values_list(*fields)
        .iterator(chunk_size=CHUNK)
    )
    for (
        experiment_id,
        trial_id,
        qid,
        judge,
        honest,
        chosen,
        probability,
        rationale,
        seconds,
        active,
        created,
        score,
        time_source,
    ) in rows:
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": experiment_id,
            "trial_id": trial_id,
            "question_id": qid,
            "judge": judge,
            "honest_side": honest,
            "verdict": chosen,
            "probability": probability,
            "correct": chosen == honest,
            "rationale": rationale,
            "seconds_on_page": seconds,
            "active_seconds": active,
            "verdict_at": _iso(created),
            "score": score,
            "active_time_source": time_source,
            "trial_role": role,
        }


MODEL_ANSWER_COLUMNS = {
    "schema_version": "int",
    "experiment_id": "int",
    "question_id": "str",
    "answer_a_index": "int",
    "answer_b_index": "int",
    "honest_side": "str",
    "probability_a": "float",
    "verdict": "str",
    "correct": "bool",
    "model_settings": "json",
    "probability_a_swapped": "float",
    "probability_a_averaged": "float",
    "orders_scored": "int",
    "model_config": "str",
}


def _baseline_verdict(p_a: float, p_a_swapped: float | None, honest: str) -> tuple:
    """What both model-baseline tables derive from the answer orders scored (judging.baseline_verdicts):
    the verdict from the averaged probability (None for a tie), correct (None for a tie), the averaged
    probability of answer A, and how many orders were scored (1: a row from before both orders)."""
    chosen = baseline_verdicts.verdict(p_a, p_a_swapped)
    return (
        chosen or None,
        baseline_verdicts.is_correct(chosen, honest),
        baseline_verdicts.averaged_probability_a(p_a, p_a_swapped),
        1 if p_a_swapped is None else 2,
    )


def model_answer_rows(experiment_ids: Iterable[int]) -> Iterator[dict]:
    """The model-alone baseline of sandwiching experiments: one row per question and configuration that
    answered alone (named as frozen at launch)."""
    fields = [
        "experiment_id",
        "question__external_id",
        "answer_a_index",
        "answer_b_index",
        "honest_side",
        "probability_a",
        "probability_a_swapped",
        "model_settings",
        "model_config_id",
    ]
    rows = (
        ModelAnswer.objects.filter(experiment_id__in=list(experiment_ids))
        .order_by("experiment_id", "question_id", "model_config_id")
        .values_list(*fields)
        .iterator(chunk_size=CHUNK)
    )
    names_cache: dict[int, dict[int, str]] = {}
    for experiment_id, qid, a_index, b_index, honest, p_a, p_a_swapped, model_settings, config_id in rows:
        if experiment_id not in names_cache:
            names_cache[experiment_id] = launched_config_names(experiment_id)
        chosen, correct, averaged, orders = _baseline_verdict(p_a, p_a_swapped, honest)
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": experiment_id,
            "question_id": qid,
            "answer_a_index": a_index,
            "answer_b_index": b_index,
            "honest_side": honest,
            "probability_a": p_a,
            "verdict": chosen,
            "correct": correct,
            "model_settings": model_settings,
            "probability_a_swapped": p_a_swapped,
            "probability_a_averaged": averaged,
            "orders_scored": orders,
            # The name frozen at launch; else the one it had when it answered.
            "model_config": names_cache[experiment_id].get(config_id) or (model_settings or {}).get("config_name"),
        }


MODEL_VERDICT_COLUMNS = {
    "schema_version": "int",
    "experiment_id": "int",
    "trial_id": "int",
    "question_id": "str",
    "judge_model": "str",
    "honest_side": "str",
    "probability_a": "float",
    "verdict": "str",
    "correct": "bool",
    "model_settings": "json",
    "probability_a_swapped": "float",
    "probability_a_averaged": "float",
    "orders_scored": "int",
}


def model_verdict_rows(experiment_ids: Iterable[int]) -> Iterator[dict]:
    """Model judges' verdicts: one row per trial and judge model."""
    fields = [
        "trial__experiment_id",
        "trial_id",
        "trial__question__external_id",
        "judge_model__name",
        "trial__honest_side",
        "probability_a",
        "probability_a_swapped",
        "model_settings",
    ]
    rows = (
        # Model judges judge study trials only (generation.baselines); older rows of other trials are left out.
        ModelVerdict.objects.filter(trial__experiment_id__in=list(experiment_ids), trial__role=STUDY)
        .order_by("trial__experiment_id", "trial_id", "judge_model_id")
        .values_list(*fields)
        .iterator(chunk_size=CHUNK)
    )
    for experiment_id, trial_id, qid, judge_model, honest, p_a, p_a_swapped, model_settings in rows:
        chosen, correct, averaged, orders = _baseline_verdict(p_a, p_a_swapped, honest)
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": experiment_id,
            "trial_id": trial_id,
            "question_id": qid,
            "judge_model": judge_model,
            "honest_side": honest,
            "probability_a": p_a,
            "verdict": chosen,
            "correct": correct,
            "model_settings": model_settings,
            "probability_a_swapped": p_a_swapped,
            "probability_a_averaged": averaged,
            "orders_scored": orders,
        }


EXPERIMENT_COLUMNS = {
    "schema_version": "int",
    "experiment_id": "int",
    "experiment": "str",
    "arms": "json",
    "question_set": "str",
    "num_questions": "int",
    "judgments_per_question": "int",
    "judges": "int",
    "mode": "str",
    "seed": "int",
    "status": "str",
    "launched_at": "str",
    "primary_comparisons": "json",
    "alpha": "float",
    "non_inferiority_margin": "float",
    "planned_judgments": "int",
    "provenance": "json",
}


def experiment_rows(experiment_ids: Iterable[int]) -> Iterator[dict]:
    """One row per experiment: its design and its analysis plan as frozen at launch."""
    experiments = (
        Experiment.objects.filter(pk__in=list(experiment_ids))
        .select_related("question_set")
        .annotate(judge_count=Count("judges"))
        .order_by("pk")
    )
    for e in experiments:
        yield {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": e.pk,
            "experiment": e.name,
            "arms": e.conditions,
            "question_set": e.question_set.name,
            "num_questions": e.num_questions,
            "judgments_per_question": e.judgments_per_question,
            "judges": e.judge_count,
            "mode": e.mode,
            "seed": e.seed,
            "status": e.status,
            "launched_at": _iso(e.launched_at),
            "primary_comparisons": e.primary_comparisons,
            "alpha": e.alpha,
            "non_inferiority_margin": e.non_inferiority_margin,
            "planned_judgments": e.judgments_planned,
            "provenance": e.provenance,
        }


QUESTION_COLUMNS = {
    "schema_version": "int",
    "experiment_id": "int",
    "question_set": "str",
    "question_id": "str",
    "question": "str",
    "choices": "json",
    "correct_index": "int",
    "passage": "str",
    "metadata": "json",
}


def question_rows(experiment_ids: Iterable[int], role: str = STUDY) -> Iterator[dict]:
    """One row per experiment and question it used (a trial's of ``role``, or the model alone's with the study):
    the full text, every choice (shown or not), the gold index and the passage, exactly as stored."""
    _check_role(role)
    for experiment_id in (
        Experiment.objects.filter(pk__in=list(experiment_ids)).order_by("pk").values_list("pk", flat=True)
    ):
        used = Q(trials__experiment_id=experiment_id, trials__role=role)
        if role == STUDY:  # the model alone answers the study's questions
            used |= Q(model_answers__experiment_id=experiment_id)
        questions = Question.objects.filter(used).distinct().select_related("question_set").order_by("pk")
        for q in questions.iterator(chunk_size=CHUNK):
            yield {
                "schema_version": SCHEMA_VERSION,
                "experiment_id": experiment_id,
                "question_set": q.question_set.name,
                "question_id": q.external_id,
                "question": q.text,
                "choices": q.choices,
                "correct_index": q.correct_index,
                "passage": q.passage,
                "metadata": q.metadata,
            }


TABLES = {
    "experiments": (experiment_rows, EXPERIMENT_COLUMNS),
    "questions": (question_rows, QUESTION_COLUMNS),
    "trials": (trial_rows, TRIAL_COLUMNS),
    "turns": (turn_rows, TURN_COLUMNS),
    "verdicts": (verdict_rows, VERDICT_COLUMNS),
    "model_answers": (model_answer_rows, MODEL_ANSWER_COLUMNS),
    "model_verdicts": (model_verdict_rows, MODEL_VERDICT_COLUMNS),
}
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def _check(table: str, fmt: str) -> None:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _csv_cell(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Model output and judge text are untrusted: never let a spreadsheet run them as formulas.
        return "'" + value
    return "" if value is None else value


def iter_csv(rows: Iterator[dict], columns: dict) -> Iterator[str]:
    """CSV text of ``rows`` (dicts in ``columns``' order) under a header of ``columns``, each cell made safe for
    spreadsheets (``_csv_cell``); streamed in chunks of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for n, row in enumerate(rows, start=1):
        writer.writerow([_csv_cell(v) for v in row.values()])
        if n % 1000 == 0:  # hand out text in chunks of rows, not per row
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _iter_jsonl(rows: Iterator[dict]) -> Iterator[str]:
    lines = []
    for row in rows:
        lines.append(json.dumps(row, ensure_ascii=False))
        if len(lines) == 1000:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


def _arrow_schema(columns: dict):
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "json": pa.string()}
    return pa.schema([(name, types[kind]) for name, kind in columns.items()])


def _rows(table: str, experiment_ids, role: str):
    """The table's rows of trials in ``role`` (docs/onboarding.md); ValueError for a role a table cannot give."""
    _check_role(role)
    rows_for, _ = TABLES[table]
    if table in ROLE_TABLES:
        return rows_for(experiment_ids, role=role)
    if role != STUDY:
        raise ValueError(f"the {table} table holds the study only; {role} rows are in {', '.join(ROLE_TABLES)}")
    return rows_for(experiment_ids)


def write_parquet(table: str, experiment_ids: Iterable[int], target, role: str = STUDY) -> None:
    """Write a Parquet file to ``target`` (a path or binary file), one row group per chunk of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _check(table, "parquet")
    _, columns = TABLES[table]
    rows = _rows(table, experiment_ids, role)  # refuses a bad role before the file is written
    schema = _arrow_schema(columns)
    json_columns = [name for name, kind in columns.items() if kind == "json"]
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        batch: dict[str, list] = {name: [] for name in columns}
        count = 0

        def flush():
            writer.write_batch(pa.record_batch([batch[name] for name in columns], schema=schema))
            for values in batch.values():
                values.clear()

        for row in rows:
            for name in json_columns:
                row[name] = json.dumps(row[name], sort_keys=True) if row[name] is not None else None
            for name in columns:
                batch[name].append(row[name])
            count += 1
            if count % 50_000 == 0:
                flush()
        if count % 50_000 or count == 0:
            flush()


def _iter_parquet_file(table: str, experiment_ids: list[int], role: str = STUDY) -> Iterator[bytes]:
    """Parquet is written whole before it can be read, so spool it to a temporary file."""
    with tempfile.TemporaryFile() as spool:
        write_parquet(table, experiment_ids, spool, role)
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            yield chunk


def iter_export(table: str, fmt: str, experiment_ids: Iterable[int], role: str = STUDY) -> Iterator[str | bytes]:
    """The export as chunks: text for CSV and JSONL, bytes for Parquet. ``role``: which trials (study ones by
    default; practice or attention checks on request, for the tables that hold trials' rows)."""
    _check(table, fmt)
    experiment_ids = list(experiment_ids)
    _, columns = TABLES[table]
    rows = _rows(table, experiment_ids, role)  # refuses a bad role before anything is written
    if fmt == "parquet":
        return _iter_parquet_file(table, experiment_ids, role)
    if fmt == "jsonl":
        return _iter_jsonl(rows)
    return iter_csv(rows, columns)


def write_export(
    table: str, fmt: str, experiment_ids: Iterable[int], path: str | os.PathLike, role: str = STUDY
) -> None:
    if fmt == "parquet":
        write_parquet(table, experiment_ids, str(path), role)
        return
    chunks = iter_export(table, fmt, experiment_ids, role)  # a bad role is refused before the file is opened
    with open(path, "w", newline="", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(chunk)


def export_response(table: str, fmt: str, experiment_ids: list[int], role: str = STUDY):
    """A streaming download of an export (admin action and the scripts URL)."""
    response = StreamingHttpResponse(iter_export(table, fmt, experiment_ids, role), content_type=FORMATS[fmt])
    kind = table if role == STUDY else f"{role}-{table}"
    name = f"experiments-{'-'.join(map(str, experiment_ids))}-{kind}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
