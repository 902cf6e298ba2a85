"""The demo's own timing (``manage.py demo_progress``, run by ``dev.py demo``): its lines, when it stops, and that
``dev.py``'s demo still stops everything it started on SIGTERM."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command

from judging.management.commands.demo_progress import DEMO_JUDGE, progress_line, ready_line
from judging.models import Trial, Turn
from judging.readiness import NO_ESTIMATE, Readiness
from judging.services import experiment_launch

ROOT = Path(__file__).resolve().parents[2]


def test_a_progress_line_says_the_wait_the_speeches_and_the_pace():
    line = progress_line(Readiness(left=28, written=12, finished=12, seconds_per_turn=9.4))
    assert line == "first debate ready in about 4 min (12 of 40 speeches written, 9 s per speech so far)"
    slow = progress_line(Readiness(left=10, written=3, finished=3, seconds_per_turn=150))
    assert slow == "first debate ready in about 25 min (3 of 13 speeches written, 150 s per speech so far)"


def test_without_a_pace_the_line_says_there_is_no_estimate_yet():
    line = progress_line(Readiness(left=40, written=0, finished=0, seconds_per_turn=None))
    assert line == f"{NO_ESTIMATE} (0 of 40 speeches written)"


def test_the_last_line_gives_the_address_and_how_long_it_took():
    assert ready_line("http://127.0.0.1:8765/", timedelta(minutes=7, seconds=10)) == (
        "first debates ready after 7 min: open http://127.0.0.1:8765/judge/"
    )
    # Ready at once (an earlier run wrote them): no time to report.
    assert ready_line("http://x/", timedelta(seconds=2)) == "first debates ready: open http://x/judge/"


@pytest.fixture
def demo_judge(django_user_model):
    return django_user_model.objects.create_user(username=DEMO_JUDGE, password="judge-demo")


def progress(*args) -> str:
    out = io.StringIO()
    call_command("demo_progress", "--url", "http://127.0.0.1:8765/", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_the_estimate_then_stops_once_a_debate_is_ready(
    make_model_config, make_experiment, demo_judge
):
    experiment = make_experiment(make_model_config("m"), judges=[demo_judge], num_questions=2)
    experiment_launch(experiment=experiment)
    first = experiment.trials.order_by("id").first()
    turns = Turn.objects.filter(trial=first).count()  # what the first is waiting for: its own turns
    # No turn done yet: no estimate.
    assert progress("--once") == f"==> {NO_ESTIMATE} (0 of {turns} speeches written)\n"
    # A debate ready: the last line, and the loop ends by itself (no --once).
    Trial.objects.filter(pk=first.pk).update(status=Trial.Status.READY)
    assert progress("--every", "3600") == "==> first debates ready: open http://127.0.0.1:8765/judge/\n"


def test_the_command_is_silent_when_nothing_is_being_prepared(make_model_config, make_experiment, demo_judge):
    experiment_launch(experiment=make_experiment(make_model_config("m"), judges=[demo_judge], mode="live"))
    assert progress("--every", "3600") == ""  # live trials only: nothing to wait for, and it stops


def test_the_command_needs_the_demo(db):
    with pytest.raises(SystemExit, match="setup_demo"):
        progress("--once")


# dev.py's demo: the worker and the progress printer run beside the web server; SIGTERM stops them all. Real
# processes (sleep stands in for each, writing its pid), dev.serve as cmd_demo calls it. Popen records each child's
# pid from the parent, and can send the demo a signal while one named child is being started: after the fork, before
# Popen returns.
SERVE = """
import os, subprocess, sys
sys.path.insert(0, {root!r})
import dev
d = {dir!r}

class Popen(subprocess.Popen):
    def _execute_child(self, args, *rest):
        super()._execute_child(args, *rest)
        with open(f"{{d}}/started", "a") as f:
            f.write(f"{{self.pid}}\\n")
        if {signal_while_starting!r} and {signal_while_starting!r} in " ".join(args):
            os.kill(os.getpid(), {signum})

subprocess.Popen = Popen
helper = lambda name: ["sh", "-c", f"echo $$ > {{d}}/{{name}}.pid; exec sleep 600"]
dev.serve([(helper("worker"), {{}}), (helper("progress"), {{}}), (["true"], {{}})], helper("server"), env=os.environ)
print("stopped", flush=True)
"""


def _demo(tmp_path, signum=signal.SIGTERM, sigint_inherited=signal.SIG_DFL, signal_while_starting=""):
    script = SERVE.format(
        root=str(ROOT), dir=str(tmp_path), signum=int(signum), signal_while_starting=signal_while_starting
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint_inherited),
    )


def _stopped_cleanly(demo, tmp_path):
    try:
        out, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert demo.returncode == 0 and out == "stopped\n"
    pids = [int(line) for line in (tmp_path / "started").read_text().split()]
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids), pids
    return pids


def _wait_for(paths, seconds=30):
    deadline = time.monotonic() + seconds
    while not all(p.exists() and p.read_text().strip() for p in paths):
        assert time.monotonic() < deadline, f"not started: {paths}"
        time.sleep(0.1)
    return [int(p.read_text()) for p in paths]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still in the process table: only a zombie (ended, not yet reaped by init) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, sigint_inherited",
    [
        (signal.SIGTERM, signal.SIG_DFL),
        (signal.SIGHUP, signal.SIG_DFL),
        (signal.SIGINT, signal.SIG_DFL),  # started from a terminal
        # Started in the background by a non-interactive shell (as CI starts the tests): SIGINT arrives ignored.
        (signal.SIGINT, signal.SIG_IGN),
    ],
)
def test_the_demo_stops_the_worker_the_printer_and_the_server_on_a_signal(tmp_path, signum, sigint_inherited):
    demo = _demo(tmp_path, signum, sigint_inherited)
    try:
        _wait_for([tmp_path / f"{name}.pid" for name in ("worker", "progress", "server")])
    except AssertionError:
        os.killpg(demo.pid, signal.SIGKILL)
        raise
    # Ctrl-C reaches the terminal's foreground process group: dev.py only, the children being in their own
    # sessions; SIGTERM and SIGHUP reach dev.py only.
    if signum == signal.SIGINT:
        os.killpg(demo.pid, signum)
    else:
        demo.send_signal(signum)
    assert len(_stopped_cleanly(demo, tmp_path)) == 4  # the helpers, `true` and the server


@pytest.mark.slow
@pytest.mark.parametrize("child, started", [("worker", 1), ("server", 4)])
def test_a_signal_while_a_child_is_being_started_stops_it_and_starts_no_other(tmp_path, child, started):
    # Raised from the handler there, the stop would leave that child running with no one holding it (a demo stopped
    # as it starts): the demo did not end (the orphaned server kept its stdout open) and the child ran on.
    demo = _demo(tmp_path, signal_while_starting=f"{child}.pid")
    assert len(_stopped_cleanly(demo, tmp_path)) == started


@pytest.mark.slow
@pytest.mark.parametrize("seconds, hurry", [(0.5, lambda: False), (3600, lambda: True)])  # a second Ctrl-C hurries
def test_a_helper_that_ignores_sigterm_is_killed(tmp_path, seconds, hurry):
    sys.path.insert(0, str(ROOT))
    import dev

    stubborn = subprocess.Popen(
        ["sh", "-c", f"trap '' TERM; echo $$ > {tmp_path}/up; sleep 600"], start_new_session=True
    )
    _wait_for([tmp_path / "up"])
    dev.stop(stubborn, seconds=seconds, hurry=hurry)
    assert stubborn.returncode == -signal.SIGKILL
