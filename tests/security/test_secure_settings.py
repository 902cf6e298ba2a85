"""Secure by default (issue 13, part 1): no start without a secret key when DEBUG is off, the deployment checks
clean in docker-compose.yml's environment, a Content-Security-Policy on every page, and no caching of judge
pages and JSON."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

import dev
from debate_platform.env import DEBUG_ONLY_SECRET_KEY, secret_key

ROOT = Path(__file__).resolve().parents[2]


def manage(args: list[str], env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBATE_", "DATABASE_URL"))}
    env = base | {"DATABASE_URL": "sqlite://:memory:", "CELERY_BROKER_URL": "memory://"} | env
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_with_debug_off_and_no_key_the_platform_refuses_to_start(tmp_path):
    result = manage(["check"], {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY_FILE": str(tmp_path / "none")})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY is not set" in result.stderr


def test_a_key_comes_from_the_environment_then_the_key_file_and_a_public_one_only_with_debug(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    missing = tmp_path / "missing"
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY_FILE"):
        secret_key(debug=False, key_file=missing)
    assert secret_key(debug=True, key_file=missing) == DEBUG_ONLY_SECRET_KEY
    key_file = tmp_path / "secret_key"
    key_file.write_text("from-the-file\n")
    assert secret_key(debug=False, key_file=key_file) == "from-the-file"
    monkeypatch.setenv("DJANGO_SECRET_KEY", "from-the-environment")
    assert secret_key(debug=False, key_file=key_file) == "from-the-environment"


def test_the_demo_generates_its_key_once_and_keeps_it(tmp_path):
    path = tmp_path / "var" / "secret_key"
    dev.ensure_secret_key(path)
    key = path.read_text().strip()
    assert len(key) >= 50 and len(set(key)) >= 5  # what check --deploy asks of a key
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    dev.ensure_secret_key(path)
    assert path.read_text().strip() == key


def compose_web_environment() -> dict[str, str]:
    """The web service's environment in docker-compose.yml (anchors merged), with the values compose would give
    when the operator sets only the required variables: ${VAR:-default} -> default, ${VAR:?message} -> a value."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["web"]["environment"]
    required = {"DJANGO_SECRET_KEY": "k" + "".join(chr(33 + i % 90) for i in range(60))}

    def interpolate(value) -> str:
        def one(match):
            name, op, rest = match.group(1), match.group(2), match.group(3)
            if op in (":-", "-"):
                return rest
            return required[name]  # ":?" or "?": compose refuses to start without it

        return re.sub(r"\$\{(\w+)(:?[-?])?([^}]*)\}", one, str(value))

    return {name: interpolate(value) for name, value in environment.items()}


def test_check_deploy_prints_no_warning_in_the_compose_environment():
    env = compose_web_environment()
    assert env["DJANGO_SECURE_SSL_REDIRECT"] == "1" and env["DJANGO_SECURE_COOKIES"] == "1"
    result = manage(["check", "--deploy", "--fail-level", "WARNING"], env | {"DJANGO_DEBUG": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_without_the_https_switches_check_deploy_names_what_is_missing():
    """The same check does see the defaults (so the test above proves the switches, not a silenced check)."""
    result = manage(["check", "--deploy"], {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "y" * 60 + "abcdef"})
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"security.{warning}" in result.stdout + result.stderr


@pytest.mark.django_db
def test_judge_pages_and_json_are_never_cached_and_carry_a_strict_policy(client, ready_trial, judge):
    client.force_login(judge)
    trial = ready_trial
    page = client.get(f"/judge/trials/{trial.pk}/")
    replies = {
        "queue": client.get("/judge/"),
        "queue.json": client.get("/judge/queue.json"),
        "trial page": page,
        "state.json": client.get(f"/judge/trials/{trial.pk}/state.json"),
        "live": client.get(f"/judge/trials/{trial.pk}/live/"),
        "beat": client.post(f"/judge/trials/{trial.pk}/beat/", {"page": "p" * 32, "seq": "1", "fresh": "1"}),
        "move": client.post(f"/judge/trials/{trial.pk}/move/", {"action": "continue"}, HTTP_ACCEPT="application/json"),
        "verdict": client.post(f"/judge/trials/{trial.pk}/verdict/", {"chosen": "A", "probability": "2"}),
    }
    for name, reply in replies.items():
        assert "no-store" in reply.get("Cache-Control", ""), name
    policy = page["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


@pytest.mark.django_db
def test_the_admin_keeps_scripts_to_its_own_files_and_allows_inline_styles(admin_client):
    policy = admin_client.get("/admin/judging/experiment/")["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self' 'unsafe-inline'"


def test_static_files_keep_their_caching(client):
    reply = client.get("/static/judging/trial.js")
    assert reply.status_code == 200 and "no-store" not in reply.get("Cache-Control", "")


READ_SESSIONS = (
    "from django.conf import settings; d = settings.DATABASES['default']; "
    "print(settings.SESSION_ENGINE, d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])"
)


@pytest.mark.parametrize(
    "cache_url, engine",
    [
        ("redis://127.0.0.1:6379/1", "django.contrib.sessions.backends.cached_db"),
        # A per-process cache would keep a session another process logged out: sessions stay in the database.
        ("locmem://", "django.contrib.sessions.backends.db"),
    ],
)
def test_sessions_are_cached_only_in_a_shared_cache_and_connections_persist(cache_url, engine, tmp_path):
    # A database file (dj-database-url keeps no connection to an in-memory SQLite database).
    env = {"DJANGO_SECRET_KEY": "k" * 50, "DJANGO_CACHE_URL": cache_url, "DATABASE_URL": f"sqlite:///{tmp_path}/db"}
    result = manage(["shell", "-c", READ_SESSIONS], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [engine, "60", "True"]
