"""Live pages pushed their updates (judging/live_stream.py, views.trial_stream) through Django's ASGI handler, its
feed reading the database in threads of its own (both databases): each change is pushed as a poll would have been
answered (new characters, a finished quote, a render), from the tag the page has; a reconnecting page is sent what
it lacks; a dead worker's claim is released; what a judge may not read is refused before anything is streamed."""

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connections
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone

from judging import live_stream, live_tag, views
from judging.models import Turn
from judging.services import experiment_launch, live_dead_claim_cutoff, trial_open
from tests.judging.test_trial_partials import finish_round, first_trial

pytestmark = pytest.mark.django_db(transaction=True)  # the feed reads in threads of its own: data must be committed

# Only a guard against a hung test: every event is expected within a tick or two (a tick is 0.02 s here).
GUARD_SECONDS = 120


@pytest.fixture
def feed(settings, monkeypatch):
    # As under an ASGI server (settings.ASGI): each request's thread gives its connection back at the request's end,
    # so none outlives the test (with a pool in production; here by closing it).
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    settings.LIVE_PUSH = True
    settings.LIVE_FEED_TICK_SECONDS = 0.02
    live_stream._feed = None
    yield
    if live_stream._feed is not None:
        live_stream._feed.close()  # its threads' connections: the test database is dropped after
    live_stream._feed = None


class Events:
    """The server-sent events of a streamed reply, read one at a time."""

    def __init__(self, response):
        self.chunks = aiter(response.streaming_content)
        self.buffer = ""

    async def next(self) -> tuple[str, str, dict]:
        """The next event's (event, id, data), skipping the retry line and keepalive comments."""
        while True:
            while "\n\n" not in self.buffer:
                chunk = await asyncio.wait_for(anext(self.chunks), GUARD_SECONDS)
                self.buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            block, self.buffer = self.buffer.split("\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in block.split("\n") if not line.startswith(":") and ": " in line
            )
            if "event" in fields:
                return fields["event"], fields.get("id", ""), json.loads(fields["data"])

    async def close(self) -> None:
        await self.chunks.aclose()


def run(scenario) -> None:
    """The test's async part, then the connection its database calls (sync_to_async: asgiref's thread) opened."""

    async def then_close():
        try:
            await scenario()
        finally:
            await sync_to_async(connections.close_all)()

    asyncio.run(then_close())


def now_tag(trial, judge) -> str:
    return live_tag.current(trial.pk, judge.pk, dead_before=live_dead_claim_cutoff(timezone.now())).tag


def set_turn(pk, **fields):
    Turn.objects.filter(pk=pk).update(**fields)


def live_trial_writing(make_model_config, make_experiment, turn_style: str, rounds: int, words: str):
    """A live debate opened by the judge, its first speech being written (``words`` so far): the trial and that turn."""
    experiment = make_experiment(
        make_model_config("m"), mode="live", rounds=rounds, min_rounds=1, turn_style=turn_style
    )
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    first = trial.turns.order_by("index").first()
    # Claimed an hour ahead: no tick of this test, however slow, finds the claim dead (unless the test says so).
    soon = timezone.now() + timedelta(hours=1)
    set_turn(first.pk, status=Turn.Status.RUNNING, claim_token="t", claimed_at=soon, partial_text=words)
    return trial, first


@pytest.fixture
def speaking(make_model_config, make_experiment, judge):
    """A live sequential debate opened by the judge, its first speech being written ("The first words")."""
    return live_trial_writing(make_model_config, make_experiment, "sequential", 3, "The first words")


async def open_stream(judge, trial, **extra):
    client = AsyncClient()
    await sync_to_async(client.force_login)(judge)
    return await client.get(reverse("judging:trial_stream", args=[trial.pk]), **extra)


