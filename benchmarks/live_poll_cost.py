#!/usr/bin/env python
"""What one poll of a live judge page costs the server: CPU per live update (issue 12, part 6).

    .venv/bin/python benchmarks/live_poll_cost.py \\
        --database-url postgres://postgres@127.0.0.1:5432/debate_poll_cost --redis-url redis://127.0.0.1:6379/7
    .venv/bin/python benchmarks/live_poll_cost.py --profile 25      # also the 25 costliest functions of a poll

One live debate at round 2, its second speech being written: a scratch PostgreSQL database (created when missing,
migrated and flushed: never point it at a database you keep), the cache and sessions in Redis, as deployed.
The judge's page is played in this process through Django's test client (every middleware, no HTTP server) and
polls the live endpoint as htmx does, sending back the tag it was last given. Between polls another connection
writes the speech's partial text, as a worker does, so that every poll has something new or nothing:

- "grown": the speech grew, and the page is sent only its new characters (JSON; judging.live_tag);
- "rendered": the same, but the page asks for the whole partials (as trial.js does when it could not append, and
  as every poll is answered when more than the speech's text changed: a speech done, a new round);
- "unchanged": nothing new, answered 304;
- "quoted": the speech's new characters finish a quote, so the page is sent the speech whole, in text and marked
  quotes (the passage read and the quotes checked; judging.live_tag.Current.segments);
- "pushed": the same news as "grown" without the request (no middleware, session, user or health check): what a
  server pushing updates spends on each (judging/live_stream.py), less the event loop and the socket;
- "pushed render": the partials as a stream renders them where a poll would have rendered (views.pushed_partials).

Printed per poll, best of --repeats runs of --polls: this process's CPU time and the PostgreSQL backend's (read
from /proc), and the queries sent.

The load test (benchmarks/load_test.py) measures the same under many judges with gunicorn; this one isolates
the poll, so a change to it can be measured in seconds on a machine that is not quiet.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scratch_parser(doc: str, database: str) -> argparse.ArgumentParser:
    """A script's parser with --database-url (a scratch PostgreSQL database, by default ``database``) and
    --redis-url (the cache and sessions), the two that ``configure`` and ``scratch_database`` use."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=f"postgres://postgres@127.0.0.1:5432/{database}",
        help="a scratch PostgreSQL database: created when missing, then flushed",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7", help="cache and sessions (flushed)")
    return parser


def parse(argv=None):
    parser = scratch_parser(__doc__, "debate_poll_cost")
    parser.add_argument("--polls", type=int, default=200, help="polls per run (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind; the best is printed (default 3)")
    parser.add_argument("--passage-chars", type=int, default=6000)
    parser.add_argument("--profile", type=int, default=0, help="print this many costliest functions of a grown poll")
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of a rendered poll on their own")
    parser.add_argument("--json", default="", help="also write the figures here")
    return parser.parse_args(argv)


# The model configuration's name for a model that never runs: this script writes the speeches.
WRITTEN_BY_THIS_SCRIPT = "none (written by this script)"


def configure(args) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "poll-cost-only-secret-key-" + "x" * 40,
            "DATABASE_URL": args.database_url,
            "DJANGO_CACHE_URL": args.redis_url,
            "CELERY_BROKER_URL": "memory://",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()


def scratch_database(args) -> None:
    """--database-url created when missing, migrated and flushed; the cache cleared."""
    from django.core.cache import cache
    from django.core.management import call_command

    from benchmarks.load_test import database_create

    if not args.database_url.startswith("postgres"):
        raise SystemExit("--database-url must be a PostgreSQL URL: the poll is measured as deployed")
    database_create(args.database_url)
    call_command("migrate", "--no-input", verbosity=0)
    call_command("flush", "--no-input", verbosity=0)
    cache.clear()


