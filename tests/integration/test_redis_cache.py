"""The Redis cache as deployed (debate_platform/cache.py), against a real Redis: it stores and reads as Django's
does, and builds one redis-py client per connection pool, not one per command."""

import os

import redis

from debate_platform.cache import RedisCache


def redis_cache(**params):
    url = os.environ.get("TEST_REDIS_URL")
    assert url, "TEST_REDIS_URL must point at a running Redis (dev.py test sets it)"
    return RedisCache(url, {"KEY_PREFIX": "test-redis-cache", **params})


def test_it_stores_reads_and_forgets_like_djangos(monkeypatch):
    cache = redis_cache()
    built = []
    real = redis.Redis

    class Counted(real):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(cache._cache, "_client", Counted)
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
    assert len(built) == 1  # Django's own client built one for each of the ~110 commands above


def test_each_connection_pool_keeps_its_own_client():
    cache = redis_cache()
    reader, writer = cache._cache.get_client(), cache._cache.get_client(write=True)
    assert reader is writer  # one server: reads and writes share its pool
    assert reader.connection_pool is cache._cache._get_connection_pool(True)
