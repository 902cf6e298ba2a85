#!/usr/bin/env python
"""The web tier under load: judges in browsers against gunicorn and PostgreSQL, as docker-compose runs them.

    .venv/bin/python benchmarks/load_test.py                          # 100 judges, mixed, then all on live pages
    .venv/bin/python benchmarks/load_test.py --judges 200 --scenarios live
    .venv/bin/python benchmarks/load_test.py --sweep 25,50,75,100,150 --scenarios mixed   # the knee
    .venv/bin/python benchmarks/load_test.py --judges 3 --seconds 5 --json out.json      # a smoke run

Each run:
1. Sets up a scratch PostgreSQL database (--database-url; created when missing, migrated, flushed: never point it
   at a database you keep) with judges and, for each scenario, fresh experiments: live ones (sequential debates
   written while the judge watches) and, in the mixed scenario, pre-generated ones whose transcripts are written
   at once. No model runs: a writer process stands in for the GPU worker, claiming each live turn through the
   platform's claim API, writing its partial_text every 0.25 s (as generation.session does) and recording it done.
2. Starts gunicorn exactly as the Dockerfile and docker-compose.yml do (in the platform's folder, whose
   gunicorn.conf.py names the app and workers: the ASGI app in 3 uvicorn workers, live pages pushed their updates);
   --server wsgi serves the WSGI app in sync workers instead, where live pages poll, to compare; --workers and
   --worker-class override the workers. The cache and sessions in Redis (--redis-url), the HTTPS settings off (plain
   http on 127.0.0.1).
3. Drives it with locust (headless, as a library, in a process of its own): each simulated judge logs in (once:
   its cookies are kept for later steps), asks for its next trial, starts it (a POST), and on a live trial, while
   the debaters speak, follows the page's event stream as trial.js does (pushed: news and renders, reconnecting
   from its tag) or polls the live endpoint every 0.4 s as htmx does (sending back the HX-PTag it was given), makes
   moves between rounds (a leaning, a question, continue, end) and gives a verdict; a pre-generated trial is read,
   then judged. Every 15 s the page's heartbeat is posted. Think times are compressed (seconds).
4. Measures, once every judge is logged in and for --seconds: per endpoint requests, p50/p95 and errors; requests
   per second; the update lag (how long after the writer wrote a piece of a speech the judge's page had it: the
   writer stamps each piece with the time, "update lag" in the table, not a request); server CPU (the gunicorn
   workers' and their PostgreSQL backends' CPU time over the window, read from /proc) per live update (each poll,
   or each event pushed); then stops the judges between requests and compares the verdicts the server acknowledged
   (302 to the next trial) with the verdicts stored.

Scenarios: "mixed" (live and pre-generated trials alternate in each judge's queue) and "live" (every judge on a
live trial, its debaters writing). --sweep runs the scenarios for each judge count and reports the knee: the
smallest count whose worst endpoint p95 (of the requests, not the update lag) passes 100 ms. The load generator
and the writer run on the same machine and take CPU from the server; their own CPU is printed so that a reader
can tell.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("mixed", "live")
PASSWORD = "load-test-judge"
WRITER_NAME = "load-test-writer"
# The application names the server's and the writer's PostgreSQL connections carry, so that the server's
# backends (whose CPU is the server's) are told from the writer's and from anything else on the machine.
WEB_APPLICATION = "load-test-web"
WRITER_APPLICATION = "load-test-writer"
LIVE_POLL_SECONDS = 0.4  # templates/judging/partials/live_status.html: hx-trigger="every 400ms"
BEAT_SECONDS = 15  # settings.JUDGE_BEAT_SECONDS
KNEE_P95_MS = 100
# Not a request: how long after the writer wrote a piece of a speech the judge's page had it (polled or pushed).
UPDATE_LAG = "update lag"
# Not a request either: a logged-in judge sent to log in (drive.session_lost), counted as an error.
SESSION_LOST = "session lost"

# ----------------------------------------------------------------------------------------- scratch data ----

WORDS = (
    "river harbour merchant winter council letter bridge garden silver lantern market captain village north "
    "southern quiet ancient promise journey stone field evening morning record treaty island mountain forest "
    "keeper signal window ledger voyage orchard border tower valley weather harvest courier station"
).split()


def passage_text(chars: int, seed: int) -> str:
    """Sentences of plain words, the same for every question (quotes verify on every trial), then one of its own."""
    rng = random.Random(seed)
    sentences, length = [], 0
    while length < chars:
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        sentence = " ".join(words).capitalize() + "."
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)


def speech_text(passage: str, chars: int, rng: random.Random) -> str:
    """A debater's speech of about ``chars`` characters with a verified quote (words of the passage) and an
    unverified one, as model speeches have."""
    words = passage.split()
    start = rng.randrange(0, len(words) - 8)
    verified = " ".join(words[start : start + 6]).strip(".")
    parts = [
        "My answer is supported by the text.",
        f"<quote>{verified}</quote>",
        "shows it plainly, while my opponent relies on",
        "<quote>a sentence the passage never contains</quote>.",
    ]
    while sum(len(p) + 1 for p in parts) < chars:
        parts.append(" ".join(rng.choice(WORDS) for _ in range(10)) + ".")
    return " ".join(parts)[:chars]


def scratch_env(args, application: str) -> dict:
    """The environment of every process of the run: the scratch database, Redis for the cache (and sessions) and
    the broker, plain http."""
    separator = "&" if "?" in args.database_url else "?"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "load-test-only-secret-key-" + "x" * 40),
        "DATABASE_URL": f"{args.database_url}{separator}application_name={application}",
        "DJANGO_CACHE_URL": args.redis_url,
        "CELERY_BROKER_URL": args.redis_url,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_PROXY_SSL_HEADER": "0",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "DEBATE_PROXY_COUNT": "0",
        "PYTHONPATH": str(args.app_dir),
    }


def database_create(url: str) -> None:
    """Create the scratch database when it does not exist (PostgreSQL only)."""
    import psycopg
    from django.db import connection

    name = connection.settings_dict["NAME"]
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("dbname", "database")}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')


def database_prepare(args) -> None:
    """Migrate and flush the scratch database and create the judges (one password hash for all: hashing is
    slow on purpose)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command

    if not args.database_url.startswith("postgres"):
        raise SystemExit("--database-url must be a PostgreSQL URL: the load test measures the server as deployed")
    database_create(args.database_url)
    call_command("migrate", "--no-input", verbosity=0)
    call_command("flush", "--no-input", verbosity=0)
    password = make_password(PASSWORD)
    users = get_user_model()
    users.objects.bulk_create(users(username=judge_name(i), password=password) for i in range(max(args.judge_counts)))


