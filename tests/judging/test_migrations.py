"""Migrations carry a release-0.1 database forward (tests/fixtures/release_0_1, made by make_release_db.py).

Each backend's release database is copied (SQLite) or restored into a fresh database (PostgreSQL, when
reachable), read, migrated with ``manage.py migrate`` in a subprocess, and read again. ``carried``
holds all of that as one dict; the tests assert on it. To check what a new migration must keep or
fill in: read it in ``READ_MIGRATED`` (through the models) or ``MIGRATED_SQL`` (raw rows), then
assert on it in a test here.

These tests do not use pytest-django's test database: they make and drop their own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "tests" / "fixtures" / "release_0_1"

pytestmark = pytest.mark.slow  # each backend: a migrate and a shell subprocess (seconds)

# Raw rows of the release database, before migrating, in its own (release 0.1) tables.
RELEASE_SQL = {
    "model_configs": "SELECT * FROM models_runner_modelconfig ORDER BY id",
    "model_config_content_types": "SELECT id, app_label FROM django_content_type WHERE model = 'modelconfig'",
    "trial_sides": ("SELECT id, protocol, condition, honest_side, consultant_side FROM judging_trial ORDER BY id"),
    "model_config_permissions": (
        "SELECT p.id, p.codename FROM auth_permission p JOIN django_content_type t ON t.id = p.content_type_id"
        " WHERE t.model = 'modelconfig' ORDER BY p.id"
    ),
}
# The same rows, read the same way (same driver, same types), from the migrated database.
MIGRATED_SQL = {
    "model_configs": "SELECT * FROM judging_modelconfig ORDER BY id",
    "trial_sides": (
        "SELECT id, protocol, condition, honest_side, consultant_side, assistant_side FROM judging_trial ORDER BY id"
    ),
    **{key: RELEASE_SQL[key] for key in ("model_config_content_types", "model_config_permissions")},
}

# Runs in ``manage.py shell -c`` on the migrated database: what the current models read from it.
READ_MIGRATED = """
import json

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from judging.exports import model_answer_rows, model_verdict_rows
from judging.models import Experiment, ModelAnswer, ModelConfig, ModelVerdict, Trial, Turn, Verdict

executor = MigrationExecutor(connection)
plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
with connection.cursor() as cursor:
    tables = set(connection.introspection.table_names(cursor))
    foreign_keys = [
        (table, column, *constraint["foreign_key"])
        for table in sorted(tables)
        for constraint in connection.introspection.get_constraints(cursor, table).values()
        if constraint["foreign_key"]
        for column in constraint["columns"]
    ]

def name(config):
    return config.name if config else None

references = {}  # every foreign key to ModelConfig: rows that set it, and those naming no configuration
for model in apps.get_models():
    for field in model._meta.concrete_fields:
        if field.is_relation and field.related_model is ModelConfig:
            rows = model._base_manager.exclude(**{field.attname: None})
            dangling = rows.exclude(**{field.attname + "__in": ModelConfig.objects.values("pk")})
            references[f"{model._meta.label}.{field.name}"] = {"rows": rows.count(), "dangling": dangling.count()}

print(json.dumps({
    "unapplied_migrations": [f"{migration.app_label}.{migration.name}" for migration, _ in plan],
    # Loading every row of every model reads every column the models expect.
    "rows": {model._meta.label: len(model._base_manager.all()) for model in apps.get_models()},
    "model_configs": {
        config.name: {
            "best_of_n": config.best_of_n,
            "best_of_n_judge": name(config.best_of_n_judge),
            "repetition_penalty": config.repetition_penalty,
            "temperature": config.temperature,
        }
        for config in ModelConfig.objects.all()
    },
    "experiment_debater": Experiment.objects.get().debater_model.name,
    "experiment_status": Experiment.objects.get().status,
    "experiment_provenance": Experiment.objects.get().provenance,
    "verdict_time": list(
        Verdict.objects.values_list("active_seconds", "active_seconds_by_round", "active_time_source")
    ),
    "turn_models": sorted({name(turn.model_config) or "" for turn in Turn.objects.all()}),
    "model_verdict_judge": ModelVerdict.objects.get().judge_model.name,
    "model_answer_config": ModelConfig.objects.get(pk=ModelAnswer.objects.get().model_settings["config_id"]).name,
    "model_answer_model_config": name(ModelAnswer.objects.get().model_config),
    # Who spoke on each side, by condition (migration 0010: the experiment's one model, where anyone spoke).
    "trial_configs": sorted(
        {(t.condition, name(t.honest_config), name(t.adversary_config)) for t in Trial.objects.all()},
        key=str,
    ),
    # Baselines scored in one answer order, as release 0.1 did, exported as such.
    "model_baseline_exports": [
        {key: row[key] for key in ("probability_a", "probability_a_swapped", "orders_scored", "verdict", "correct")}
        for rows in (model_answer_rows, model_verdict_rows)
        for row in rows(Experiment.objects.values_list("pk", flat=True))
    ],
    "references_to_model_configs": references,
    "foreign_keys": foreign_keys,
    "foreign_keys_to_missing_tables": [fk for fk in foreign_keys if fk[2] not in tables],
    "model_config_content_types": list(ContentType.objects.filter(model="modelconfig").values_list("id", "app_label")),
    "model_config_permissions": sorted(
        Permission.objects.filter(content_type__app_label="judging", content_type__model="modelconfig")
        .values_list("id", "codename")
    ),
}))
"""


def postgres_server() -> str:
    """The PostgreSQL server to restore into: DATABASE_URL's when it is one (dev.py's PostgreSQL pass),
    else the local one; the test is skipped when it is not reachable."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(url)
    with socket.socket() as s:
        s.settimeout(5)
        if s.connect_ex((parts.hostname or "127.0.0.1", parts.port or 5432)) != 0:
            pytest.skip(f"PostgreSQL is not reachable at {parts.hostname}:{parts.port}")
    return parts._replace(path="/postgres").geturl()