def test_each_change_is_pushed_as_a_poll_would_have_been_answered(feed, speaking, judge):
    trial, first = speaking
    tag = now_tag(trial, judge)
    passage = trial.question.passage
    quoted = " ".join(passage.split()[2:7]).strip(".,")

    async def scenario():
        response = await open_stream(judge, trial, data={"tag": tag})
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream" and response["Cache-Control"] == "no-store"
        events = Events(response)
        await sync_to_async(set_turn)(first.pk, partial_text="The first words, and more")
        kind, event_id, data = await events.next()
        assert kind == "news" and data["append"] == [{"index": first.index, "text": ", and more"}]
        assert data["chars"] == [{"index": first.index, "chars": len("The first words, and more")}]
        assert event_id == await sync_to_async(now_tag)(trial, judge)

        # Characters that finish a quote: the speech whole, its quote marked as a render marks it.
        speech = f"The first words, and more <quote>{quoted}</quote>"
        await sync_to_async(set_turn)(first.pk, partial_text=speech)
        kind, event_id, data = await events.next()
        assert kind == "news" and data["append"] == []
        [rewrite] = data["rewrite"]
        assert rewrite["index"] == first.index
        assert [(s["kind"], s["text"]) for s in rewrite["segments"]] == [
            ("text", "The first words, and more "),
            ("verified", quoted),
        ]

        # Anything else (the round written): the partials, rendered for the judge, and their tag.
        await sync_to_async(finish_round)(trial)
        kind, event_id, data = await events.next()
        assert kind == "render" and "Argument of debater" in data["html"]
        assert event_id == await sync_to_async(now_tag)(trial, judge)
        await events.close()

    run(scenario)
    assert live_stream._feed.followers == {}  # the page went away: its trial is no longer read


def test_a_reconnecting_page_is_sent_only_what_it_lacks(feed, speaking, judge):
    """The browser reconnects with the id of the last event it had (Last-Event-ID): the tag of its page."""
    trial, first = speaking
    tag = now_tag(trial, judge)
    set_turn(first.pk, partial_text="The first words, and then some")

    async def scenario():
        response = await open_stream(judge, trial, data={"tag": "stale"}, headers={"Last-Event-ID": tag})
        events = Events(response)
        kind, event_id, data = await events.next()
        assert kind == "news" and data["append"] == [{"index": first.index, "text": ", and then some"}]
        await events.close()

    run(scenario)


def test_a_page_without_a_tag_is_sent_the_partials(feed, speaking, judge):
    trial, first = speaking

    async def scenario():
        events = Events(await open_stream(judge, trial))
        kind, event_id, data = await events.next()
        assert kind == "render" and "The first words" in data["html"]
        assert event_id == await sync_to_async(now_tag)(trial, judge)
        await events.close()

    run(scenario)


def test_a_simultaneous_speech_is_pushed_as_its_length_only(feed, make_model_config, make_experiment, judge):
    """As a poll is answered: where the page shows only the lengths of the speeches being written, no text of them
    is pushed, nor any finished quote."""
    trial, first = live_trial_writing(make_model_config, make_experiment, "simultaneous", 2, "Secret words")
    tag = now_tag(trial, judge)

    async def scenario():
        events = Events(await open_stream(judge, trial, data={"tag": tag}))
        speech = "Secret words and a <quote>secret quote</quote>"
        await sync_to_async(set_turn)(first.pk, partial_text=speech)
        kind, _, data = await events.next()
        assert kind == "news" and data == {"append": [], "chars": [{"index": first.index, "chars": len(speech)}]}
        await events.close()

    run(scenario)


def test_a_stream_leaves_the_feed_when_its_page_goes_or_its_time_is_up(feed, speaking, judge):
    """The server cancels the stream of a page that went away (Django's ASGI handler, on the client's disconnect),
    and a stream ends by itself after its time: either way its trial is no longer read, while the server runs on."""
    trial, first = speaking
    tag = now_tag(trial, judge)

    def events(seconds=live_stream.STREAM_SECONDS):
        return live_stream.events(trial.pk, judge.pk, tag, views.news_body, lambda: None, seconds=seconds)

    async def scenario():
        async def read(stream, chunks):
            async for chunk in stream:
                chunks.append(chunk)

        chunks = []
        reading = asyncio.create_task(read(events(), chunks))
        while not chunks:  # the stream has begun: its page follows the trial
            await asyncio.sleep(0.01)
        assert list(live_stream.feed().followers) == [trial.pk]
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert live_stream.feed().followers == {}

        ended = []
        await asyncio.wait_for(read(events(seconds=0.05), ended), GUARD_SECONDS)  # returns: its time is up
        assert ended and live_stream.feed().followers == {}

    run(scenario)


