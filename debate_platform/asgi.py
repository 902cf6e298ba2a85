"""The web app for an ASGI server: gunicorn's uvicorn workers (gunicorn.conf.py), as the Dockerfile and docker-compose
run it. Under ASGI a live trial's page is pushed its updates (judging/live_stream.py) and PostgreSQL connections come
from a pool (settings: DEBATE_ASGI)."""

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "debate_platform.settings")
os.environ["DEBATE_ASGI"] = "1"


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


django_application = get_asgi_application()

from django.conf import settings  # noqa: E402  (configured by get_asgi_application)

application = RequestsAtOnce(django_application, settings.ASGI_REQUESTS_AT_ONCE)
