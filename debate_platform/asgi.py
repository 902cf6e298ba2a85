"""The web app for an ASGI server: gunicorn's uvicorn workers (gunicorn.conf.py), as the Dockerfile and docker-compose
run it. A live trial's page follows a stream of its updates (judging/live_stream.py), served on the event loop;
every other request runs in a fixed pool of threads, as under a WSGI server (concurrency.AsyncViewsOnTheLoop).
PostgreSQL connections come from a pool per process (settings: DEBATE_ASGI)."""

import os

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

from .concurrency import AsyncViewsOnTheLoop

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "debate_platform.settings")
os.environ["DEBATE_ASGI"] = "1"

django_asgi = get_asgi_application()
django_wsgi = get_wsgi_application()

from django.conf import settings  # noqa: E402  (configured above)

application = AsyncViewsOnTheLoop(django_asgi, django_wsgi, settings.ASGI_REQUESTS_AT_ONCE)
