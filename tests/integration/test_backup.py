"""The PostgreSQL backup and restore of docs/backup.md, run with the same flags against a real database."""

import subprocess

import pytest
from django.db import connection

from judging.models import Trial, Verdict

pytestmark = pytest.mark.django_db(transaction=True)


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-tAc", sql], check=True, capture_output=True, text=True).stdout.strip()


def test_a_pg_dump_restores_every_row_into_an_empty_database(judged_trial, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the backup path is PostgreSQL's (docs/backup.md); this run uses SQLite")
    db = connection.settings_dict
    source = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    target_name = f"{db['NAME']}_restored"
    target = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{target_name}"
    server = ["-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"]]
    dump = tmp_path / "backup.dump"
    # As docs/backup.md: a custom-format dump, restored with --clean --if-exists --no-owner.
    subprocess.run(["pg_dump", source, "-Fc", "-f", str(dump)], check=True)
    subprocess.run(["dropdb", "--if-exists", *server, target_name])
    subprocess.run(["createdb", *server, target_name], check=True)
    try:
        subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "-d", target, str(dump)], check=True)
        assert int(psql(target, "select count(*) from judging_trial")) == Trial.objects.count() > 0
        assert int(psql(target, "select count(*) from judging_verdict")) == Verdict.objects.count() == 1
        assert psql(target, "select max(name) from django_migrations where app = 'judging'") == psql(
            source, "select max(name) from django_migrations where app = 'judging'"
        )
    finally:
        subprocess.run(
            ["dropdb", "--if-exists", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], target_name]
        )
