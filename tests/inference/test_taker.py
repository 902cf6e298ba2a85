"""When a continuous run asks for new requests (inference.base.Taker), on a fake clock: never the machine's."""

from __future__ import annotations

from inference.base import LIVE_TAKE_INTERVAL, LIVE_TAKE_SHARE, TAKE_INTERVAL, Taker


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recording_taker(clock: FakeClock, take_seconds: float = 0.0):
    """A Taker whose take records its arguments and lasts ``take_seconds`` on ``clock``."""
    calls = []

    def take(free, pausable):
        calls.append((free, pausable))
        clock.now += take_seconds
        return []

    return Taker(take, clock), calls


def test_a_busy_run_asks_for_live_requests_alone_between_its_full_takes():
    clock = FakeClock()
    taker, calls = recording_taker(clock)
    taker(2, 3)
    assert calls == []  # just started: nothing due yet
    clock.now += LIVE_TAKE_INTERVAL
    taker(2, 3)
    assert calls == [(0, 5)]  # live requests alone, for the free rows and those that may be paused
    clock.now += LIVE_TAKE_INTERVAL / 2
    taker(2, 3)
    assert calls == [(0, 5)]  # not again so soon
    clock.now = 100.0 + TAKE_INTERVAL
    taker(2, 3)
    assert calls == [(0, 5), (2, 3)]  # the full take: any request for the free rows, live ones for the rest
    clock.now += LIVE_TAKE_INTERVAL / 2
    taker(2, 3)
    assert calls == [(0, 5), (2, 3)]  # a full take also counts as a live one


def test_a_due_take_is_a_full_one_at_once_and_restarts_both_intervals():
    clock = FakeClock()
    taker, calls = recording_taker(clock)
    clock.now += LIVE_TAKE_INTERVAL / 10
    taker(1, 0, due=True)
    assert calls == [(1, 0)]
    clock.now += LIVE_TAKE_INTERVAL * 0.9
    taker(1, 0)
    assert calls == [(1, 0)]
    clock.now += LIVE_TAKE_INTERVAL * 0.1
    taker(1, 0)
    assert calls == [(1, 0), (0, 1)]


def test_a_run_with_no_room_asks_for_nothing():
    clock = FakeClock()
    taker, calls = recording_taker(clock)
    clock.now += TAKE_INTERVAL
    assert taker(0, 0, due=True) == [] and taker(0, 0) == []
    assert calls == []


def test_slow_live_takes_are_spaced_out_to_a_bounded_share_of_the_run():
    """A live-only take that lasts longer than LIVE_TAKE_SHARE of its interval delays the next one, also across
    full takes, so a slow database or many live trials with turns not yet due cannot slow the rows being written
    by more."""
    slow = LIVE_TAKE_INTERVAL  # each take lasts a whole interval: asked every interval, it would be all the time
    clock = FakeClock()
    taker, calls = recording_taker(clock, take_seconds=slow)
    start = clock.now
    while clock.now - start < 5 * TAKE_INTERVAL:  # several full takes
        taker(1, 1)
        clock.now += LIVE_TAKE_INTERVAL / 10
    live_takes = calls.count((0, 2))
    assert calls.count((1, 1)) >= 4 and set(calls) == {(0, 2), (1, 1)}
    assert live_takes * slow <= LIVE_TAKE_SHARE * (clock.now - start) + slow  # within one take of the share
    assert live_takes == 2  # asked every interval it would have been ~10; after every full take, 5