def judge_name(i: int) -> str:
    return f"judge{i:04d}"


def trials_create(scenario: str, judges: int, args) -> dict:
    """Fresh experiments for ``judges`` judges (earlier steps' are deleted): each judge gets --trials trials,
    live ones, alternating with pre-generated ones in the mixed scenario."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from judging.importers import import_questions
    from judging.models import Experiment, ModelConfig, Question, QuestionSet, Trial, Turn
    from judging.services import experiment_launch

    Experiment.objects.all().delete()
    Question.objects.all().delete()
    QuestionSet.objects.all().delete()
    ModelConfig.objects.all().delete()
    model = ModelConfig.objects.create(name="load test", model_name="none (the writer process)")
    passage = passage_text(args.passage_chars, seed=1)
    question_set = import_questions(
        set_name="load test",
        questions=[
            {
                "external_id": f"q{i}",
                "text": f"Question {i}: which answer does the passage support?",
                "choices": [f"The first answer to question {i}", f"The second answer to question {i}"],
                "correct_index": i % 2,
                "passage": f"{passage} This passage belongs to question {i}.",
                "metadata": {},
            }
            for i in range(judges)
        ],
    )
    people = list(get_user_model().objects.filter(username__in=[judge_name(i) for i in range(judges)]))
    rng = random.Random(2)
    live_count = 0
    for n in range(args.trials):
        live = scenario == "live" or n % 2 == 0
        experiment = Experiment.objects.create(
            name=f"load test {n} ({'live' if live else 'pre-generated'})",
            question_set=question_set,
            num_questions=judges,
            judgments_per_question=1,
            mode=Experiment.Mode.LIVE if live else Experiment.Mode.PREGENERATED,
            rounds=3,
            min_rounds=1,
            turn_style=Experiment.TurnStyle.SEQUENTIAL,
            debater_model=model,
            seed=n,
        )
        experiment.judges.set(people)
        experiment_launch(experiment=experiment)
        live_count += live * judges
        if not live:  # written at once, as a worker would have before the judges came
            written = list(Turn.objects.filter(trial__experiment=experiment))
            for turn in written:
                turn.status, turn.finished_at = Turn.Status.DONE, timezone.now()
                turn.text = speech_text(passage, args.speech_chars, rng)
                turn.prompt = f"(the prompt of turn {turn.index}, with the passage) {passage}"
            Turn.objects.bulk_update(written, ["status", "finished_at", "text", "prompt"], batch_size=500)
            Trial.objects.filter(experiment=experiment).update(status=Trial.Status.READY)
    return {"trials": Trial.objects.count(), "live trials": live_count}


def broker_purge() -> None:
    """The launches' and moves' messages to the (absent) workers: dropped, the writer stands in for them."""
    from debate_platform.celery import app

    app.control.purge()


# ----------------------------------------------------------------- the writer (stands in for a worker) ----


def writer(args) -> None:
    """Claims the live trials' due turns (the protocol's own selection, generation.selection.ready_turns) and writes
    them as a worker does: first words after --first-words-seconds, partial_text every 0.25 s for --speech-seconds
    (one UPDATE for all, each row only while its claim holds), claims refreshed every 2 s (the worker's heartbeat),
    then done (trials settled, response delays recorded). Until SIGTERM."""
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from generation.selection import ready_turns
    from judging.models import Turn
    from judging.selectors import record_response_delays
    from judging.services import trials_settle

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    rng = random.Random(3)
    running: dict[int, dict] = {}  # turn id -> its claim token, when claimed (monotonic), speech, trial id
    passage = passage_text(args.passage_chars, seed=1)
    next_claim = next_beat = 0.0
    while not stopping:
        now = time.monotonic()
        if now >= next_claim:
            due = [t.pk for t in ready_turns(limit=10_000, live_only=True)]
            if due:
                token = Turn.objects.filter(pk__in=due).claim(WRITER_NAME)
                for turn_id, trial_id in Turn.objects.held(token).values_list("pk", "trial_id"):
                    speech = speech_text(passage, args.speech_chars, rng)
                    running[turn_id] = {
                        "token": token,
                        "claimed": now,
                        "speech": speech,
                        "trial": trial_id,
                        "chars": 0,
                        "written": "",
                    }
            next_claim = now + 0.5
        if now >= next_beat and running:
            Turn.objects.filter(pk__in=list(running), status=Turn.Status.RUNNING).update(claimed_at=timezone.now())
            next_beat = now + 2
        partial, finished = [], []
        for turn_id, turn in running.items():
            chars = int(len(turn["speech"]) * (now - turn["claimed"] - args.first_words_seconds) / args.speech_seconds)
            if chars >= len(turn["speech"]):
                finished.append(turn_id)
            elif chars > turn["chars"]:
                # Each piece is stamped with when it was written, so a judge can tell how late it saw it.
                turn["written"] += stamp(time.time()) + turn["speech"][turn["chars"] : chars]
                turn["chars"] = chars
                partial.append((turn_id, turn["token"], turn["written"]))
        if partial:
            with connection.cursor() as cursor:
                rows = ", ".join(["(%s, %s, %s)"] * len(partial))
                cursor.execute(
                    "UPDATE judging_turn AS t SET partial_text = v.text, first_text_at = COALESCE(t.first_text_at, "
                    f"now()) FROM (VALUES {rows}) AS v(id, token, text) WHERE t.id = v.id AND t.claim_token = v.token "
                    "AND t.status = 'running' RETURNING t.id, t.first_text_at = now()",
                    [value for row in partial for value in row],
                )
                started = {running[turn_id]["trial"] for turn_id, first in cursor.fetchall() if first}
            if started:
                record_response_delays(started)
        settled = set()
        for turn_id in finished:
            turn = running.pop(turn_id)
            Turn.objects.filter(pk=turn_id).held(turn["token"]).update(
                status=Turn.Status.DONE,
                text=turn["written"] + stamp(time.time()) + turn["speech"][turn["chars"] :],
                finished_at=timezone.now(),
                attempts=1,
            )
            settled.add(turn["trial"])
        if settled:
            trials_settle(settled)
            record_response_delays(settled)
        time.sleep(max(0.0, 0.25 - (time.monotonic() - now)))


def stamp(seconds: float) -> str:
    """The mark the writer puts before each piece of text it writes: when it wrote it (time.time())."""
    return f"[@{seconds:.3f}]"


STAMP = re.compile(r"\[@(\d+\.\d+)\]")


def latest_stamp(text: str) -> float:
    """The time the newest piece of ``text`` was written (0 where it has none)."""
    return max((float(mark) for mark in STAMP.findall(text)), default=0.0)


# ------------------------------------------------------------------------------- the judges (locust) ----

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TRIAL_URL = re.compile(r"/judge/trials/(\d+)/$")
PTAG = re.compile(r'hx-ptag="([^"]*)"')
STREAM = re.compile(r'data-stream="([^"]+)"')
LOGIN_FORM = b'id="id_password"'  # the login page (templates/registration/login.html)
END_DISABLED = re.compile(r'id="end"[^>]*\bdisabled\b')


def drive(args) -> None:
    """The judges, in this process (locust patches the standard library for gevent on import: never in the
    process that runs Django). Prints "measure start" and "measure end" for the caller to read the server's CPU
    times, then writes the figures to --out."""
    import gevent
    from gevent.event import Event
    from locust import FastHttpUser, constant, task
    from locust.env import Environment
    from locust.stats import StatsEntry

    stop, measuring = Event(), Event()
    cookies_file = Path(args.cookies)
    cookies: dict[str, list] = pickle.loads(cookies_file.read_bytes()) if cookies_file.exists() else {}
    counts = {
        "verdicts sent": 0,
        "verdicts acknowledged": 0,
        "judges out of trials": 0,
        "live polls unchanged": 0,
        "live polls appended": 0,
        "pushed news": 0,
        "pushed renders": 0,
        "streams opened": 0,
    }
    judges = iter(range(args.users))
    logged_in, working = [], []

    class Judge(FastHttpUser):
        wait_time = constant(0)
        network_timeout = connection_timeout = 60.0
        streams = None  # a requests session for the page's event stream, with the judge's cookies
        name, trial, logged_in_at = "", None, None

        def context(self) -> dict:
            """Each request's judge, trial and login time, for ``session_lost``."""
            return {"judge": self.name, "trial": self.trial, "logged in at": self.logged_in_at}

        def on_start(self):
            self.name = judge_name(next(judges))
            for cookie in cookies.get(self.name, []):
                self.client.cookiejar.set_cookie(cookie)
            response = self.client.get("/judge/next/", allow_redirects=False, name="next")
            # Sent to log in, or no reply at all (then logging in again does no harm).
            if not response.status_code or "/accounts/login/" in response.headers.get("Location", ""):
                self.login()
            self.logged_in_at = time.monotonic()
            logged_in.append(self.name)

        def login(self):
            for _ in range(3):  # no reply (a connection refused while 200 judges log in at once): tried again
                response = self.client.get("/accounts/login/", name="login page")
                if response.status_code == 200:
                    response = self.client.post(
                        "/accounts/login/",
                        data={"username": self.name, "password": PASSWORD, "csrfmiddlewaretoken": csrf(response.text)},
                        allow_redirects=False,
                        name="login",
                    )
                if response.status_code == 302:
                    cookies[self.name] = list(self.client.cookiejar)
                    return
                if response.status_code:  # an answer, but not the login's: trying again would not help
                    break
                time.sleep(1.0)
            raise RuntimeError(f"{self.name} could not log in: {response.status_code}")

        def think(self, low: float, high: float) -> None:
            """Reading or deciding, compressed; the page's heartbeats go on meanwhile. Ends early when stopping."""
            until = time.monotonic() + random.uniform(low, high)
            while not stop.is_set() and time.monotonic() < until:
                self.beat_if_due()
                stop.wait(min(1.0, max(0.0, until - time.monotonic())))

        def beat_if_due(self) -> None:
            if self.trial is not None and time.monotonic() >= self.next_beat:
                self.next_beat = time.monotonic() + BEAT_SECONDS
                self.client.post(
                    f"/judge/trials/{self.trial}/beat/",
                    data={"page": self.page_id, "seq": self.seq(), "fresh": "0", "csrfmiddlewaretoken": self.csrf},
                    name="beat",
                )

        def saw(self, content: str) -> None:
            """Content a page was given (new characters, a render): how long after its newest piece was written (the
            writer's stamps) the page had it, recorded as "update lag" where it brought a newer piece."""
            written = latest_stamp(content)
            if written > self.newest:
                self.newest = written
                self.environment.events.request.fire(
                    request_type="UPDATE",
                    name=UPDATE_LAG,
                    response_time=1000 * (time.time() - written),
                    response_length=0,
                    exception=None,
                    context={},
                )

        def seq(self) -> str:
            self.beats += 1
            return str(self.beats)

        @task
        def judge(self):
            working.append(self.name)
            try:
                while not stop.is_set():
                    if not self.next_trial():
                        counts["judges out of trials"] += 1
                        stop.wait()
            finally:
                working.remove(self.name)

        def next_trial(self) -> bool:
            """Open the next trial (Start, a POST), judge it; False when the queue is empty."""
            response = self.client.get("/judge/next/", allow_redirects=False, name="next")
            if not response.status_code:  # no reply at all (counted as an error by locust): ask again shortly
                stop.wait(1.0)
                return True
            match = TRIAL_URL.search(response.headers.get("Location", ""))
            if match is None:
                self.trial = None
                return False
            self.trial, self.beats, self.page_id = int(match.group(1)), 0, f"{random.getrandbits(64):016x}"
            self.newest = 0.0
            url = f"/judge/trials/{self.trial}/"
            page = self.client.get(url, name="trial page")
            if 'id="start"' in page.text:
                self.client.post(
                    f"{url}start/", data={"csrfmiddlewaretoken": csrf(page.text)}, allow_redirects=False, name="start"
                )
                page = self.client.get(url, name="trial page")
            self.csrf, self.next_beat = csrf(page.text), time.monotonic() + BEAT_SECONDS
            self.client.post(
                f"{url}beat/",
                data={"page": self.page_id, "seq": self.seq(), "fresh": "1", "csrfmiddlewaretoken": self.csrf},
                name="beat",
            )
            if 'id="live-status"' in page.text:
                self.live_trial(url, page.text)
            else:
                self.think(args.read_seconds * 0.5, args.read_seconds * 1.5)
            if not stop.is_set():
                self.verdict(url)
            return True

        def live_trial(self, url: str, html: str) -> None:
            """Poll while the debaters speak (as htmx: every 0.4 s, a poll dropped while one is on its way), move
            between rounds, until the verdict is due."""
            ptag, rounds = ptag_of(html), 0
            while not stop.is_set():
                if stream := STREAM.search(html):  # the debaters are speaking, and the server pushes
                    html, ptag = self.follow(url, stream.group(1), ptag)
                    continue
                if "every 400ms" in html:  # the debaters are speaking
                    started = time.monotonic()
                    headers = {"HX-Request": "true", "Accept": "text/html"}
                    if ptag:
                        headers["HX-PTag"] = ptag
                    response = self.client.get(f"{url}live/", headers=headers, name="live poll")
                    if response.status_code == 200 and response.headers.get("Content-Type") == "application/json":
                        # The speech's new characters (trial.js appends them): the page is otherwise as it was.
                        counts["live polls appended"] += measuring.is_set()
                        ptag = response.headers.get("HX-PTag") or ptag
                        self.saw(response.text)
                    elif response.status_code == 200:
                        html = response.text
                        ptag = response.headers.get("HX-PTag") or ptag_of(html)
                        self.saw(html)
                    elif response.status_code == 304:  # nothing changed, nothing to swap
                        counts["live polls unchanged"] += measuring.is_set()
                    self.beat_if_due()
                    elapsed = time.monotonic() - started
                    stop.wait(LIVE_POLL_SECONDS * (1 + int(elapsed / LIVE_POLL_SECONDS)) - elapsed)
                    continue
                if 'id="verdict-section" hidden' not in html or "No answer could be generated" in html:
                    return  # the verdict is due (or the debate failed: judged as it stands)
                rounds += 1
                self.think(args.move_seconds * 0.5, args.move_seconds * 1.5)
                if stop.is_set():
                    return
                if random.random() < 0.3:
                    self.move(url, {"action": "lean", "chosen": random.choice("AB"), "probability": "0.7"})
                ending = not END_DISABLED.search(html) and (rounds >= 2 or random.random() < 0.3)
                if ending:
                    html = self.move(url, {"action": "end"})
                elif random.random() < 0.6:
                    html = self.move(url, {"action": "ask", "text": "Where does the passage say so?"})
                else:
                    html = self.move(url, {"action": "continue"})
                ptag = ptag_of(html)

        def follow(self, url: str, stream_url: str, ptag: str | None) -> tuple[str, str | None]:
            """Follow the page's stream as trial.js does (judging/live_stream.py), until a render shows the debaters
            done speaking (or the stream ends: then the partials are fetched); that page and its tag. Heartbeats go
            on meanwhile. The stream's opening (until its headers) is timed as "live stream open"."""
            import requests

            if self.streams is None:
                self.streams = requests.Session()
                for cookie in self.client.cookiejar:
                    self.streams.cookies.set_cookie(cookie)
            while not stop.is_set():
                started = time.monotonic()
                error = None
                try:
                    response = self.streams.get(
                        args.host + stream_url,
                        params={"tag": ptag or ""},
                        headers={"Accept": "text/event-stream"},
                        stream=True,
                        timeout=(10, 60),
                        allow_redirects=False,  # to the login page: a lost session, an error
                    )
                    if response.status_code != 200:
                        location = response.headers.get("Location", "")
                        error = RuntimeError(f"stream refused: {response.status_code} {location}".strip())
                except requests.RequestException as exception:
                    error, response = exception, None
                self.environment.events.request.fire(
                    request_type="GET",
                    name="live stream open",
                    response_time=1000 * (time.monotonic() - started),
                    response_length=0,
                    exception=error,
                    context={},
                )
                counts["streams opened"] += measuring.is_set()
                kind = ""
                if error is not None:
                    stop.wait(1)
                    continue
                try:
                    for kind, tag, data in sse_events(response):
                        self.beat_if_due()
                        if kind == "news":
                            counts["pushed news"] += measuring.is_set()
                            ptag = tag
                            self.saw(data)
                        elif kind == "render":
                            counts["pushed renders"] += measuring.is_set()
                            html, ptag = json.loads(data)["html"], tag
                            self.saw(html)
                            if not STREAM.search(html):
                                return html, ptag
                        elif kind == "end":
                            break
                        if stop.is_set():
                            return "", ptag
                except requests.RequestException:
                    pass  # broken: reconnect from the last tag, as the browser does
                finally:
                    response.close()
                if kind == "end":  # the page fetches itself the ordinary way
                    headers = {"HX-Request": "true", "Accept": "text/html", "X-Live-Full": "1"}
                    html = self.client.get(f"{url}live/", headers=headers, name="live refresh").text
                    return html, ptag_of(html)
            return "", ptag

        def move(self, url: str, fields: dict) -> str:
            response = self.client.post(
                f"{url}move/",
                data=fields | {"csrfmiddlewaretoken": self.csrf},
                headers={"HX-Request": "true", "Accept": "text/html"},
                name="move",
            )
            return response.text or ""

        def verdict(self, url: str) -> None:
            counts["verdicts sent"] += 1
            with self.client.post(
                f"{url}verdict/",
                data={
                    "chosen": random.choice("AB"),
                    "probability": "0.8",
                    "rationale": "The verified quotes favour it.",
                    "csrfmiddlewaretoken": self.csrf,
                },
                allow_redirects=False,
                name="verdict",
                catch_response=True,
            ) as response:
                if response.status_code == 302 and response.headers.get("Location", "").endswith("/judge/next/"):
                    counts["verdicts acknowledged"] += 1
                    response.success()
                else:
                    location = (response.headers or {}).get("Location", "")  # no headers: no reply at all
                    response.failure(f"verdict not acknowledged: {response.status_code} {location}".strip())
            self.trial = None

    env = Environment(user_classes=[Judge], host=args.host)

    def session_lost(name, response=None, context=None, url="", **_):
        """A logged-in judge's request answered with the login page (or a redirect to it), or with the judge's session
        cookie deleted (the server found their session empty): an error, as a judge would lose what they were
        writing. Recorded with the request, the trial and the time since the judge logged in."""
        context = context or {}
        if context.get("logged in at") is None or name in ("login page", "login"):
            return
        if response is None or not response.status_code or not response.headers:  # no reply (a connection error)
            return
        headers = response.headers
        location = headers.get("Location") or ""
        deleted = any(c.startswith('sessionid=""') for c in headers.getlist("Set-Cookie"))
        if deleted or "/accounts/login/" in location or LOGIN_FORM in (response.content or b""):
            seen = "its session cookie deleted" if deleted else "the login page"
            env.events.request.fire(
                request_type="SESSION",
                name=SESSION_LOST,
                response_time=0,
                response_length=0,
                exception=RuntimeError(
                    f"{context['judge']}'s {name} ({url}, trial {context['trial']}) answered {response.status_code} "
                    f"with {seen}, {time.monotonic() - context['logged in at']:.1f} s after they were first let in"
                ),
                context={},
            )

    env.events.request.add_listener(session_lost)
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    guard = time.monotonic() + 120 + args.users  # logins are slow on purpose (a password hash each)
    while len(logged_in) < args.users and time.monotonic() < guard:
        gevent.sleep(0.2)
    if len(logged_in) < args.users:
        raise SystemExit(f"only {len(logged_in)} of {args.users} judges logged in")
    cookies_file.write_bytes(pickle.dumps(cookies))
    gevent.sleep(args.settle_seconds)  # the judges spread out over their trials before the window opens
    env.stats.reset_all()
    measuring.set()
    started = time.monotonic()
    print("measure start", flush=True)
    while time.monotonic() - started < args.seconds and not (
        args.verdicts and counts["verdicts acknowledged"] >= args.verdicts
    ):
        gevent.sleep(0.1)
    window = time.monotonic() - started
    measuring.clear()
    print("measure end", flush=True)
    endpoints = {
        name: {
            "requests": entry.num_requests,
            "errors": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p95_ms": entry.get_response_time_percentile(0.95),
            "max_ms": entry.max_response_time,
            "per_s": entry.num_requests / window,
        }
        for (name, _method), entry in sorted(env.stats.entries.items())
        if entry.num_requests
    }
    # Every request, without the update lag and the lost sessions (not requests).
    total = StatsEntry(env.stats, "requests", "", use_response_times_cache=False)
    for (name, _method), entry in env.stats.entries.items():
        if name not in (UPDATE_LAG, SESSION_LOST):
            total.extend(entry)
    figures = {
        "seconds": window,
        "endpoints": endpoints,
        "requests": total.num_requests,
        "requests_per_s": total.num_requests / window,
        "errors": total.num_failures,
        "p95_ms": total.get_response_time_percentile(0.95) if total.num_requests else 0,
        "error_messages": [f"{e.name}: {e.error}" for e in env.stats.errors.values()][:10],
    }
    # The judges stop between requests, so every verdict on its way is answered before the count is taken.
    stop.set()
    guard = time.monotonic() + 120
    while working and time.monotonic() < guard:
        gevent.sleep(0.1)
    runner.quit()
    figures["judges still working at the end"] = len(working)
    figures["errors_total"] = env.stats.total.num_failures
    figures.update(counts)
    Path(args.out).write_text(json.dumps(figures))


def sse_events(response):
    """(event, id, data) of each server-sent event of a streamed reply, as they arrive."""
    kind, tag, data = "message", "", []
    for line in response.iter_lines(chunk_size=None, decode_unicode=True):
        if not line:
            if data:
                yield kind, tag, "\n".join(data)
            kind, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "id":
                tag = value
            elif field == "data":
                data.append(value)


def ptag_of(html: str) -> str | None:
    """The polling tag the live status element carries (htmx's ptag extension sends it back)."""
    match = PTAG.search(html)
    return match.group(1) if match else None


def csrf(html: str) -> str:
    match = CSRF.search(html)
    if match is None:
        raise RuntimeError("no CSRF token in the page")
    return match.group(1)


# ------------------------------------------------------------------------------ server and measurement ----


# What gunicorn reads in the load test: the platform's gunicorn.conf.py (when it has one), then a record of each
# worker's garbage collections (GIL-holding pauses; a full one walks every object of the worker) in the scratch
# folder, a line per collection: the wall time it ended, its generation, its milliseconds.
GC_RECORDING_CONFIG = """
import gc, os, time

_platform = {{}}
if os.path.exists({conf!r}):
    exec(compile(open({conf!r}).read(), {conf!r}, "exec"), _platform)
globals().update((name, value) for name, value in _platform.items() if not name.startswith("__"))


def post_worker_init(worker):
    if "post_worker_init" in _platform:
        _platform["post_worker_init"](worker)
    record = open(os.path.join({scratch!r}, "gc-%d.txt" % os.getpid()), "a", buffering=1)
    began = []

    def collection(phase, info):
        if phase == "start":
            began.append(time.perf_counter())
        elif began:
            ms = 1000 * (time.perf_counter() - began.pop())
            record.write("%.3f %d %.2f\\n" % (time.time(), info["generation"], ms))

    gc.callbacks.append(collection)
"""


def gc_pauses(scratch: str, start: float, end: float) -> dict:
    """The web workers' garbage collections that ended between ``start`` and ``end`` (wall times): full ones
    (generation 2) and younger ones, each as a count, the milliseconds in all and the longest."""
    pauses = {"full": [], "younger": []}
    for path in Path(scratch).glob("gc-*.txt"):
        for line in path.read_text().splitlines():
            ended, generation, ms = line.split()
            if start <= float(ended) <= end:
                pauses["full" if generation == "2" else "younger"].append(float(ms))
    return {
        kind: {"count": len(found), "ms": round(sum(found), 1), "longest_ms": max(found, default=0.0)}
        for kind, found in pauses.items()
    }


def gunicorn_start(args) -> subprocess.Popen:
    """The web server as the Dockerfile's CMD and docker-compose's web service run it (bound to 127.0.0.1), in the
    platform's folder (its gunicorn.conf.py), but for the workers asked for, and its garbage collections recorded."""
    config = Path(args.scratch) / "gunicorn_gc_recorded.py"
    platform_config = Path(args.app_dir) / "gunicorn.conf.py"
    config.write_text(GC_RECORDING_CONFIG.format(conf=str(platform_config), scratch=args.scratch))
    command = [sys.executable, "-m", "gunicorn", "--config", str(config), "--bind", f"127.0.0.1:{args.port}"]
    if args.server == "wsgi":  # the deployment before ASGI (or to compare): sync workers, live pages polling
        command += ["debate_platform.wsgi", "--worker-class", args.worker_class or "sync"]
    elif not (Path(args.app_dir) / "debate_platform" / "asgi.py").exists():
        command += ["debate_platform.wsgi"]  # a checkout from before ASGI: its Dockerfile's command
    if args.workers:
        command += ["--workers", str(args.workers)]
    elif not platform_config.exists():
        command += ["--workers", "3"]  # a checkout from before gunicorn.conf.py: its Dockerfile's 3 workers
    if args.worker_class and args.server != "wsgi":
        command += ["--worker-class", args.worker_class]
    server = subprocess.Popen(
        command,
        cwd=args.app_dir,
        env=scratch_env(args, WEB_APPLICATION),
        stdout=subprocess.DEVNULL,
        stderr=open(Path(args.scratch) / "gunicorn.log", "wb"),
    )
    import urllib.request

    guard = time.monotonic() + 60
    while time.monotonic() < guard:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited ({server.returncode}); see {args.scratch}/gunicorn.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/accounts/login/", timeout=5) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 60 s")


