"""gunicorn's settings for the web service: the Dockerfile's CMD and docker-compose's web service run gunicorn in this
folder, which reads this file (its default ``./gunicorn.conf.py``); benchmarks/load_test.py serves the platform the
same way, and can override the workers to compare (``--workers``, ``--worker-class``).

Three sync workers for the two cores this was measured on. Threaded workers (``gthread``, 4 threads each: browsers
keep their connections between polls, and a request runs while another waits on the database) were measured
against them at 100 judges on live pages, alternating four times: no difference beyond the run-to-run noise of
the machine (live poll p95 36-270 ms with threads, 67-220 ms without; docs/benchmarks.md, the web tier under
load), so the simpler model stays.
"""

workers = 3
worker_class = "sync"