def live_trial_at_round_two(args, name: str = "poll cost"):
    """A judge and their opened live debate: round 1 written, the first speech of round 2 being written."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from benchmarks.load_test import passage_text, speech_text
    from judging.importers import import_questions
    from judging.models import Experiment, ModelConfig, Trial, Turn
    from judging.services import experiment_launch, trial_open

    judge = get_user_model().objects.create_user("judge-" + name.replace(" ", "-"), password="x" * 12)
    passage = passage_text(args.passage_chars, seed=1)
    question_set = import_questions(
        set_name=name,
        questions=[
            {
                "external_id": "q0",
                "text": "Which answer does the passage support?",
                "choices": ["The first answer", "The second answer"],
                "correct_index": 0,
                "passage": passage,
                "metadata": {},
            }
        ],
    )
    experiment = Experiment.objects.create(
        name=name,
        question_set=question_set,
        num_questions=1,
        judgments_per_question=1,
        mode=Experiment.Mode.LIVE,
        rounds=3,
        min_rounds=1,
        turn_style=Experiment.TurnStyle.SEQUENTIAL,
        debater_model=ModelConfig.objects.get_or_create(name="poll cost", model_name=WRITTEN_BY_THIS_SCRIPT)[0],
    )
    experiment.judges.set([judge])
    experiment_launch(experiment=experiment)
    trial = Trial.objects.get(experiment=experiment)
    trial_open(trial=trial)
    import random

    rng = random.Random(3)
    for turn in trial.turns.all():  # round 1, as a worker writes it
        Turn.objects.filter(pk=turn.pk).update(
            status=Turn.Status.DONE, text=speech_text(passage, 700, rng), finished_at=timezone.now()
        )
    # The judge continues to round 2; its first speech is claimed and being written.
    from judging.services import live_move

    live_move(trial_id=trial.pk, judge=judge, action="continue")
    writing = trial.turns.filter(round=2).order_by("index").first()
    Turn.objects.filter(pk=writing.pk).update(
        status=Turn.Status.RUNNING, claimed_at=timezone.now(), claim_token="poll-cost", claimed_by="poll-cost"
    )
    return judge, trial, writing, speech_text(passage, 700, rng)


def backend_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def breakdown(args, judge, trial) -> dict:
    """This process's CPU per call of each part of a rendered poll, called directly."""
    from django.test import RequestFactory

    from judging import views

    request = RequestFactory().get("/")
    request.user = judge
    own = views._own_trial(request, trial.pk)
    context = views._trial_context(own)
    parts = {
        "the trial and its turns read (_own_trial)": lambda: views._own_trial(request, trial.pk),
        "the judge's view built and tagged (_trial_context)": lambda: views._trial_context(own),
        "the partials rendered": lambda: views._live_partials(request, own, context),
    }
    times = {}
    for name, part in parts.items():
        cpu = time.process_time()
        for step in range(args.polls):
            part()
        times[name] = (time.process_time() - cpu) / args.polls * 1000
        print(f"    {name}: {times[name]:.2f} ms")
    return times


