"""What an ASGI server lets run at once in one web process (debate_platform/asgi.py)."""

import asyncio


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