def on_server(server: str, statement: str) -> None:
    with psycopg.connect(server, autocommit=True) as connection:  # CREATE/DROP DATABASE: no transaction
        connection.execute(statement)


def restore_dump(url: str) -> None:
    """Load postgres.sql with psql. Its \\restrict and \\unrestrict lines (psql 17+ meta-commands that guard
    a restore against commands hidden in the dump) are dropped, so that older psql runs it too."""
    psql = shutil.which("psql")
    assert psql, "psql (PostgreSQL's client) is needed to restore tests/fixtures/release_0_1/postgres.sql"
    dump = "".join(
        line
        for line in (RELEASE / "postgres.sql").read_text().splitlines(keepends=True)
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )
    result = subprocess.run(
        [psql, "-v", "ON_ERROR_STOP=1", "-q", "-d", url], input=dump, capture_output=True, text=True
    )
    assert result.returncode == 0, f"restoring postgres.sql failed:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def release_database(request, tmp_path_factory):
    """The URL of a fresh copy of the release-0.1 database; dropped afterwards."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("release_0_1") / "db.sqlite3"
        shutil.copyfile(RELEASE / "db.sqlite3", path)
        yield f"sqlite:///{path}"
        return
    server = postgres_server()
    name = f"release_0_1_{uuid.uuid4().hex[:12]}"  # other test runs share the server
    on_server(server, f'CREATE DATABASE "{name}"')
    try:
        url = urlsplit(server)._replace(path=f"/{name}").geturl()
        restore_dump(url)
        yield url
    finally:
        on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def read_sql(url: str, queries: dict[str, str]) -> dict[str, list[dict]]:
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(urlsplit(url).path[1:])) as connection:
            connection.row_factory = sqlite3.Row
            return {key: [dict(row) for row in connection.execute(sql)] for key, sql in queries.items()}
    with psycopg.connect(url, row_factory=dict_row) as connection:
        return {key: connection.execute(sql).fetchall() for key, sql in queries.items()}


def manage(url: str, *args: str) -> str:
    """Run manage.py on the database at ``url``; its standard output."""
    env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": "memory://", "DJANGO_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def carried(release_database) -> dict:
    """{"release": raw rows before migrating, "migrated": the same rows after, "models": READ_MIGRATED's dict}"""
    release = read_sql(release_database, RELEASE_SQL)
    manage(release_database, "migrate", "--no-input")
    migrated = read_sql(release_database, MIGRATED_SQL)
    models = json.loads(manage(release_database, "shell", "-c", READ_MIGRATED).strip().splitlines()[-1])
    return {"release": release, "migrated": migrated, "models": models}


def test_no_migration_is_left_unapplied(carried):
    assert carried["models"]["unapplied_migrations"] == []


def test_every_model_configuration_keeps_every_field_it_had(carried):
    release, migrated = carried["release"]["model_configs"], carried["migrated"]["model_configs"]
    assert [row["name"] for row in release] == ["scorer", "debater"]
    assert [{column: row.get(column) for column in release[0]} for row in migrated] == release
    assert carried["models"]["model_configs"]["debater"] == {
        "best_of_n": 2,
        "best_of_n_judge": "scorer",
        "repetition_penalty": 1.15,
        "temperature": 0.7,
    }


def test_every_row_is_there_and_the_models_read_it(carried):
    rows = carried["models"]["rows"]
    assert {label: rows[label] for label in rows if label.startswith("judging.")} == {
        "judging.ModelConfig": 2,
        "judging.QuestionSet": 1,
        "judging.Question": 10,
        "judging.Experiment": 1,
        "judging.Trial": 20,
        "judging.Turn": 24,
        "judging.Verdict": 1,
        "judging.ModelAnswer": 1,
        "judging.ModelVerdict": 1,
        "judging.ActiveTime": 0,  # new in migration 0009: release 0.1 had no server-timed trials
        "judging.LineupMember": 0,  # new in migration 0010: release 0.1's experiments had one model
        "judging.Invite": 0,  # new in migration 0016 (recruitment)
        "judging.Seat": 0,
        "judging.Onboarding": 0,  # new in migration 0017 (onboarding and quality control)
    }
    assert rows["auth.User"] == 4


def test_references_to_model_configurations_resolve(carried):
    models = carried["models"]
    assert models["experiment_debater"] == "debater"
    assert models["turn_models"] == ["debater"]  # every release turn was a debater's
    assert models["model_verdict_judge"] == "scorer" and models["model_answer_config"] == "debater"
    assert models["model_answer_model_config"] == "debater"
    # The one debater model spoke on every side that had a speaker (migration 0010's backfill).
    assert {tuple(row) for row in models["trial_configs"]} <= {
        ("debate", "debater", "debater"),
        ("honest consultant", "debater", None),
        ("dishonest consultant", None, "debater"),
        ("naive", None, None),
        ("assisted-honest", "debater", None),
        ("assisted-misleading", None, "debater"),
    }
    assert {row[0] for row in models["trial_configs"]} >= {"debate", "naive"}
    references = models["references_to_model_configs"]
    assert references["judging.Experiment.debater_model"] == {"rows": 1, "dangling": 0}
    assert references["judging.Turn.model_config"] == {"rows": 24, "dangling": 0}
    assert references["judging.ModelVerdict.judge_model"] == {"rows": 1, "dangling": 0}
    assert references["judging.ModelConfig.best_of_n_judge"] == {"rows": 1, "dangling": 0}
    assert all(counts["dangling"] == 0 for counts in references.values()), references


def test_the_databases_foreign_keys_follow_the_moved_table(carried):
    foreign_keys = carried["models"]["foreign_keys"]
    assert carried["models"]["foreign_keys_to_missing_tables"] == []
    into_model_configs = {
        (table, column) for table, column, target, _ in foreign_keys if target == "judging_modelconfig"
    }
    assert into_model_configs >= {
        ("judging_experiment", "debater_model_id"),
        ("judging_turn", "model_config_id"),
        ("judging_modelverdict", "judge_model_id"),
        ("judging_modelconfig", "best_of_n_judge_id"),
    }


def test_the_admin_content_type_and_its_permissions_moved_to_judging(carried):
    [(type_id, old_label)] = [(row["id"], row["app_label"]) for row in carried["release"]["model_config_content_types"]]
    assert old_label == "models_runner"
    # The same content type (not a new one made after migrating), now in judging: its permissions
    # (and any group's or user's grants of them) carry over.
    assert carried["models"]["model_config_content_types"] == [[type_id, "judging"]]
    release_permissions = [[row["id"], row["codename"]] for row in carried["release"]["model_config_permissions"]]
    assert {codename for _, codename in release_permissions} == {
        f"{action}_modelconfig" for action in ("add", "change", "delete", "view")
    }
    assert carried["models"]["model_config_permissions"] == release_permissions


def test_the_assistants_side_moves_to_its_own_field_and_the_consultants_stays(carried):
    release = {row["id"]: row for row in carried["release"]["trial_sides"]}
    migrated = {row["id"]: row for row in carried["migrated"]["trial_sides"]}
    assert release.keys() == migrated.keys()
    protocols = {row["protocol"] for row in release.values()}
    assert protocols == {"debate", "consultancy", "sandwich"}  # the fixture has every protocol
    for trial_id, before in release.items():
        after = migrated[trial_id]
        assert after["condition"] == before["condition"]  # every release trial already had a known condition
        if before["protocol"] == "sandwich":
            assert (after["assistant_side"], after["consultant_side"]) == (before["consultant_side"], "")
        else:
            assert (after["consultant_side"], after["assistant_side"]) == (before["consultant_side"], "")
    assert any(row["assistant_side"] for row in migrated.values())  # assisted trials kept their side


def test_verdicts_timed_by_the_browser_keep_their_time_and_say_so(carried):
    # Release 0.1's verdict was timed in the browser (12.5 s): kept, and marked as such in the exports' column.
    assert carried["models"]["verdict_time"] == [[12.5, {"2": 12.5}, "browser"]]


def test_launched_experiments_get_a_provenance_marked_as_backfilled(carried):
    models = carried["models"]
    provenance = models["experiment_provenance"]
    if models["experiment_status"] == "draft":
        assert provenance == {}
        return
    assert provenance["backfilled"] is True and "not at launch" in provenance["note"]
    debater = provenance["configs"]["debater"]
    assert debater["config_name"] == models["experiment_debater"] and "system_prompt" in debater


def test_baselines_scored_in_one_order_keep_it(carried):
    # The release's model answer (0.3 for A) and model verdict (0.6 for A) were scored in one order: their
    # probability is kept, the swapped one is empty, and the verdict comes from the one order.
    assert [
        (row["probability_a"], row["probability_a_swapped"], row["orders_scored"], row["verdict"])
        for row in carried["models"]["model_baseline_exports"]
    ] == [(0.3, None, 1, "B"), (0.6, None, 1, "A")]
    assert all(isinstance(row["correct"], bool) for row in carried["models"]["model_baseline_exports"])