def main(argv=None) -> dict:
    args = parse(argv)
    configure(args)
    import psycopg
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    scratch_database(args)
    judge, trial, writing, speech = live_trial_at_round_two(args)
    client = Client()
    client.force_login(judge)
    url = reverse("judging:trial_live", args=[trial.pk])
    # The worker's writes go through a connection of their own, so the backend measured serves only the polls.
    writer = psycopg.connect(args.database_url, autocommit=True)
    tag = ""

    def poll(grow: bool, step: int, render: bool = False) -> str:
        nonlocal tag
        if grow:  # the speech grows by 1 to 600 characters, then starts again (a render: not a beginning of it)
            writer.execute(
                "UPDATE judging_turn SET partial_text = %s WHERE id = %s", [speech[: 20 + step % 600], writing.pk]
            )
        headers = {"HTTP_X_LIVE_FULL": "1"} if render else {}  # as trial.js asks when it could not append
        response = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_PTAG=tag, **headers)
        tag = response.headers.get("HX-PTag", tag)
        if response.status_code != 200:
            return str(response.status_code)
        if response["Content-Type"] != "application/json":
            return "200 partials"
        return "200 rewrite" if "rewrite" in json.loads(response.content) else "200 news"

    for step in range(20):  # warm: imports, templates, the passage's normalisation
        poll(True, step)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    next_beat = 0.0

    def heartbeat() -> None:
        """The writing turn's claim refreshed as its worker's heartbeat would: a claim older than
        LIVE_DEAD_CLAIM_SECONDS is a dead worker's, and a render would release it mid-measurement."""
        nonlocal next_beat
        if time.monotonic() >= next_beat:
            writer.execute("UPDATE judging_turn SET claimed_at = now() WHERE id = %s", [writing.pk])
            next_beat = time.monotonic() + settings.CLAIM_HEARTBEAT_SECONDS

    def measure(kind: str, one_poll) -> None:
        best, answered = None, Counter()
        for _ in range(args.repeats):
            cpu, db = time.process_time(), backend_cpu_seconds(backend)
            for step in range(1, args.polls + 1):
                heartbeat()
                answered[one_poll(step)] += 1
            run = (
                (time.process_time() - cpu) / args.polls * 1000,
                (backend_cpu_seconds(backend) - db) / args.polls * 1000,
            )
            if best is None or sum(run) < sum(best):
                best = run
        with CaptureQueriesContext(connection) as queries:
            one_poll(args.polls + 1)
        figures[kind] = {"web_ms": best[0], "database_ms": best[1], "queries": len(queries), "answered": dict(answered)}
        print(
            f"{kind:>9} polls (answered {dict(sorted(answered.items()))}): {best[0]:.1f} ms web CPU + "
            f"{best[1]:.1f} ms database CPU = {sum(best):.1f} ms per poll, {len(queries)} queries"
        )

    figures = {}
    kinds = (("grown", True, False), ("rendered", True, True), ("unchanged", False, False))
    for kind, grow, render in kinds:
        poll(grow, 0)  # the page now shows what the server has: from here on, "unchanged" polls have nothing new
        measure(kind, lambda step, grow=grow, render=render: poll(grow, step, render))
    # "quoted": the page has the speech up to just before its first quote's end, the speech goes past it; the page
    # keeps that tag, so every poll finds the same news: the speech whole, its quotes marked.
    finished = speech.index("</quote>") + len("</quote>")
    writer.execute("UPDATE judging_turn SET partial_text = %s WHERE id = %s", [speech[: finished - 1], writing.pk])
    poll(False, 0, render=True)
    unfinished = tag
    writer.execute("UPDATE judging_turn SET partial_text = %s WHERE id = %s", [speech[: finished + 10], writing.pk])

    def quoted(step):
        nonlocal tag
        tag = unfinished
        return poll(False, step)

    measure("quoted", quoted)
    # "pushed": what a server that pushes updates would still spend on one, the request left out (no middleware,
    # session, user or health check): the trial's tag read, the news computed and encoded, for a page one growth
    # behind. Not a measurement of push itself (no event loop, no socket): its floor per update.
    from django.utils import timezone

    from judging import live_tag, services, views

    def tag_now():
        return live_tag.current(trial.pk, judge.pk, dead_before=services.live_dead_claim_cutoff(timezone.now()))

    writer.execute("UPDATE judging_turn SET partial_text = %s WHERE id = %s", [speech[: finished + 5], writing.pk])
    behind = tag_now().tag
    writer.execute("UPDATE judging_turn SET partial_text = %s WHERE id = %s", [speech[: finished + 10], writing.pk])

    def pushed(step):
        now = tag_now()
        return f"{views._live_news(now, now.news_since(behind)).status_code} news, no request"

    measure("pushed", pushed)

    # "pushed render": what a stream spends where a poll would have rendered (judging/live_stream.py: the partials
    # rendered in the feed's thread, for the request that opened the stream; no middleware, session or user read).
    from django.test import RequestFactory

    stream_request = RequestFactory().get(reverse("judging:trial_stream", args=[trial.pk]))
    stream_request.user = judge

    def pushed_render(step):
        html, _ = views.pushed_partials(stream_request, trial.pk)
        return "partials, no request" if "live-status" in html else "?"

    measure("pushed render", pushed_render)
    if args.breakdown:
        figures["breakdown"] = breakdown(args, judge, trial)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for step in range(args.polls):
            poll(True, step)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    writer.close()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
