"""The Redis cache as deployed (debate_platform/cache.py), against a real Redis: it stores and reads as Django's
does, shares its connection pools across the process, and builds one redis-py client per pool, not one per command."""

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor

import redis
from django.core.cache import CacheHandler

from debate_platform.cache import RedisCache


def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    assert url, "TEST_REDIS_URL must point at a running Redis (dev.py test sets it)"
    return url


def redis_cache(**params):
    return RedisCache(redis_url(), {"KEY_PREFIX": "test-redis-cache", **params})


def test_it_stores_reads_and_forgets_like_djangos():
    cache = redis_cache()
    cache.set("answer", {"chosen": "A", "probability": 0.7}, 30)
    assert cache.get("answer") == {"chosen": "A", "probability": 0.7}
    assert cache.add("answer", "other", 30) is False
    for step in range(50):
        cache.set(f"k{step}", step, 30)
        assert cache.get(f"k{step}") == step
    assert cache.incr("k3") == 4
    cache.delete("answer")
    assert cache.get("answer", "gone") == "gone"
    cache.delete_many([f"k{step}" for step in range(50)])


def test_one_client_serves_every_command(monkeypatch):
    built = []
    real = redis.Redis

    class Counted(real):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    # Options of its own make a pool of its own, for which this process has no client yet (nor will another test).
    cache = RedisCache(redis_url(), {"KEY_PREFIX": "test-redis-cache-clients", "OPTIONS": {"client_name": "counted"}})
    monkeypatch.setattr(cache._cache, "_client", Counted)
    for step in range(50):
        cache.set(f"k{step}", step, 30)
        assert cache.get(f"k{step}") == step
    cache.delete_many([f"k{step}" for step in range(50)])
    assert len(built) == 1  # Django's own client built one for each of the ~100 commands above


def test_each_connection_pool_keeps_its_own_client():
    cache = redis_cache()
    reader, writer = cache._cache.get_client(), cache._cache.get_client(write=True)
    assert reader is writer  # one server: reads and writes share its pool
    assert reader.connection_pool is cache._cache._get_connection_pool(True)


def test_a_cache_per_request_context_still_reuses_the_processs_connections():
    """Django's caches are per context, and the deployed server runs each request in a context of its own (a2wsgi
    copies the loop's for every synchronous request): each request gets a new cache object. They must not each
    open a connection to Redis (Django's keeps its pools on the object, so each request did)."""
    caches = CacheHandler({"default": {"BACKEND": "debate_platform.cache.RedisCache", "LOCATION": redis_url()}})
    caches["default"].set("warm", 1, 30)  # the pool's first connection, made once for the process
    pool = caches["default"]._cache._get_connection_pool(True)
    made_before = pool._created_connections

    def request(step):  # what a request does with the cache: its session, its user
        cache = caches["default"]
        cache.set(f"session-{step}", {"user": step}, 30)
        assert cache.get(f"session-{step}") == {"user": step}
        return cache

    with ThreadPoolExecutor(2) as threads:  # as a2wsgi runs them: in its threads, each in a copy of the loop's context
        seen = [threads.submit(contextvars.copy_context().run, request, step).result() for step in range(20)]
    assert len({id(cache) for cache in seen}) == 20  # a cache object per request context, as served
    assert {id(cache._cache._get_connection_pool(False)) for cache in seen} == {id(pool)}
    assert pool._created_connections == made_before  # every request borrowed the connection already open
    caches["default"].delete_many([f"session-{step}" for step in range(20)])
