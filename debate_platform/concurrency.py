"""How one web process under an ASGI server serves its requests (debate_platform/asgi.py): which handler, how many at
once."""

import asyncio
import functools

from a2wsgi import WSGIMiddleware
from asgiref.sync import iscoroutinefunction
from django.urls import Resolver404, resolve


class RequestsAtOnce:
    """At most ``limit`` requests of this process at once until their reply starts; the others wait their turn on
    the event loop, as they would in a WSGI server's backlog.

    Django runs each request's synchronous code (the views, the middleware) in a thread of its own, each with a
    database connection from the pool: unbounded, a burst of logins (each hashing a password) would take every
    connection and make the others time out, and many threads would share two cores' time. A stream holds its
    slot only until its headers are sent, not while it streams."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit
        self.slots: asyncio.Semaphore | None = None  # made in the server's event loop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.limit)
        await self.slots.acquire()
        held = True

        def release():
            nonlocal held
            if held:
                held = False
                self.slots.release()

        async def send_releasing(message):
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_releasing)
        finally:
            release()


class AsyncViewsOnTheLoop:
    """Each request to the handler its view is written for: an async view (a live page's stream,
    judging.views.trial_stream) through Django's ASGI handler, on the event loop, where holding a stream open costs a
    coroutine (and an idle thread Django keeps for the request); every other (synchronous) view through Django's WSGI
    handler in a fixed pool of ``threads`` threads (a2wsgi), as a WSGI server would run it. Under the ASGI handler a
    synchronous view and each middleware would pass between the event loop and a thread made for the request, several
    times a request: measured slower in the tail (docs/benchmarks.md, the web tier under load)."""

    def __init__(self, asgi_app, wsgi_app, threads: int):
        self.asgi = RequestsAtOnce(asgi_app, threads)
        self.wsgi = WSGIMiddleware(wsgi_app, workers=threads)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not _async_view(_path_info(scope)):
            return await self.wsgi(scope, receive, send)
        return await self.asgi(scope, receive, send)


def _path_info(scope) -> str:
    """The path the URLs resolve, without the prefix the app is mounted at (as Django's handlers strip it)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@functools.lru_cache(maxsize=4096)
def _async_view(path: str) -> bool:
    try:
        return iscoroutinefunction(resolve(path).func)
    except Resolver404:
        return False
