"""The web server as deployed: gunicorn started with the Dockerfile's command in the project's folder takes its app
(ASGI) and workers (uvicorn) from gunicorn.conf.py and serves the pages; benchmarks/load_test.py's smoke test
(tests/benchmarks) drives it with judges whose live pages follow its streams."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.deployed_server import ROOT, deployed_server, dockerfile_command


def test_the_dockerfile_and_compose_leave_the_app_and_its_workers_to_gunicorn_conf():
    assert dockerfile_command() == ["gunicorn", "--bind", "0.0.0.0:8000"]
    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]
    assert re.search(r"gunicorn --bind 0\.0\.0\.0:8000\"?\s*$", web), web


@pytest.mark.integration
def test_gunicorn_as_deployed_serves_the_pages(tmp_path):
    # The login page reads nothing from the database.
    log = tmp_path / "gunicorn.log"
    with deployed_server(log, f"sqlite:///{tmp_path / 'db.sqlite3'}"):
        pass  # it answered the login page with 200
    # Each worker, once it had loaded the app, kept it out of the garbage collector's full passes (long_lived.py).
    logged = log.read_text()  # (a worker logs it before it serves: those still booting when stopped may not have)
    serving = logged.count("Application startup complete")
    assert serving >= 1 and logged.count("long-lived objects kept out of the garbage collector's passes") >= serving


def test_the_workers_are_gunicorn_confs():
    """As gunicorn resolves its settings in the project's folder (the Dockerfile's WORKDIR): the file's workers."""
    env = {**os.environ, "DJANGO_SECRET_KEY": "web-server-test-only-" + "x" * 40}
    printed = subprocess.run(
        [sys.executable, "-m", *dockerfile_command(), "--print-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert printed.returncode == 0, printed.stderr
    settings = dict(re.findall(r"^(\w+)\s+= (.*)$", printed.stdout, re.MULTILINE))
    assert (settings["wsgi_app"], settings["workers"]) == ("debate_platform.asgi:application", "3")
    assert settings["worker_class"] == "uvicorn_worker.UvicornWorker"
