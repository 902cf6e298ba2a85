"""Long pre-generated prompts in a batch of their own (inference/lanes.py, issue 12): routing, the time and the rows
the two lanes share, pausing across lanes, and texts that do not depend on the lanes."""

from __future__ import annotations

import itertools
from dataclasses import replace
from unittest import mock

import pytest
from transformers import AutoTokenizer

from generation.backends import get_backend
from inference import GenerationRequest
from inference.lanes import Lanes
from tests.generation.test_continuous_batching import cpu_batcher

LONG = "The river rose in spring and the farmers moved their herds to the hills for a week. " * 6
LONG_TOKENS = 40  # prompts longer than this, if pre-generated, go to the long lane


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    backend = get_backend("transformers", str(tiny_model_dir))
    backend._load()
    return backend._model, AutoTokenizer.from_pretrained(tiny_model_dir)


def batcher(model, tokenizer, max_rows, **options):
    return cpu_batcher(
        model, tokenizer, max_rows=max_rows, prefill_tokens=64, chunk_tokens=16, prefill_share=None, **options
    )


def lanes(model, tokenizer, capacity=4, **options):
    """Lanes on a clock that advances by one at each reading (every step takes one second): which lane steps never
    depends on the machine's speed."""
    options.setdefault("clock", itertools.count().__next__)
    return Lanes(
        batcher(model, tokenizer, capacity), batcher(model, tokenizer, capacity), long_tokens=LONG_TOKENS, **options
    )


def request(tokens, priority=0, seed=None):
    """Greedy, or sampled with ``seed``: ``tokens`` tokens exactly."""
    sampling = {"temperature": 0.0, "top_p": 1.0} if seed is None else {"temperature": 0.9, "top_p": 0.9, "seed": seed}
    return GenerationRequest(messages=[], max_new_tokens=tokens, min_new_tokens=tokens, priority=priority, **sampling)


def run(runner, submitted, each_step=None) -> dict:
    """Submit (key, request, prompt_ids) and step ``runner`` until idle; returns the results by key."""
    for key, req, ids in submitted:
        runner.submit(key, req, ids)
    results = {}
    while not runner.idle:
        results.update(runner.step())
        if each_step:
            each_step()
    return results


