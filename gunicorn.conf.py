"""gunicorn's settings for the web service: the Dockerfile's CMD and docker-compose's web service run gunicorn in this
folder, which reads this file (its default ``./gunicorn.conf.py``); benchmarks/load_test.py serves the platform the
same way, and can serve it otherwise to compare (``--server wsgi``, ``--workers``, ``--worker-class``).

The app is the ASGI one (debate_platform/asgi.py) in uvicorn workers: a live trial's page is pushed its updates over
a server-sent event stream (judging/live_stream.py), held open at the cost of a coroutine and an idle thread, where
under WSGI each page polled every 0.4 s and a held stream would have taken a whole worker; the other requests run in
a fixed pool of threads in each worker (DEBATE_ASGI_REQUESTS_AT_ONCE), as under a WSGI server. Three workers for the
two cores this was measured on (docs/benchmarks.md, the web tier under load).
"""

wsgi_app = "debate_platform.asgi:application"  # gunicorn's name for the app, ASGI here
workers = 3
worker_class = "uvicorn_worker.UvicornWorker"
# Seconds an idle connection is kept open (uvicorn's keep-alive; idle connections cost the event loop nothing). Longer
# than a judge's pause between requests and than a proxy's own (nginx: 60 s), so that neither sends a request on a
# connection the server is closing: with gunicorn's default of 2 s the load test lost a few moves that way.
keepalive = 75


def post_worker_init(worker):
    """Once a worker has loaded the app: what it loaded, and what its first requests would, kept out of the garbage
    collector's full passes (debate_platform/long_lived.py: each stopped the worker for up to half a second)."""
    from debate_platform.long_lived import warm_up_and_freeze  # here: the app (and Django's settings) loaded first

    worker.log.info("%d long-lived objects kept out of the garbage collector's passes", warm_up_and_freeze())
