#!/usr/bin/env python
"""What a busy worker's take for live turns alone costs (issue 12: inference.base.Taker asks every 0.05 s).

    .venv/bin/python benchmarks/live_take_cost.py --database-url postgres://postgres@127.0.0.1:5432/debate_take_cost

A scratch PostgreSQL database (created when missing, migrated and flushed: never point it at a database you keep)
holding --pre-generated pending pre-generated trials and, for each of --live counts, that many live debates at
round 2 whose first speech is being written: their second speeches are pending but not due, so each take reads
them all and finds nothing, the costliest case short of a turn found. The take is the worker's query for it
(generation.selection.ready_turns with live_only=True, up to 16 turns on the model's queue), called --calls
times after ANALYZE (the statistics autovacuum keeps). Printed per count: wall time and this process's CPU per
take, the PostgreSQL backend's CPU per take (from /proc), the queries per take, and the share of a busy worker's
time the takes would take at one every 0.05 s (inference.base.LIVE_TAKE_SHARE bounds it: slower takes are
spaced out).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse(argv=None):
    from benchmarks.live_poll_cost import scratch_parser

    parser = scratch_parser(__doc__, "debate_take_cost")
    parser.add_argument("--live", type=int, nargs="+", default=[0, 1, 4, 16], help="live debates (default 0 1 4 16)")
    parser.add_argument("--pre-generated", type=int, default=100, help="pending pre-generated trials (default 100)")
    parser.add_argument("--calls", type=int, default=200, help="takes timed per count (default 200)")
    parser.add_argument("--passage-chars", type=int, default=6000)
    parser.add_argument("--json", default="", help="also write the figures here")
    return parser.parse_args(argv)


def pre_generated_trials(count: int, config) -> None:
    """An experiment of ``count`` questions launched: its trials' turns pending, every first one due."""
    from django.contrib.auth import get_user_model

    from judging.importers import import_questions
    from judging.models import Experiment
    from judging.services import experiment_launch

    questions = [
        {"external_id": f"q{i}", "text": f"Question {i}?", "choices": ["Yes", "No"], "correct_index": 0}
        for i in range(count)
    ]
    experiment = Experiment.objects.create(
        name="pre-generated",
        question_set=import_questions(set_name="pre-generated", questions=questions),
        num_questions=count,
        judgments_per_question=1,
        rounds=3,
        debater_model=config,
    )
    experiment.judges.set([get_user_model().objects.create_user("judge-pre-generated", password="x" * 12)])
    experiment_launch(experiment=experiment)


def main(argv=None) -> dict:
    args = parse(argv)
    from benchmarks.live_poll_cost import (
        WRITTEN_BY_THIS_SCRIPT,
        backend_cpu_seconds,
        configure,
        live_trial_at_round_two,
        scratch_database,
    )
    from inference.base import LIVE_TAKE_INTERVAL, LIVE_TAKE_SHARE

    configure(args)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from generation.selection import ready_turns
    from judging.models import ModelConfig

    scratch_database(args)
    made, figures = 0, {}
    for live in sorted(args.live):
        while made < live:
            live_trial_at_round_two(args, name=f"live {made}")
            made += 1
        config = ModelConfig.objects.get(name="poll cost") if made else None
        if config is None:  # no live debate yet: the model configuration the live ones will use
            config = ModelConfig.objects.create(name="poll cost", model_name=WRITTEN_BY_THIS_SCRIPT)
        if not figures:
            pre_generated_trials(args.pre_generated, config)

        def take():
            return ready_turns(limit=16, queue=config.queue, live_only=True)

        if take():
            raise RuntimeError("a live turn was due: the take should find none")
        with connection.cursor() as cursor:  # the planner's statistics, as autovacuum keeps them on a database in use
            cursor.execute("ANALYZE")
        pid = connection.connection.info.backend_pid
        with CaptureQueriesContext(connection) as queries:
            take()
        backend, cpu, wall = backend_cpu_seconds(pid), time.process_time(), time.perf_counter()
        for _ in range(args.calls):
            take()
        wall = (time.perf_counter() - wall) / args.calls
        cpu = (time.process_time() - cpu) / args.calls
        backend = (backend_cpu_seconds(pid) - backend) / args.calls
        figures[live] = {
            "wall_ms": wall * 1000,
            "cpu_ms": cpu * 1000,
            "database_cpu_ms": backend * 1000,
            "queries": len(queries),
            "share_every_interval": wall / LIVE_TAKE_INTERVAL,
        }
        print(
            f"{live} live debates with a turn not yet due, {args.pre_generated} pre-generated trials pending: "
            f"a live take {wall * 1000:.2f} ms ({cpu * 1000:.2f} ms CPU here, {backend * 1000:.2f} ms in PostgreSQL), "
            f"{len(queries)} queries; every {LIVE_TAKE_INTERVAL:g} s: {wall / LIVE_TAKE_INTERVAL:.0%} of a busy "
            f"worker's time (bounded at {LIVE_TAKE_SHARE:.0%})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
