#!/usr/bin/env python
"""Export N verdict rows and report each format's wall time and peak memory (RSS).

    .venv/bin/python benchmarks/export_benchmark.py --rows 1000000
    .venv/bin/python benchmarks/export_benchmark.py --rows 1000000 --database-url postgres://postgres@127.0.0.1/bench

It fills a scratch database (a SQLite file in a temporary folder unless
--database-url is given; that database is flushed first) with one experiment
of N judged trials, then runs `manage.py export_results --table verdicts` once
per format, each in its own process, and prints wall seconds and peak RSS of
that process (os.wait4). Target (issue 4): under 60 s and 300 MB for 1,000,000
rows on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def populate(rows: int) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from judging.importers import import_questions
    from judging.models import Experiment, ModelConfig, Trial, Verdict

    call_command("migrate", "--no-input", verbosity=0)
    call_command("flush", "--no-input", verbosity=0)
    judges = [get_user_model().objects.create_user(username=f"judge{i}") for i in range(20)]
    n_questions = max(1, rows // 20)
    qs = import_questions(
        set_name="bench",
        questions=[
            {
                "external_id": f"q{i}",
                "text": f"Question {i}?",
                "choices": ["yes", "no"],
                "correct_index": i % 2,
                "passage": "",
                "metadata": {},
            }
            for i in range(n_questions)
        ],
    )
    question_ids = list(qs.questions.values_list("id", flat=True))
    model = ModelConfig.objects.create(name="bench", model_name="bench")
    experiment = Experiment.objects.create(
        name="bench",
        question_set=qs,
        num_questions=n_questions,
        judgments_per_question=20,
        debater_model=model,
        status="launched",
    )
    now = timezone.now()
    batch = 20_000
    for start in range(0, rows, batch):
        with transaction.atomic():
            trials = Trial.objects.bulk_create(
                [
                    Trial(
                        experiment=experiment,
                        question_id=question_ids[i // 20],
                        judge=judges[i % 20],
                        honest_side="AB"[i % 2],
                        answer_a_index=i % 2,
                        answer_b_index=1 - i % 2,
                        first_speaker="A",
                        queue_position=i // 20,
                        status="judged",
                    )
                    for i in range(start, min(rows, start + batch))
                ]
            )
            if trials[0].pk is None:  # backends that do not return ids from bulk inserts
                trials = list(Trial.objects.filter(experiment=experiment).order_by("-id")[: len(trials)])
            Verdict.objects.bulk_create(
                [
                    Verdict(
                        trial=t,
                        judge_id=t.judge_id,
                        chosen="A",
                        probability=0.5 + (t.pk % 50) / 100,
                        rationale="The first debater quoted the passage; the second did not.",
                        seconds_on_page=60.0 + t.pk % 120,
                        active_seconds=50.0,
                        created_at=now,
                    )
                    for t in trials
                ]
            )
    return experiment.pk


def measure(experiment_id: int, fmt: str, out_dir: Path, env: dict) -> tuple[float, float, int]:
    target = out_dir / f"verdicts.{fmt}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "export_results",
            str(experiment_id),
            "--table",
            "verdicts",
            "--format",
            fmt,
            "--output",
            str(target),
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"export as {fmt} failed (status {status})")
    return seconds, usage.ru_maxrss / 1024, target.stat().st_size  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="scratch database (flushed!); default: a temporary SQLite file")
    parser.add_argument("--formats", nargs="+", default=["csv", "jsonl", "parquet"])
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="export-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
        "DATABASE_URL": args.database_url or f"sqlite:///{scratch / 'bench.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    experiment_id = populate(args.rows)
    print(
        f"populated {args.rows:,} verdicts in {time.perf_counter() - started:.0f} s "
        f"({env['DATABASE_URL'].split(':')[0]})",
        flush=True,
    )
    print(f"{'format':8} {'rows':>10} {'seconds':>8} {'peak RSS MB':>12} {'file MB':>8}")
    for fmt in args.formats:
        seconds, rss, size = measure(experiment_id, fmt, scratch, env)
        print(f"{fmt:8} {args.rows:>10,} {seconds:>8.1f} {rss:>12.0f} {size / 1e6:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
