"""Django's Redis cache, with connection pools shared by the whole process and one redis-py client per pool.

Django's ``caches`` are per context (asgiref's ``Local``), and under the server as deployed every request runs in a
context of its own (a2wsgi copies the loop's context for each synchronous request; Django's ASGI handler makes one
per request too). Django's ``RedisCacheClient`` keeps its connection pools on the cache object, so each request
built a new pool and opened a new connection to Redis for its session and its user: about 6% of the web tier's CPU
at 200 judges (py-spy, docs/benchmarks.md). Here the pools are kept per process, keyed by server and options, and
every cache object borrows from them; redis-py's pools are thread-safe and reset themselves after a fork.

Django's ``get_client`` also builds a new ``redis.Redis`` for every cache command, and redis-py 8 spends about 70 µs
building one (its table of reply callbacks). A ``redis.Redis`` holds no connection of its own (each command borrows
one from the pool) and is safe to share between threads, so one per pool serves every command.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

_pools: dict[str, object] = {}  # (server, pool class, options) as text -> its connection pool, for the process
_clients: dict[int, object] = {}  # id of a pool -> its redis.Redis (pools live as long as the process)
_lock = threading.Lock()


class RedisCacheClient(DjangoRedisCacheClient):
    def _get_connection_pool(self, write):
        index = self._get_connection_pool_index(write)
        pool = self._pools.get(index)  # this object's (Django's attribute), taken from the process's below
        if pool is None:
            server = self._servers[index]
            key = repr((server, self._pool_class, sorted(self._pool_options.items(), key=lambda item: item[0])))
            with _lock:
                pool = _pools.get(key)
                if pool is None:  # the process's first use of it: its pool, and the one client for it
                    pool = _pools[key] = self._pool_class.from_url(server, **self._pool_options)
                    _clients[id(pool)] = self._client(connection_pool=pool)
            self._pools[index] = pool
        return pool

    def get_client(self, key=None, *, write=False):
        return _clients[id(self._get_connection_pool(write))]


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