class CpuMeter:
    """CPU seconds of processes over a window, read from /proc (psutil) about once a second so that processes
    that come and go (a PostgreSQL backend whose connection was closed and opened again) are counted too."""

    def __init__(self, pids_of):
        self.pids_of, self.first, self.last = pids_of, {}, {}

    def sample(self) -> None:
        import psutil

        for pid in self.pids_of():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:  # gone since it was listed
                continue
            self.last[pid] = times.user + times.system

    def start(self) -> None:
        self.last = {}
        self.sample()
        self.first = dict(self.last)

    def seconds(self) -> float:
        """CPU seconds since start(); a process first seen later started in the window: all of its time counts."""
        return sum(seconds - self.first.get(pid, 0.0) for pid, seconds in self.last.items())


def web_backends() -> list[int]:
    """The server's PostgreSQL backends (this thread's own connection asks)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [WEB_APPLICATION])
        return [pid for (pid,) in cursor.fetchall()]


def run_step(args, scenario: str, judges: int, server: subprocess.Popen) -> dict:
    """One scenario at one judge count: fresh trials, the writer, the judges; the figures."""
    import psutil
    import redis

    from judging.models import Verdict

    print(f"\n== {scenario}: {judges} judges ==", flush=True)
    made = trials_create(scenario, judges, args)
    broker_purge()
    writer_process = subprocess.Popen(
        [sys.executable, __file__, "--role", "writer", *passthrough(args)],
        cwd=args.app_dir,
        env=scratch_env(args, WRITER_APPLICATION),
    )
    out = Path(args.scratch) / f"{scenario}-{judges}.json"
    driver = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            "drive",
            "--host",
            f"http://127.0.0.1:{args.port}",
            "--users",
            str(judges),
            "--out",
            str(out),
            *passthrough(args),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    workers = lambda: [p.pid for p in psutil.Process(server.pid).children()]  # noqa: E731
    meters = {
        "gunicorn": CpuMeter(workers),
        "postgres": CpuMeter(web_backends),
        "load generator": CpuMeter(lambda: [driver.pid]),
        "writer": CpuMeter(lambda: [writer_process.pid]),
    }
    # Connections Redis accepted in the window (sessions, users, the broker: each request should borrow one).
    redis_stats = redis.Redis.from_url(args.redis_url)
    connections_opened = lambda: redis_stats.info("stats")["total_connections_received"]  # noqa: E731
    try:
        for line in driver.stdout:
            if line.strip() == "measure start":
                for meter in meters.values():
                    meter.start()
                sampler = _Sampler(meters)
                redis_before = connections_opened()
                window_start = time.time()
                print(f"judges logged in; measuring for {args.seconds:g} s", flush=True)  # a profiler can start now
            elif line.strip() == "measure end":
                sampler.stop()
                redis_opened = connections_opened() - redis_before
                window_end = time.time()
            else:
                print(line, end="", flush=True)
        driver.wait()
    finally:
        writer_process.send_signal(signal.SIGTERM)
        writer_process.wait(timeout=60)
    if driver.returncode != 0 or not out.exists():
        raise SystemExit(f"the load generator failed ({driver.returncode})")
    figures = json.loads(out.read_text())
    cpu = {name: meter.seconds() for name, meter in meters.items()}
    # A live update: a poll (answered or not), or an event pushed to a page.
    live_updates = figures["endpoints"].get("live poll", {}).get("requests", 0)
    live_updates += figures["pushed news"] + figures["pushed renders"]
    server_cpu = cpu["gunicorn"] + cpu["postgres"]
    figures.update(
        scenario=scenario,
        judges=judges,
        made=made,
        verdicts_stored=Verdict.objects.count(),
        cpu_seconds=cpu,
        server_cores=server_cpu / figures["seconds"],
        server_cpu_ms_per_request=1000 * server_cpu / max(1, figures["requests"]),
        server_cpu_ms_per_live_update=1000 * server_cpu / live_updates if live_updates else None,
        redis_connections_opened=redis_opened,
        gc_pauses=gc_pauses(args.scratch, window_start, window_end),
        worst_p95_ms=max((e["p95_ms"] for name, e in figures["endpoints"].items() if name != UPDATE_LAG), default=0),
    )
    report(figures)
    return figures


class _Sampler:
    """Samples the meters about once a second on a thread until stopped (then once more)."""

    def __init__(self, meters: dict):
        import threading

        self.meters, self.done = meters, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        from django.db import connection

        while not self.done.wait(1.0):
            for meter in self.meters.values():
                meter.sample()
        connection.close()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        for meter in self.meters.values():
            meter.sample()


def report(figures: dict) -> None:
    print(
        f"{figures['scenario']}, {figures['judges']} judges, {figures['seconds']:.0f} s: "
        f"{figures['requests_per_s']:.1f} requests/s, p95 {figures['p95_ms']:.0f} ms (worst endpoint "
        f"{figures['worst_p95_ms']:.0f} ms), errors {figures['errors_total']}; verdicts acknowledged "
        f"{figures['verdicts acknowledged']}, stored {figures['verdicts_stored']} (sent {figures['verdicts sent']})"
    )
    print(f"  {'endpoint':12} {'requests':>9} {'per s':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'errors':>6}")
    for name, e in figures["endpoints"].items():
        print(
            f"  {name:12} {e['requests']:9d} {e['per_s']:7.1f} {e['p50_ms']:7.0f} {e['p95_ms']:7.0f} "
            f"{e['max_ms']:7.0f} {e['errors']:6d}"
        )
    cpu = figures["cpu_seconds"]
    per_update = figures["server_cpu_ms_per_live_update"]
    print(
        f"  server CPU {figures['server_cores']:.2f} cores (gunicorn {cpu['gunicorn']:.1f} s, PostgreSQL "
        f"{cpu['postgres']:.1f} s): {figures['server_cpu_ms_per_request']:.1f} ms per request"
        + (f", {per_update:.1f} ms per live update" if per_update is not None else "")
    )
    print(
        f"  Redis connections opened: {figures['redis_connections_opened']} "
        f"({figures['redis_connections_opened'] / max(1, figures['requests']):.2f} per request)"
    )
    full, younger = figures["gc_pauses"]["full"], figures["gc_pauses"]["younger"]
    print(
        f"  garbage collections in the web workers: {full['count']} full ({full['ms']:.0f} ms in all, longest "
        f"{full['longest_ms']:.0f} ms), {younger['count']} younger ({younger['ms']:.0f} ms, longest "
        f"{younger['longest_ms']:.0f} ms)"
    )
    if figures["streams opened"]:
        print(
            f"  pushed to the pages: {figures['pushed news']} news (new characters), {figures['pushed renders']} "
            f"renders, over {figures['streams opened']} streams opened"
        )
    if figures["endpoints"].get("live poll"):
        print(
            f"  live polls answered 304 (nothing changed): {figures['live polls unchanged']}; with a speech's new "
            f"characters only: {figures['live polls appended']}"
        )
    print(
        f"  beside it: load generator {cpu['load generator']:.1f} s, writer {cpu['writer']:.1f} s of CPU; "
        f"judges out of trials {figures['judges out of trials']}"
    )
    for message in figures["error_messages"]:
        print(f"  error: {message}")


def passthrough(args) -> list[str]:
    """The options the writer and the driver share with this process."""
    return [
        f"--{name.replace('_', '-')}={getattr(args, name)}"
        for name in (
            "database_url",
            "redis_url",
            "passage_chars",
            "speech_chars",
            "speech_seconds",
            "first_words_seconds",
            "read_seconds",
            "move_seconds",
            "seconds",
            "settle_seconds",
            "spawn_rate",
            "verdicts",
            "cookies",
            "scratch",
        )
    ]


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judges", type=int, default=100, help="simulated judges (default 100)")
    parser.add_argument("--sweep", default="", help="judge counts, e.g. 25,50,100: each scenario at each")
    parser.add_argument("--scenarios", default="mixed,live", help="mixed, live or both (default)")
    parser.add_argument("--seconds", type=float, default=60, help="the measured window (default 60)")
    parser.add_argument("--settle-seconds", type=float, default=10, help="after every judge is in, before it")
    parser.add_argument("--trials", type=int, default=6, help="trials per judge (default 6)")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/load_test", help="scratch: it is flushed"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="cache, sessions, broker: flushed")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--worker-class", default="", help="e.g. sync, to compare (default: gunicorn.conf.py's)")
    parser.add_argument(
        "--server",
        default="asgi",
        choices=["asgi", "wsgi"],
        help="asgi: as deployed (gunicorn.conf.py: uvicorn workers, live pages pushed); wsgi: sync workers, polling",
    )
    parser.add_argument("--app-dir", default=str(ROOT), help="the platform to serve (another checkout: before/after)")
    parser.add_argument("--passage-chars", type=int, default=6000)
    parser.add_argument("--speech-chars", type=int, default=700)
    parser.add_argument("--speech-seconds", type=float, default=6, help="the writer: one speech, first word to last")
    parser.add_argument("--first-words-seconds", type=float, default=1, help="the writer: claim to first words")
    parser.add_argument("--read-seconds", type=float, default=8, help="a judge reads a pre-generated trial (mean)")
    parser.add_argument("--move-seconds", type=float, default=3, help="a judge thinks between rounds (mean)")
    parser.add_argument("--spawn-rate", type=float, default=10, help="judges started per second")
    parser.add_argument("--verdicts", type=int, default=0, help="end the window once this many verdicts are in")
    parser.add_argument("--json", default="", help="also write every step's figures here")
    parser.add_argument("--role", default="run", choices=["run", "writer", "drive"], help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--cookies", default="", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.judge_counts = [int(n) for n in args.sweep.split(",") if n] if args.sweep else [args.judges]
    args.scenario_list = [s for s in args.scenarios.split(",") if s]
    if unknown := set(args.scenario_list) - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> list[dict]:
    args = parse(argv)
    if args.role == "drive":
        drive(args)
        return []
    if args.role == "writer":
        writer(args)
        return []
    # Absolute: gunicorn runs in the platform's folder and reads its config from them.
    args.app_dir = str(Path(args.app_dir).resolve())
    args.scratch = str(Path(args.scratch or tempfile.mkdtemp(prefix="load-test-")).resolve())
    args.cookies = str(Path(args.scratch) / "cookies.pickle")
    os.environ.update(scratch_env(args, "load-test-setup"))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    database_prepare(args)
    server = gunicorn_start(args)
    steps = []
    try:
        for judges in args.judge_counts:
            for scenario in args.scenario_list:
                steps.append(run_step(args, scenario, judges, server))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        broker_purge()
    if len(args.judge_counts) > 1:
        for scenario in args.scenario_list:
            over = [s["judges"] for s in steps if s["scenario"] == scenario and s["worst_p95_ms"] > KNEE_P95_MS]
            knee = f"{min(over)} judges" if over else f"not reached up to {max(args.judge_counts)} judges"
            print(f"knee ({scenario}: the fewest judges whose worst endpoint p95 passes {KNEE_P95_MS} ms): {knee}")
    if args.json:
        Path(args.json).write_text(json.dumps(steps, indent=1))
    return steps


if __name__ == "__main__":
    main()