def test_a_page_that_goes_as_its_trial_changes_is_cancelled(feed, speaking, judge):
    """The server's cancellation of a stream is never lost when it comes just as the feed wakes the stream (on
    Python 3.11, asyncio.wait_for swallowed it: the stream then ran on until its time was up, 300 s)."""
    trial, _ = speaking
    tag = now_tag(trial, judge)

    async def scenario():
        for passes in range(6):  # the cancellation lands a different number of loop passes after the wake-up
            chunks = []

            async def read(stream):
                async for chunk in stream:
                    chunks.append(chunk)

            reading = asyncio.create_task(read(live_stream.events(trial.pk, judge.pk, tag, views.news_body, None)))
            while not chunks:
                await asyncio.sleep(0.01)
            [follower] = live_stream.feed().followers[trial.pk]
            while follower.latest is None:  # the feed has read the trial: a wake-up finds nothing new to send
                await asyncio.sleep(0.01)
            follower.changed.set()
            for _ in range(passes):
                await asyncio.sleep(0)
            reading.cancel()
            done, _ = await asyncio.wait({reading}, timeout=GUARD_SECONDS)  # a hang turned into a failure
            assert reading in done and reading.cancelled(), passes
            assert live_stream.feed().followers == {}

    run(scenario)


def test_a_stream_is_served_only_by_the_asgi_handler(feed, client, speaking, judge):
    """Run by a WSGI handler (here Django's test client), a stream would hold a thread for minutes: 404, and the
    page polls."""
    trial, _ = speaking
    client.force_login(judge)
    assert client.get(reverse("judging:trial_stream", args=[trial.pk])).status_code == 404


def test_a_read_that_fails_loses_no_update(feed, speaking, judge, monkeypatch):
    """The database unreachable for a tick (a restart, say): the stream stays open and the next tick pushes what
    changed meanwhile."""
    trial, first = speaking
    tag = now_tag(trial, judge)
    read, failures = live_stream._read, []

    def failing_once(trial_ids):
        if not failures:
            failures.append(trial_ids)
            raise OperationalError("the server closed the connection unexpectedly")
        return read(trial_ids)

    monkeypatch.setattr(live_stream, "_read", failing_once)
    set_turn(first.pk, partial_text="The first words, written meanwhile")

    async def scenario():
        events = Events(await open_stream(judge, trial, data={"tag": tag}))
        kind, _, data = await events.next()
        assert kind == "news" and data["append"] == [{"index": first.index, "text": ", written meanwhile"}]
        await events.close()

    run(scenario)
    assert failures == [[trial.pk]]


def test_a_dead_workers_claim_is_released_by_the_stream(feed, speaking, judge):
    """As the judge's polls do (views._opened_trial): the stream renders, which releases the dead claim."""
    trial, first = speaking
    tag = now_tag(trial, judge)
    set_turn(first.pk, claimed_at=timezone.now() - timedelta(hours=1))

    async def scenario():
        events = Events(await open_stream(judge, trial, data={"tag": tag}))
        kind, _, data = await events.next()
        assert kind == "render" and "stopped unexpectedly" in data["html"]
        await events.close()

    run(scenario)
    first.refresh_from_db()
    assert (first.status, first.attempts) == (Turn.Status.PENDING, 1)


def test_what_a_judge_may_not_read_is_refused_before_anything_is_streamed(
    feed, settings, make_model_config, make_experiment, judge, other_judge, speaking
):
    trial, _ = speaking
    experiment = make_experiment(make_model_config("m2"), name="Another", mode="live", rounds=2)
    experiment_launch(experiment=experiment)
    unopened = first_trial(experiment)

    async def scenario():
        assert (await open_stream(other_judge, trial)).status_code == 404  # not theirs
        refused = await open_stream(judge, unopened)  # theirs, not opened: its transcript cannot be read ahead
        assert refused.status_code == 409 and not refused.streaming
        anonymous = await AsyncClient().get(reverse("judging:trial_stream", args=[trial.pk]))
        assert anonymous.status_code == 302  # to the login page
        settings.LIVE_PUSH = False  # a WSGI server: a held stream would take a worker
        assert (await open_stream(judge, trial)).status_code == 404

    run(scenario)
    assert live_stream._feed is None or live_stream._feed.followers == {}


def test_a_page_that_stops_speaking_stops_following(feed, settings, client, speaking, judge):
    """The page names its stream only while the debaters speak, and only where the server pushes; otherwise it polls
    as before (templates/judging/partials/live_status.html)."""
    trial, _ = speaking
    client.force_login(judge)
    page = client.get(reverse("judging:trial", args=[trial.pk])).content.decode()
    assert f'data-stream="{reverse("judging:trial_stream", args=[trial.pk])}"' in page
    assert "every 400ms" not in page
    settings.LIVE_PUSH = False
    page = client.get(reverse("judging:trial", args=[trial.pk])).content.decode()
    assert "data-stream" not in page and "every 400ms" in page
    settings.LIVE_PUSH = True
    finish_round(trial)  # the judge must act: no stream
    page = client.get(reverse("judging:trial", args=[trial.pk])).content.decode()
    assert "data-stream" not in page
