"""gunicorn's settings for the web service: the Dockerfile's CMD and docker-compose's web service run gunicorn in this
folder, which reads this file (its default ``./gunicorn.conf.py``); benchmarks/load_test.py serves the platform the
same way.

Threaded workers (gthread) rather than sync ones: a judge's browser keeps its connection open between live polls
(a sync worker closes it after every reply, so each poll paid for a new connection), and while one request waits
on PostgreSQL or Redis another request of the same process runs. At 100 judges on live pages on a 2-core machine
the live poll's p95 went from 210 to 38 ms, and the server's CPU per request from 5.5 to 4.8 ms
(docs/benchmarks.md, the web tier under load). Everything a request touches is per thread (database connections)
or thread-safe (the cache client, judging.quotes' passage cache, audit's context variable).
"""

workers = 3
worker_class = "gthread"
threads = 4
