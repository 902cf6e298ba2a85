"""A judge's own trial as their pages read it (the trial with its question, experiment and turns, by two statements),
and a trial as the judge's actions lock it (one statement).

Every trial page, live move and pushed render of a live page (views._own_trial) reads the trial, its question and
experiment, and its turns in transcript order. Through the ORM (select_related, a prefetch of the turns) that read
cost about 2.9 ms of CPU, most of it Django compiling the two queries again on every call; it was the largest part
of a pushed render and a fifth of the web tier's CPU with 100 judges on live pages (docs/benchmarks.md). Here the
SQL is made once per process from the models' own fields, and the rows become model instances as the ORM makes them
(``Model.from_db``, after the same converters the ORM applies, so every field reads as it would through the ORM):
about 0.7 ms. The instances are wired as ``select_related`` and ``prefetch_related`` wire them: ``trial.question``,
``trial.experiment``, ``trial.turns.all()`` (in transcript order) and each turn's ``trial`` read nothing more.
``tests/judging/test_trial_read.py`` checks every field against the ORM's read, on both databases.

``locked_trial`` does the same for the read every beat, move and verdict starts with (services._lock_trial): the
trial locked for update with its experiment, as ``select_for_update(of=("self",)).select_related(...)`` reads it,
0.8-1.0 ms of CPU against 2.8-4.6 ms through the ORM.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.db import connections, router
from django.db.transaction import TransactionManagementError

from .models import Experiment, Question, Trial, Turn

# Never shown to the judge: being prepared, failed, or withdrawn (the judge did not qualify: docs/onboarding.md).
HIDDEN_STATUSES = (Trial.Status.GENERATING, Trial.Status.FAILED, Trial.Status.WITHDRAWN)
# Large and never read on a judge's page: left deferred (read on access, as the ORM's defer() does).
TURN_FIELDS_UNREAD = ("prompt", "model_settings", "candidates", "error")
EXPERIMENT_FIELDS_UNREAD = ("provenance",)


@dataclass(frozen=True)
class _Columns:
    """One model's columns in a statement: its fields read, in order, with the ORM's converters for each."""

    model: type
    fields: tuple
    attnames: tuple  # the fields' attribute names, as from_db takes them
    converters: tuple  # per field: (its converter functions, its column expression), or None

    @classmethod
    def of(cls, model, table_alias: str, connection, unread=()) -> _Columns:
        fields = tuple(f for f in model._meta.concrete_fields if f.name not in unread)
        converters = []
        for field in fields:
            column = field.get_col(table_alias)
            # As the ORM's SQLCompiler.get_converters: the backend's, then the field's.
            functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            converters.append((tuple(functions), column) if functions else None)
        return cls(model, fields, tuple(field.attname for field in fields), tuple(converters))

    def select(self, table_alias: str, quote) -> str:
        return ", ".join(f"{table_alias}.{quote(field.column)}" for field in self.fields)

    def instance(self, alias: str, connection, values):
        values = list(values)
        for i, converter in enumerate(self.converters):
            if converter is not None:
                functions, column = converter
                for function in functions:
                    values[i] = function(values[i], column, connection)
        return self.model.from_db(alias, self.attnames, values)


@dataclass(frozen=True)
class _Statements:
    trial: str
    turns: str
    parts: tuple[_Columns, ...]  # the trial's, its question's and its experiment's columns, in the trial statement
    turn: _Columns


@functools.cache
def _statements(alias: str) -> _Statements:
    """Made once per database alias and process. The converters are the first connection's functions; they depend
    on the backend and the settings, not on the connection (each is also passed the connection it converts for)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    parts = (
        _Columns.of(Trial, "t", connection),
        _Columns.of(Question, "q", connection),
        _Columns.of(Experiment, "e", connection, EXPERIMENT_FIELDS_UNREAD),
    )
    turn = _Columns.of(Turn, "u", connection, TURN_FIELDS_UNREAD)

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    trial = (
        f"SELECT {', '.join(part.select(a, quote) for part, a in zip(parts, 'tqe', strict=True))} "
        f"FROM {quote(Trial._meta.db_table)} t {_join('question', 'q', quote)} {_join('experiment', 'e', quote)} "
        f"WHERE t.{column(Trial, 'id')} = %s AND t.{column(Trial, 'judge')} = %s "
        f"AND t.{column(Trial, 'status')} NOT IN ({', '.join(['%s'] * len(HIDDEN_STATUSES))})"
    )
    turns = (
        f"SELECT {turn.select('u', quote)} FROM {quote(Turn._meta.db_table)} u "
        f"WHERE u.{column(Turn, 'trial')} = %s ORDER BY u.{column(Turn, 'index')}"
    )
    return _Statements(trial, turns, parts, turn)


def _join(relation: str, table: str, quote) -> str:
    """The trial's (``t``) relation joined as ``table``: a LEFT JOIN where the trial may have none (its columns then
    NULL: the relation None, as the ORM reads it)."""
    field = Trial._meta.get_field(relation)
    model = field.related_model
    kind = "LEFT JOIN" if field.null else "JOIN"
    on = f"{table}.{quote(model._meta.pk.column)} = t.{quote(field.column)}"
    return f"{kind} {quote(model._meta.db_table)} {table} ON {on}"


