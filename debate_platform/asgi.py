"""The web app for an ASGI server: gunicorn's uvicorn workers (gunicorn.conf.py), as the Dockerfile and docker-compose
run it. Under ASGI a live trial's page is pushed its updates (judging/live_stream.py) and PostgreSQL connections come
from a pool (settings: DEBATE_ASGI)."""

import os

from django.core.asgi import get_asgi_application

from .concurrency import RequestsAtOnce

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "debate_platform.settings")
os.environ["DEBATE_ASGI"] = "1"


django_application = get_asgi_application()

from django.conf import settings  # noqa: E402  (configured by get_asgi_application)

application = RequestsAtOnce(django_application, settings.ASGI_REQUESTS_AT_ONCE)
