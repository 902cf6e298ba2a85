"""The web server as deployed: gunicorn started with the Dockerfile's command in the project's folder takes its app
(ASGI) and workers (uvicorn) from gunicorn.conf.py and serves the pages; benchmarks/load_test.py's smoke test
(tests/benchmarks) drives it with judges whose live pages follow its streams."""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_command() -> list[str]:
    [cmd] = re.findall(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    return json.loads(cmd)


def test_the_dockerfile_and_compose_leave_the_app_and_its_workers_to_gunicorn_conf():
    assert dockerfile_command() == ["gunicorn", "--bind", "0.0.0.0:8000"]
    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]
    assert re.search(r"gunicorn --bind 0\.0\.0\.0:8000\"?\s*$", web), web


@pytest.mark.integration
def test_gunicorn_as_deployed_serves_the_pages(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", *dockerfile_command()]
    command[command.index("0.0.0.0:8000")] = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
        "DJANGO_SECRET_KEY": "web-server-test-only-" + "x" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",  # the login page reads nothing from it
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
    }
    log = tmp_path / "gunicorn.log"
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        status = None
        for _ in range(3000):  # until it answers (a guard of minutes on a loaded machine), or exits
            assert server.poll() is None, log.read_text()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connection.request("GET", "/accounts/login/")
                status = connection.getresponse().status
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=60)


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