def test_only_pre_generated_prompts_longer_than_the_limit_go_to_the_long_lane(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    long_ids, short_ids = tokenizer(LONG)["input_ids"], tokenizer("a short question")["input_ids"]
    assert len(long_ids) > LONG_TOKENS >= len(short_ids)
    both = lanes(model, tokenizer)
    both.submit("long pre-generated", request(4), long_ids)
    both.submit("long live", request(4, priority=1), long_ids)  # a judge waits on it: never apart from the others
    both.submit("short pre-generated", request(4), short_ids)
    assert [row.key for row in both.long.waiting] == ["long pre-generated"]
    assert [row.key for row in both.main.waiting] == ["long live", "short pre-generated"]
    assert both.free_rows == 1 and both.live_seen_at == both.main.live_seen_at is not None
    ahead = replace(request(1, priority=1), ahead=True)  # a live debate's next round, prefilled ahead of time
    both.submit("ahead", ahead, short_ids)
    both.submit("another", ahead, long_ids[1:])  # however long: in the main lane, as a live request
    assert [row.key for row in both.main.waiting][2:] == ["ahead", "another"]
    assert both.free_rows == 1  # they hold no row


def test_prefills_ahead_of_time_do_not_hold_the_long_lane_back_as_a_live_request_does(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    both = lanes(model, tokenizer)
    both.submit("long pre-generated", request(4), tokenizer(LONG)["input_ids"])
    both.submit("ahead", replace(request(1, priority=1), ahead=True), tokenizer("a next round")["input_ids"])
    assert both._long_turn()  # nobody waits on the prefill ahead yet
    both.submit("live", request(4, priority=1), tokenizer("a question")["input_ids"])
    assert not both._long_turn()  # a judge's question waits for at most the step under way


def test_the_texts_are_those_of_one_batch_and_the_main_lane_never_holds_the_long_prompt(model_and_tokenizer):
    """Seeded sampling: each text depends on its seed, not on the lane or the rows beside it; and the rows beside a
    long pre-generated prompt never attend over its columns (the point of the long lane)."""
    model, tokenizer = model_and_tokenizer
    long_ids = tokenizer(LONG)["input_ids"]
    submitted = [
        ("long", request(24, seed=1), long_ids),
        ("long, its next round", request(12, seed=2), long_ids + tokenizer(" and then")["input_ids"]),
        ("short", request(30, seed=3), tokenizer("hello there")["input_ids"]),
        ("live", request(30, priority=1, seed=4), tokenizer("what did the farmers do?")["input_ids"]),
    ]
    one = run(batcher(model, tokenizer, 4), submitted)
    both = lanes(model, tokenizer)
    widest = []

    def main_width():
        if both.main.mask is not None:
            widest.append(both.main.mask.shape[1])
        assert len(both.main.rows) + len(both.long.rows) <= both.capacity

    apart = run(both, submitted, main_width)
    assert {key: result.text for key, result in apart.items()} == {key: result.text for key, result in one.items()}
    assert all(apart[key].tokens_out == req.max_new_tokens for key, req, _ in submitted)
    assert widest and max(widest) < len(long_ids)
    # A turn's batch figures count the rows running on the worker, in either lane.
    assert apart["long"].batch_size == one["long"].batch_size == 4
    assert both.long.prefill_steps > 0 and both.main.prefill_steps > 0


@pytest.mark.parametrize("long_cost, main_cost", [(3, 1), (1, 3)])
def test_the_long_lane_takes_at_most_its_share_never_two_steps_in_a_row_and_none_while_a_live_request_waits(
    model_and_tokenizer, long_cost, main_cost
):
    """A clock that advances by a fixed cost at each lane's step: where the long lane's steps cost more, the share
    bounds it; where they cost less, only the rule against two in a row keeps it from running several steps after
    each of the main lane's."""
    model, tokenizer = model_and_tokenizer
    now = [0.0]
    both = lanes(model, tokenizer, clock=lambda: now[0])
    steps = []  # (lane, seconds, both lanes had work, a live request waited, the live row's tokens after it)
    live_waiting = False
    for name, lane, cost in (("main", both.main, main_cost), ("long", both.long, long_cost)):

        def timed(step=lane.step, name=name, cost=cost, lane=lane):
            busy, prefills = both._can_step(both.main) and both._can_step(both.long), lane.prefill_steps
            result = step()
            now[0] += cost
            live = next((row for row in both.main.rows if row.key == "live"), None)
            kind = "main prefill" if name == "main" and lane.prefill_steps > prefills else name
            steps.append((kind, cost, busy, live_waiting, len(live.tokens) if live else None))
            return result

        lane.step = timed
    submitted = [
        ("long", request(60), tokenizer(LONG)["input_ids"]),
        ("short", request(60), tokenizer("hi")["input_ids"]),
    ]
    for submission in submitted:
        both.submit(*submission)
    for _ in range(20):
        both.step()
    while both.long_last or both.other_seconds > both.decode_seconds:  # until the next step is the long lane's
        both.step()
    both.submit("live", request(20, priority=1), tokenizer("a question")["input_ids"])
    live_waiting = True
    both.step()
    live_waiting = False
    while not both.idle:
        both.step()
        if steps[-1][4] == 5 and not any(key == "later" for key, *_ in submitted):  # a main-lane prefill meanwhile
            submitted.append(("later", request(4), tokenizer("and later")["input_ids"]))
            both.submit(*submitted[-1])
    busy = [(name, seconds, waiting) for name, seconds, was_busy, waiting, _ in steps if was_busy]
    names = [name for name, _, _ in busy]
    assert names.count("long") > 5 and names.count("main") > 5  # both lanes went on together
    assert all(not (a == b == "long") for a, b in zip(names, names[1:]))  # never two long steps in a row
    assert [name for name, _, waiting in busy if waiting] == ["main prefill"]  # the live request went first
    # Share 0.5: the long lane's steps and the main lane's prefills take at most the main lane's decoding time,
    # give or take the last step.
    decoding = sum(seconds for name, seconds, _ in busy if name == "main")
    other = sum(seconds for name, seconds, _ in busy if name != "main")
    assert other <= decoding + max(long_cost, main_cost)
    # Between two of the live row's tokens, at most one long-lane step.
    written = [i for i, step in enumerate(steps) if step[4] and (i == 0 or step[4] != steps[i - 1][4])]
    assert len(written) == 19  # the 20th token ends the row: it leaves the batch in the same step
    assert all(sum(steps[j][0] == "long" for j in range(a, b)) <= 1 for a, b in zip(written, written[1:]))


def test_a_live_request_pauses_a_long_lane_row_when_no_row_is_free_and_the_row_resumes_unchanged(
    model_and_tokenizer,
):
    model, tokenizer = model_and_tokenizer
    long_ids = tokenizer(LONG)["input_ids"]
    first = [("long 1", request(30, seed=1), long_ids), ("long 2", request(30, seed=2), long_ids[1:])]
    uninterrupted = run(lanes(model, tokenizer, capacity=2), first)
    both = lanes(model, tokenizer, capacity=2)
    for key, req, ids in first:
        both.submit(key, req, ids)
    for _ in range(30):  # both long prompts prefilled (in chunks, 8 each), and a few tokens written
        both.step()
    assert len(both.long.rows) == 2 and not both.long.waiting
    assert both.free_rows == 0 and both.pausable_rows == 2

    def never_over_capacity():
        assert len(both.main.rows) + len(both.long.rows) <= 2

    results = run(both, [("live", request(6, priority=1), tokenizer("a question")["input_ids"])], never_over_capacity)
    assert results["live"].tokens_out == 6 and results["live"].pauses == 0
    assert sorted(result.pauses for key, result in results.items() if key != "live") == [0, 1]
    assert list(results)[0] == "live"  # it did not wait for a long row to finish
    for key in ("long 1", "long 2"):
        assert results[key].text == uninterrupted[key].text and results[key].tokens_out == 30


def test_a_live_request_pauses_the_main_lanes_pre_generated_row_before_a_long_one(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    both = lanes(model, tokenizer, capacity=2)
    both.submit("long", request(40), tokenizer(LONG)["input_ids"])
    both.submit("short", request(40), tokenizer("hello there")["input_ids"])
    for _ in range(20):
        both.step()
    assert [row.key for row in both.long.rows] == ["long"] and [row.key for row in both.main.rows] == ["short"]
    results = run(both, [("live", request(6, priority=1), tokenizer("a question")["input_ids"])])
    assert results["short"].pauses == 1 and results["long"].pauses == 0 and list(results)[0] == "live"


def test_the_backend_runs_long_pre_generated_prompts_in_their_own_lane_unless_turned_off(tiny_model_dir):
    """Through ``generate_continuously``: a long pre-generated prompt beside others gives the texts each gives with
    every prompt in one batch (a prefill budget above every prompt, or the long lane turned off, as
    DEBATE_GENERATION_LONG_LANE=0 does)."""
    backend = get_backend("transformers", str(tiny_model_dir))
    requests = [
        GenerationRequest(
            messages=[{"role": "user", "content": LONG}],
            max_new_tokens=10,
            min_new_tokens=10,
            temperature=0.0,
            top_p=1.0,
        ),
        GenerationRequest(
            messages=[{"role": "user", "content": "hello"}],
            max_new_tokens=10,
            min_new_tokens=10,
            temperature=0.0,
            top_p=1.0,
            priority=1,
        ),
    ]

    def generate(prefill_tokens, long_lane=True):
        pending, results = list(enumerate(requests)), {}
        saved = backend.prefill_tokens, backend.long_lane
        backend.prefill_tokens, backend.long_lane = prefill_tokens, long_lane
        try:
            backend.generate_continuously(
                lambda free, pausable=0: [pending.pop(0) for _ in range(min(free, len(pending)))],
                results.__setitem__,
                capacity=4,
            )
        finally:
            backend.prefill_tokens, backend.long_lane = saved
        return results

    made = []
    make = Lanes.__init__

    def recorded(self, *args, **options):
        make(self, *args, **options)
        made.append(self)

    with mock.patch.object(Lanes, "__init__", recorded):
        apart, together, off = generate(LONG_TOKENS), generate(10_000), generate(LONG_TOKENS, long_lane=False)
    assert [apart[i].text for i in range(2)] == [together[i].text for i in range(2)] == [off[i].text for i in range(2)]
    assert made[0].long.prefill_steps > 0 and made[1].long.prefill_steps == 0  # the long prompt's own lane, or none
    assert len(made) == 2  # turned off: no lanes at all


@pytest.mark.parametrize("on", [True, False])
def test_the_long_lane_setting_reaches_the_backend(tiny_model_dir, settings, on):
    settings.GENERATION_LONG_LANE = on
    # A context window of its own: a backend made now, not one an earlier test left in the pool (made lazily: no load)
    backend = get_backend("transformers", str(tiny_model_dir), context_window=1000 + on)
    assert backend.long_lane is on
