"""Server push for live pages: one change feed per web process, a server-sent event stream per page.

Under an ASGI server (debate_platform/asgi.py, as gunicorn.conf.py deploys it) a live trial's page follows a stream
(``views.trial_stream``) instead of polling every 0.4 s. What a poll would have been answered is pushed instead:

- the characters the speeches being written have grown by, or a speech whose new characters finish a quote, whole
  (event ``news``: the JSON a poll gets, ``views.news_body``);
- the live partials, rendered for the judge as a poll renders them, where anything else changed (event ``render``);
- nothing where nothing changed.

Each event's id is the tag of the page it brings (judging.live_tag), so a browser that reconnects (EventSource does,
sending ``Last-Event-ID``) is sent only what its page lacks. A stream ends (event ``end``) when the page must be
fetched the ordinary way (the trial left the judge's live pages, or the read was refused).

The change feed (``Feed``, one per process) reads the tags of every trial followed in the process with one query
every ``LIVE_FEED_TICK_SECONDS`` (live_tag.currents), whatever the number of pages, and wakes the streams whose trial
changed; a stream then computes its news from the tag its page has, as a poll does. The database is read in the
feed's own threads (the tick's read in one, the streams' renders in ``THREADS`` others; each takes a connection,
from the pool under ASGI, and gives it back when it breaks or ages, as a request would): never on the event loop,
never a connection per page. An open stream costs a coroutine, and an idle thread that Django's ASGI handler keeps
for each request until it ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from . import live_tag, services

log = logging.getLogger(__name__)

# A comment line this often keeps proxies and the browser from taking an idle stream for a dead one.
KEEPALIVE_SECONDS = 15
# A stream ends after this long and the browser reconnects (Last-Event-ID): the session and the judge's right to
# the trial are checked again, and no stream outlives a logout by more than this.
STREAM_SECONDS = 300
# How soon the browser reconnects after a stream ends or breaks.
RETRY_MS = 1000
# The feed's threads for the streams' renders (its tick's read has one more of its own).
THREADS = 2


@dataclass(eq=False)
class Follower:
    """A page following a trial: what the feed last read of it (None: the trial left the judge's live pages)."""

    trial_id: int
    judge_id: int
    latest: live_tag.Current | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def tell(self, judge_and_current: tuple[int, live_tag.Current] | None) -> None:
        judge, now = judge_and_current or (None, None)
        self.latest = now if judge == self.judge_id else None
        self.changed.set()


class Feed:
    """The process's change feed: one read of all followed trials per tick, in a thread of its own."""

    def __init__(self, tick_seconds: float):
        self.tick_seconds = tick_seconds
        self.followers: dict[int, set[Follower]] = {}
        self.last: dict[int, str | None] = {}  # each followed trial's tag at the last read (None: gone)
        self._task: asyncio.Task | None = None
        # The tick's read in a thread of its own, so that no burst of renders delays every page's updates; the
        # streams' renders (and their other reads) in THREADS others.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="live-feed-read")
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="live-feed")

    def follow(self, trial_id: int, judge_id: int) -> Follower:
        follower = Follower(trial_id, judge_id)
        self.followers.setdefault(trial_id, set()).add(follower)
        self.last.pop(trial_id, None)  # a new page is told the trial's state at the next tick
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return follower

    def leave(self, follower: Follower) -> None:
        pages = self.followers.get(follower.trial_id, set())
        pages.discard(follower)
        if not pages:
            self.followers.pop(follower.trial_id, None)
            self.last.pop(follower.trial_id, None)

    def close(self) -> None:
        """Close the feed's database connections and stop its threads (a process's feed lives as long as the process:
        this is for tests, whose database must be left with no connection open)."""
        closing = threading.Barrier(THREADS)  # one close per thread: each waits until all have theirs

        def close_here():
            connections.close_all()
            closing.wait(timeout=60)

        for done in [self._threads.submit(close_here) for _ in range(THREADS)]:
            done.result()
        self._threads.shutdown()
        self._reader.submit(connections.close_all).result()
        self._reader.shutdown()

    async def in_thread(self, function, *args, threads=None):
        """``function(*args)`` in one of the feed's threads, with a usable database connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(threads or self._threads, _with_connection, function, args)

    async def _run(self) -> None:
        while self.followers:
            try:
                await self.tick()
            except Exception:  # the database unreachable, say: the pages keep their streams, the next tick retries
                log.exception("the live change feed could not read the followed trials")
            await asyncio.sleep(self.tick_seconds)

    async def tick(self) -> None:
        trial_ids = list(self.followers)
        read = await self.in_thread(_read, trial_ids, threads=self._reader)
        for trial_id in trial_ids:
            judge_and_current = read.get(trial_id)
            tag = judge_and_current[1].tag if judge_and_current else None
            if trial_id in self.last and self.last[trial_id] == tag and not (tag and judge_and_current[1].dead_claim):
                continue
            for follower in list(self.followers.get(trial_id, ())):
                follower.tell(judge_and_current)
            if trial_id in self.followers:  # still followed: its pages were told this tag
                self.last[trial_id] = tag


def _with_connection(function, args):
    # A long-lived thread outside any request: drop a connection that broke or aged, as a request's start does.
    close_old_connections()
    return function(*args)


def _read(trial_ids: list[int]) -> dict:
    return live_tag.currents(trial_ids, dead_before=services.live_dead_claim_cutoff(timezone.now()))


_feed: Feed | None = None


def feed() -> Feed:
    """This process's feed (an ASGI server runs one event loop per process)."""
    global _feed
    if _feed is None:
        _feed = Feed(settings.LIVE_FEED_TICK_SECONDS)
    return _feed


