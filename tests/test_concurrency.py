"""How a web process serves requests under an ASGI server (debate_platform/concurrency.py): each view by the handler
it is written for, and no more at once than it may."""

import asyncio

from debate_platform.concurrency import AsyncViewsOnTheLoop, RequestsAtOnce

# Only a guard against a hung test.
GUARD_SECONDS = 120


def scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


def test_an_async_view_runs_on_the_loop_and_every_other_in_the_wsgi_threads():
    """The live stream (an async view) through the ASGI app; a page (a sync view) and an unknown path through the
    WSGI app, in its threads."""
    import threading

    served = []

    async def asgi_app(scope, receive, send):
        served.append(("asgi", scope["path"], threading.current_thread().name))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi"})

    def wsgi_app(environ, start_response):
        served.append(("wsgi", environ["PATH_INFO"], threading.current_thread().name))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"wsgi"]

    async def call(app, path):
        bodies = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.body":
                bodies.append(message.get("body", b""))

        await asyncio.wait_for(app(scope(path), receive, send), GUARD_SECONDS)
        return b"".join(bodies)

    async def scenario():
        app = AsyncViewsOnTheLoop(asgi_app, wsgi_app, threads=2)
        loop = threading.current_thread().name
        assert await call(app, "/judge/trials/7/live/stream/") == b"asgi"
        assert await call(app, "/judge/trials/7/live/") == b"wsgi"  # the poll: a sync view
        assert await call(app, "/no/such/page/") == b"wsgi"  # Django's 404, as for any page
        assert [(handler, path) for handler, path, _ in served] == [
            ("asgi", "/judge/trials/7/live/stream/"),
            ("wsgi", "/judge/trials/7/live/"),
            ("wsgi", "/no/such/page/"),
        ]
        assert served[0][2] == loop and served[1][2] != loop and served[2][2] != loop
        # Mounted under a prefix (root_path): routed by the path the URLs resolve, as Django's handlers see it.
        mounted = scope("/debate/judge/trials/7/live/stream/") | {"root_path": "/debate"}
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        await asyncio.wait_for(app(mounted, receive, send), GUARD_SECONDS)
        assert served[-1][:2] == ("asgi", "/debate/judge/trials/7/live/stream/")

    asyncio.run(scenario())


def test_requests_at_once_are_bounded_until_their_replies_start():
    """debate_platform.concurrency.RequestsAtOnce: a request waits for a slot; a reply that has started (a stream's
    headers) gives its slot back while it goes on."""
    started, release = [], asyncio.Event()

    async def app(scope, receive, send):
        started.append(scope["path"])
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/stream":
            await release.wait()  # streams on, its slot given back
        await send({"type": "http.response.body", "body": b""})

    async def call(bounded, path):
        sent = []

        async def send(message):
            sent.append(message["type"])

        await bounded({"type": "http", "path": path}, None, send)
        return sent

    async def scenario():
        bounded = RequestsAtOnce(app, limit=1)
        stream = asyncio.create_task(call(bounded, "/stream"))
        await asyncio.sleep(0)
        while "/stream" not in started:
            await asyncio.sleep(0)
        fast = await asyncio.wait_for(call(bounded, "/fast"), GUARD_SECONDS)  # the stream's slot was given back
        assert fast == ["http.response.start", "http.response.body"]
        slow = asyncio.create_task(call(bounded, "/slow"))
        while "/slow" not in started:
            await asyncio.sleep(0)
        waiting = asyncio.create_task(call(bounded, "/after"))
        for _ in range(100):
            await asyncio.sleep(0)
        assert "/after" not in started  # the slow one holds the only slot
        release.set()
        await asyncio.wait_for(asyncio.gather(stream, slow, waiting), GUARD_SECONDS)
        assert started == ["/stream", "/fast", "/slow", "/after"]

    asyncio.run(scenario())