def judge_trial(trial_id: int, judge_id: int) -> Trial | None:
    """The judge's trial ``trial_id`` with its question, experiment and turns; None when there is no such trial in
    their queue that they may see (unknown, someone else's, or HIDDEN_STATUSES)."""
    alias = router.db_for_read(Trial)
    connection = connections[alias]
    statements = _statements(alias)
    with connection.cursor() as cursor:
        cursor.execute(statements.trial, [trial_id, judge_id, *HIDDEN_STATUSES])
        row = cursor.fetchone()
    if row is None:
        return None
    trial, question, experiment = _instances(statements.parts, alias, connection, row)
    trial.question, trial.experiment = question, experiment
    prefetch_turns(trial)
    return trial


def _instances(parts: tuple[_Columns, ...], alias: str, connection, row) -> list:
    """Each part's instance from its columns of ``row``, in order; None for a relation that a LEFT JOIN left out
    (its columns all NULL, its key too)."""
    instances, start = [], 0
    for part in parts:
        values = row[start : start + len(part.fields)]
        start += len(part.fields)
        missing = values[part.attnames.index(part.model._meta.pk.attname)] is None
        instances.append(None if missing else part.instance(alias, connection, values))
    return instances


def prefetch_turns(trial: Trial) -> None:
    """Read ``trial``'s turns as ``judge_trial`` does (in transcript order, TURN_FIELDS_UNREAD left deferred), so that
    ``trial.turns.all()`` returns them without a query: for a trial read otherwise (``locked_trial``)."""
    alias = trial._state.db  # the trial's own database: where a locked trial's transaction is
    connection = connections[alias]
    statements = _statements(alias)
    with connection.cursor() as cursor:
        cursor.execute(statements.turns, [trial.pk])
        turns = [statements.turn.instance(alias, connection, values) for values in cursor.fetchall()]
    for turn in turns:
        turn.trial = trial
    # Where prefetch_related keeps a relation's rows (Django's prefetch_one_level does the same): trial.turns.all()
    # returns them without a query.
    prefetched = trial.turns.all()
    prefetched._result_cache, prefetched._prefetch_done = turns, True
    trial._prefetched_objects_cache = {"turns": prefetched}


@dataclass(frozen=True)
class _LockStatement:
    sql: str
    parts: tuple[_Columns, ...]  # the trial's, its experiment's, then each relation's columns


@functools.cache
def _lock_statement(alias: str, related: tuple[str, ...], by_judge: bool) -> _LockStatement:
    """Made once per database alias, relations read and judge filter, per process (as ``_statements``)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    tables = ["t", "e", *(f"r{i}" for i in range(len(related)))]
    models = [Trial, Experiment, *(Trial._meta.get_field(name).related_model for name in related)]
    parts = tuple(_Columns.of(model, table, connection) for model, table in zip(models, tables, strict=True))
    joins = [_join(name, table, quote) for name, table in zip(("experiment", *related), tables[1:], strict=True)]
    where = f"t.{quote(Trial._meta.pk.column)} = %s"
    if by_judge:
        where += f" AND t.{quote(Trial._meta.get_field('judge').column)} = %s"
    # Only the trial's row: the experiment is locked for share before (services._lock_trial), the rest not at all.
    lock = " FOR UPDATE OF t" if connection.features.has_select_for_update_of else ""
    sql = (
        f"SELECT {', '.join(part.select(table, quote) for part, table in zip(parts, tables, strict=True))} "
        f"FROM {quote(Trial._meta.db_table)} t {' '.join(joins)} WHERE {where}{lock}"
    )
    return _LockStatement(sql, parts)


def locked_trial(trial_id: int, judge_id: int | None = None, related: tuple[str, ...] = ()) -> Trial | None:
    """The trial ``trial_id`` (``judge_id``'s, where given) locked for update where the database can lock a row (in
    the caller's transaction), with its experiment and the ``related`` relations (the trial's foreign keys) as
    ``select_for_update(of=("self",)).select_related("experiment", *related)`` reads them, in one statement made once
    per process; None when there is no such trial. Every beat, move and verdict starts with it (services._lock_trial):
    through the ORM, compiling that query was most of the lock's time."""
    alias = router.db_for_write(Trial)
    connection = connections[alias]
    if connection.features.has_select_for_update and connection.get_autocommit():
        # As the ORM's select_for_update: a lock outside a transaction would be let go at once.
        raise TransactionManagementError("locked_trial() needs a transaction (transaction.atomic)")
    related = tuple(related)
    statement = _lock_statement(alias, related, judge_id is not None)
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, [trial_id] if judge_id is None else [trial_id, judge_id])
        row = cursor.fetchone()
    if row is None:
        return None
    trial, experiment, *others = _instances(statement.parts, alias, connection, row)
    trial.experiment = experiment
    for name, instance in zip(related, others, strict=True):
        setattr(trial, name, instance)
    return trial
