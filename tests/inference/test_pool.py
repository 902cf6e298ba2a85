"""The model pool bounds the models a worker keeps loaded per device."""

import gc
import weakref

import pytest

from inference import ModelPool
from inference.base import GenerationBackend


class Loaded(GenerationBackend):
    """Stands for a loaded model: the pool only holds and drops backends, it never calls them."""

    def generate(self, requests, on_text=None):
        raise NotImplementedError

    def choice_probabilities(self, messages, labels):
        raise NotImplementedError

    @property
    def device_name(self):
        return "cpu"


def test_it_keeps_at_most_the_limit_per_device_dropping_the_least_recently_used():
    pool = ModelPool(max_per_device=2)
    made = []

    def make(name):
        made.append(name)
        return Loaded()

    first = pool.get("debater", lambda: make("debater"), device="cuda:0")
    pool.get("scorer", lambda: make("scorer"), device="cuda:0")
    assert pool.get("debater", lambda: make("again"), device="cuda:0") is first  # resident: not loaded again
    pool.get("judge", lambda: make("judge"), device="cuda:0")  # evicts the scorer, used least recently
    assert pool.resident("cuda:0") == ["debater", "judge"]
    pool.get("scorer", lambda: make("scorer"), device="cuda:0")
    assert made == ["debater", "scorer", "judge", "scorer"]


def test_devices_have_separate_limits_and_remote_models_none():
    pool = ModelPool(max_per_device=1)
    pool.get("a", Loaded, device="cuda:0")
    pool.get("b", Loaded, device="cuda:1")
    for name in "xyz":
        pool.get(name, Loaded, device=None)  # a server's model holds no local memory
    assert pool.resident("cuda:0") == ["a"] and pool.resident("cuda:1") == ["b"]
    assert pool.resident(None) == ["x", "y", "z"]


def test_an_evicted_model_stays_alive_while_a_session_still_uses_it_and_is_freed_after():
    pool = ModelPool(max_per_device=1)
    in_use = pool.get("debater", Loaded, device="cpu")
    watch = weakref.ref(in_use)
    pool.get("scorer", Loaded, device="cpu")  # evicts the debater from the pool, not from the session
    assert watch() is in_use
    del in_use
    gc.collect()
    assert watch() is None


def test_it_refuses_a_pool_that_holds_nothing():
    with pytest.raises(ValueError):
        ModelPool(max_per_device=0)
