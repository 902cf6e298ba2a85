#!/usr/bin/env python
"""What a busy worker's take for live turns alone costs (issue 12: inference.base.Taker asks every 0.05 s).

    .venv/bin/python benchmarks/live_take_cost.py --database-url postgres://postgres@127.0.0.1:5432/debate_take_cost

A scratch PostgreSQL database (created when missing, migrated and flushed: never point it at a database you keep)
holding --pre-generated pending pre-generated trials and, for each of --live counts, that many live debates at
round 2 whose first speech is being written: their second speeches are pending but not due. Timed, --calls times
each, after ANALYZE (the statistics autovacuum keeps):

- the check a take for live turns alone makes between the worker's full looks
  (generation.selection.LiveTurnNews.any: is there a pending live turn newer than the last look? here, none);
- the look itself (generation.selection.ready_turns with live_only=True, up to 16 turns on the model's queue),
  which reads every live debate and replays its protocol to find none due: what every live take cost before
  the check, and what a full look costs.

Printed per count: wall time per call, this process's CPU and the PostgreSQL backend's (from /proc), the
queries, and the share of a busy worker's time each would take at one every LIVE_TAKE_INTERVAL.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from unittest import mock

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


def timed(call, calls: int) -> dict:
    """Wall time and CPU per call of ``call`` (this process's and the PostgreSQL backend's) and its queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from benchmarks.live_poll_cost import backend_cpu_seconds

    pid = connection.connection.info.backend_pid
    with CaptureQueriesContext(connection) as queries:
        call()
    backend, cpu, wall = backend_cpu_seconds(pid), time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    wall, cpu = (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls
    return {
        "wall_ms": wall * 1000,
        "cpu_ms": cpu * 1000,
        "database_cpu_ms": (backend_cpu_seconds(pid) - backend) / calls * 1000,
        "queries": len(queries),
    }


def main(argv=None) -> dict:
    args = parse(argv)
    from benchmarks.live_poll_cost import WRITTEN_BY_THIS_SCRIPT, configure, live_trial_at_round_two, scratch_database
    from inference.base import LIVE_TAKE_INTERVAL, LIVE_TAKE_SHARE

    configure(args)
    from django.db import connection

    from generation.selection import LiveTurnNews, ready_turns
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

        def look():
            return ready_turns(limit=16, queue=config.queue, live_only=True)

        with connection.cursor() as cursor:  # the planner's statistics, as autovacuum keeps them on a database in use
            cursor.execute("ANALYZE")
        news = LiveTurnNews()
        if news.look(look):
            raise RuntimeError("a live turn was due: the take should find none")
        with mock.patch("inference.base.TAKE_INTERVAL", math.inf):  # between full looks, however long this runs
            if news.any():
                raise RuntimeError("news of a live turn: the check should find none")
            figures[live] = {"look": timed(look, args.calls), "check": timed(news.any, args.calls)}
        look_ms, check_ms = figures[live]["look"]["wall_ms"], figures[live]["check"]["wall_ms"]
        print(
            f"{live} live debates with a turn not yet due, {args.pre_generated} pre-generated trials pending: "
            f"the check for new live turns {check_ms:.2f} ms ({figures[live]['check']['queries']} query), "
            f"{check_ms / 1000 / LIVE_TAKE_INTERVAL:.1%} of a busy worker's time at one every "
            f"{LIVE_TAKE_INTERVAL:g} s; reading the live trials {look_ms:.2f} ms "
            f"({figures[live]['look']['cpu_ms']:.2f} ms CPU here, {figures[live]['look']['database_cpu_ms']:.2f} ms "
            f"in PostgreSQL, {figures[live]['look']['queries']} queries), {look_ms / 1000 / LIVE_TAKE_INTERVAL:.0%} "
            f"at the same rate (bounded at {LIVE_TAKE_SHARE:.0%})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