def event(kind: str, data: dict | None = None, tag: str | None = None) -> str:
    """One server-sent event; ``data`` as one line of JSON in which no "<", ">" or "&" can be read as markup."""
    lines = [f"event: {kind}"]
    if tag is not None:
        lines.append(f"id: {tag}")
    lines.append("data: " + (escaped_json(data) if data is not None else "{}"))
    return "\n".join(lines) + "\n\n"


def escaped_json(data) -> str:
    """JSON with "<", ">" and "&" escaped: whatever a model or a judge wrote, nothing reading it as HTML finds
    markup."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


async def events(trial_id: int, judge_id: int, page_tag: str, news_body, render, *, seconds: float = STREAM_SECONDS):
    """The events of the stream of a judge's page of a trial, from the tag of what the page shows.

    ``news_body(now, news)`` is a news event's data (in a feed thread where a finished quote reads the passage);
    ``render()`` (in a feed thread) is the live partials rendered for the judge and their tag, or None when the
    read is refused: the stream then ends, and the page fetches itself the ordinary way."""
    stream = feed()
    follower = stream.follow(trial_id, judge_id)
    try:
        async for chunk in _events(stream, follower, page_tag, news_body, render, seconds):
            yield chunk
    finally:  # the page went away (the server cancels the stream) or the stream ended
        stream.leave(follower)


async def _events(stream: Feed, follower: Follower, page_tag: str, news_body, render, seconds: float):
    yield f"retry: {RETRY_MS}\n\n"
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    while (left := ends - loop.time()) > 0:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that comes as the event
            # is set, and the stream of a page that went away then ran on until its time was up.
            async with asyncio.timeout(min(left, KEEPALIVE_SECONDS)):
                await follower.changed.wait()
        except TimeoutError:
            yield ": keepalive\n\n"
            continue
        follower.changed.clear()
        now = follower.latest
        news = now.news_since(page_tag) if now is not None and not now.dead_claim else None
        if news is not None and not news:
            continue  # the page shows this already
        if news:
            # Only a finished quote reads the database (the passage): the rest is computed here, not in a thread.
            body = await stream.in_thread(news_body, now, news) if news.rewrite else news_body(now, news)
            yield event("news", body, now.tag)
            page_tag = now.tag
            continue
        rendered = await stream.in_thread(render)  # also releases a dead worker's claim, as a poll does
        if rendered is None:
            yield event("end")
            return
        html, page_tag = rendered
        yield event("render", {"html": html}, page_tag)
