"""The web server as deployed, for tests: gunicorn started with the Dockerfile's command in the project's folder
(gunicorn.conf.py: the ASGI app in uvicorn workers), on a free port of 127.0.0.1."""

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dockerfile_command() -> list[str]:
    [cmd] = re.findall(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    return json.loads(cmd)


@contextlib.contextmanager
def deployed_server(log: Path, database_url: str, **env):
    """The server's base URL while it runs, over ``database_url``; its log in ``log``. Waits until it answers (a
    guard of minutes on a loaded machine), or fails with its log if it exits."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", *dockerfile_command()]
    command[command.index("0.0.0.0:8000")] = f"127.0.0.1:{port}"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
        "DJANGO_SECRET_KEY": "web-server-test-only-" + "x" * 40,
        "DATABASE_URL": database_url,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        **env,
    }
    # The tests' own leniency (Playwright's tests run the ORM beside an event loop) is not the server's.
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        status = None
        for _ in range(3000):
            assert server.poll() is None, log.read_text()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connection.request("GET", "/accounts/login/")
                status = connection.getresponse().status
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, log.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)
