"""Issue 12, parts 1 and 4 on a real (tiny) transformers model: a live turn pauses pre-generated rows of a full
batch, which resume from the text they had written; a prompt that extends a cached one prefills only its new
tokens. What is written never depends on either (float32 on the CPU)."""

import math
from unittest import mock

import pytest
import torch

from inference import GenerationRequest, continuous
from inference.prefix_cache import MIN_REUSED_TOKENS, SUPERSEDED_WITHIN_TOKENS, PrefixCache, common_prefix_length
from judging.models import Turn
from judging.protocols.prompts import DEFAULT_DEBATER_TEMPLATE, DEFAULT_SYSTEM_PROMPT, build_debater_messages

from .test_continuous_batching import question_while_busy
from .test_limits import _batcher

PARAGRAPH = "The committee met on a cold morning to weigh the harbour plan, and argued for hours about costs. "


def ask(text, **options):
    settings = {"max_new_tokens": 24, "min_new_tokens": 24, "temperature": 0.9, "top_p": 0.9, "seed": 5} | options
    return GenerationRequest(messages=[{"role": "user", "content": text}], repetition_penalty=1.2, **settings)


def batcher(tiny_model_dir, max_rows=2, prefix_cache=True):
    tokenizer, made = _batcher(tiny_model_dir, prefill_tokens=2048, max_rows=max_rows)
    if prefix_cache:
        made.prefix_cache = PrefixCache(64 * 2**20)
    return tokenizer, made


def run(b):
    results = {}
    while not b.idle:
        results.update(b.step())
    return results


@pytest.mark.parametrize("prefix_cache", [True, False], ids=["resumed-from-its-cache", "recomputed"])
def test_a_priority_request_pauses_a_running_row_which_resumes_where_it_stopped(tiny_model_dir, prefix_cache):
    tokenizer, alone = batcher(tiny_model_dir, max_rows=4)
    prompts = {key: tokenizer(f"{key}: {PARAGRAPH}")["input_ids"] for key in ("first", "second", "live")}
    for key in ("first", "second"):
        alone.submit(key, ask(key, seed=len(key)), prompts[key])
    expected = run(alone)

    _, full = batcher(tiny_model_dir, max_rows=2, prefix_cache=prefix_cache)
    for key in ("first", "second"):
        full.submit(key, ask(key, seed=len(key)), prompts[key])
    for _ in range(6):  # a prefill and five decoding steps: both rows are writing
        full.step()
    assert full.free_rows == 0 and full.pausable_rows == 2
    full.submit("live", ask("live", priority=1, max_new_tokens=8, min_new_tokens=8), prompts["live"])
    assert full.pausable_rows == 1
    results = dict(full.step())
    # At once: the row that joined last is paused (its text kept), the live request is prefilled in its place.
    assert [row.key for row in full.rows] == ["first", "live"] and len(full.rows[1].tokens) == 1
    assert [row.key for row in full.waiting] == ["second"] and full.waiting[0].pauses == 1
    results.update(run(full))
    assert results["live"].tokens_out == 8 and results["live"].pauses == 0
    second = results["second"]
    assert second.pauses == 1 and second.paused_seconds > 0
    # Nothing lost, nothing written twice: the same text as without the pause, all 24 tokens once.
    assert second.text == expected["second"].text and second.tokens_out == 24
    assert results["first"].text == expected["first"].text and results["first"].pauses == 0
    assert second.tokens_in == len(prompts["second"])
    if prefix_cache:  # the paused row's cache was kept: resuming computed one token
        assert second.tokens_prefilled == len(prompts["second"]) + 1
    else:  # its prompt and the five tokens it had written, again
        assert second.tokens_prefilled == 2 * len(prompts["second"]) + 6


def test_rows_of_the_same_priority_never_pause_each_other(tiny_model_dir):
    tokenizer, full = batcher(tiny_model_dir, max_rows=1)
    full.submit("a", ask("a"), tokenizer("a " + PARAGRAPH)["input_ids"])
    full.step()
    full.submit("b", ask("b"), tokenizer("b " + PARAGRAPH)["input_ids"])
    assert full.pausable_rows == 1  # a live request could take it
    results = run(full)
    assert results["a"].pauses == 0 and results["b"].pauses == 0
    # b waited for a free row: it never ran beside a (no wall-clock comparison: the machine may be busy)
    assert results["a"].batch_size == 1 and results["b"].batch_size == 1


def test_a_live_request_goes_before_prefills_ahead_of_time_which_hold_no_row(tiny_model_dir):
    """A round that ends in many live debates at once queues prefills of their next rounds (ahead of time: nobody
    waits on them yet). A judge's question asked meanwhile finds its row free (they hold none, so the worker takes
    it at once) and is prefilled before them; they go before pre-generated work."""
    tokenizer, queue = batcher(tiny_model_dir, max_rows=2)
    prompts = {key: tokenizer(f"{key}: {PARAGRAPH}")["input_ids"] for key in ("a", "b", "c", "live", "pre")}
    for key in ("a", "b", "c"):
        queue.submit(key, ask(key, priority=1, ahead=True, max_new_tokens=1, min_new_tokens=0), prompts[key])
    assert queue.free_rows == 2 and queue.pausable_rows == 0
    queue.submit("pre", ask("pre", max_new_tokens=4, min_new_tokens=4), prompts["pre"])
    queue.submit("live", ask("live", priority=1, max_new_tokens=4, min_new_tokens=4), prompts["live"])
    assert queue.free_rows == 0
    started = []
    while not queue.idle:
        finished = queue.step()
        started += [key for key in [row.key for row in queue.rows] + [key for key, _ in finished] if key not in started]
    assert started == ["live", "a", "b", "c", "pre"]


def test_prefills_ahead_of_time_pause_one_pre_generated_row_at_a_time(tiny_model_dir):
    """A round's prefills ahead are handed out all at once (they hold no row): in a full batch of pre-generated rows
    they pause one row, not one each, and take turns in it."""
    tokenizer, full = batcher(tiny_model_dir, max_rows=2)
    prompts = {key: tokenizer(f"{key}: {PARAGRAPH}")["input_ids"] for key in ("first", "second", "a", "b", "c")}
    for key in ("first", "second"):
        full.submit(key, ask(key, max_new_tokens=30, min_new_tokens=30), prompts[key])
    for _ in range(3):  # a prefill and two decoding steps: both rows are writing
        full.step()
    for key in ("a", "b", "c"):
        full.submit(key, ask(key, priority=1, ahead=True, max_new_tokens=1, min_new_tokens=0), prompts[key])
    results = run(full)
    assert set(results) == {"first", "second", "a", "b", "c"}
    assert sorted(results[key].pauses for key in ("first", "second")) == [0, 1]


def test_a_request_drops_the_waiting_prefill_ahead_of_time_that_its_prompt_supersedes(tiny_model_dir):
    """A judge who asks the moment a round ends: the prefill ahead of the debater's next round has not started, and
    the question's prompt holds all of it but its closing words. The question goes first, which would leave it
    nothing to serve: it is dropped. Another debate's stays, and so does one already prefilling."""
    tokenizer, queue = batcher(tiny_model_dir, max_rows=2)
    transcript = tokenizer(PARAGRAPH * 2)["input_ids"]
    closing = tokenizer(" Now give your next speech.")["input_ids"]
    question = tokenizer(" The judge asks: which line says so?")["input_ids"]
    started = tokenizer("A third debate. " + PARAGRAPH)["input_ids"]
    ahead = {"priority": 1, "ahead": True, "max_new_tokens": 1, "min_new_tokens": 0}
    queue.submit("started", ask("started", **ahead), started)
    queue.waiting[0].computed = 1  # as if its first chunk were prefilled
    queue.submit("ahead", ask("ahead", **ahead), transcript + closing)
    queue.submit("other", ask("other", **ahead), tokenizer("Another debate. " + PARAGRAPH)["input_ids"])
    queue.submit("question", ask("question", priority=1), transcript + question + closing)
    queue.submit("started again", ask("started again", priority=1), started + question)
    queue.submit("late", ask("late", **ahead), transcript + closing)  # handed out after the question: not queued
    assert [row.key for row in queue.waiting] == ["started", "other", "question", "started again"]
    assert set(run(queue)) == {"started", "other", "question", "started again"}


def test_a_prompt_that_extends_a_cached_one_prefills_only_its_new_tokens(tiny_model_dir):
    tokenizer, plain = batcher(tiny_model_dir, max_rows=2, prefix_cache=False)
    round_one = tokenizer(PARAGRAPH * 3)["input_ids"]
    round_two = round_one + tokenizer(" Then the judge asked why, and the debaters answered.")["input_ids"]
    plain.submit("two", ask("two"), round_two)
    expected = run(plain)["two"]
    assert expected.tokens_prefilled == len(round_two)

    _, reusing = batcher(tiny_model_dir, max_rows=2)
    reusing.submit("one", ask("one"), round_one)
    run(reusing)
    reusing.submit("two", ask("two"), round_two)
    result = run(reusing)["two"]
    assert result.tokens_prefilled == len(round_two) - len(round_one)
    assert result.text == expected.text  # the cached prefix changes nothing in what is written
    assert reusing.prefix_cache.hits == 1 and reusing.prefix_cache.reused_tokens == len(round_one)


def test_a_cached_prefix_that_cannot_be_copied_costs_its_reuse_not_the_batch(tiny_model_dir):
    """Copying a cached prefix into room, at the first step that extends it, can run out of memory (on a GPU): that
    request is prefilled whole, the rows running beside it go on, and what each writes is what it would have
    written."""
    tokenizer, plain = batcher(tiny_model_dir, max_rows=2, prefix_cache=False)
    round_one = tokenizer(PARAGRAPH * 3)["input_ids"]
    round_two = round_one + tokenizer(" Then the judge asked why, and the debaters answered.")["input_ids"]
    other = tokenizer("Another debate entirely, about the price of bread.")["input_ids"]
    plain.submit("busy", ask("busy", max_new_tokens=40, min_new_tokens=40), other)
    plain.submit("two", ask("two"), round_two)
    expected = run(plain)

    _, failing = batcher(tiny_model_dir, max_rows=2)
    failing.submit("one", ask("one"), round_one)
    run(failing)
    failing.submit("busy", ask("busy", max_new_tokens=40, min_new_tokens=40), other)
    failing.step()  # running
    found, refused = failing.prefix_cache.longest, []

    def found_but_cannot_be_copied(*args, **options):
        length, cache = found(*args, **options)
        if cache is not None:  # its first layer's first update copies the prefix into room: that runs out of memory
            out_of_memory = torch.OutOfMemoryError("CUDA out of memory (as a test raises it)")
            cache.layers[0].update = mock.Mock(side_effect=out_of_memory)
            refused.append(cache.layers[0].update)
        return length, cache

    with mock.patch.object(failing.prefix_cache, "longest", side_effect=found_but_cannot_be_copied):
        failing.submit("two", ask("two"), round_two)
        results = run(failing)
    assert len(refused) == 1 and refused[0].called and failing.prefix_failures == 1
    assert results["two"].tokens_prefilled == len(round_two)  # whole
    assert {key: r.text for key, r in results.items()} == {key: expected[key].text for key in ("busy", "two")}


def test_prompts_that_extend_cached_ones_are_prefilled_together_and_write_what_they_would_alone(tiny_model_dir):
    """Judges asking at once: each debater's next round extends its cached round, by different lengths. One step
    prefills them all (the shorter extension recomputes a few cached tokens to stay aligned); what each writes is
    what it writes prefilled alone from nothing."""
    tokenizer, plain = batcher(tiny_model_dir, max_rows=4, prefix_cache=False)
    rounds = {
        "a": (PARAGRAPH * 3, " Then the judge asked why, and the debaters answered at length, point by point."),
        "b": ("Another passage. " + PARAGRAPH * 2, " Why?"),
        "c": (PARAGRAPH[10:] * 4, " The judge wanted the costs named, one by one, with the sentence for each."),
    }
    one = {key: tokenizer(first)["input_ids"] for key, (first, _) in rounds.items()}
    two = {key: one[key] + tokenizer(added)["input_ids"] for key, (_, added) in rounds.items()}
    for key in rounds:
        plain.submit(key, ask(key, seed=len(key) + 3), two[key])
    expected = run(plain)

    _, reusing = batcher(tiny_model_dir, max_rows=4)
    for key in rounds:
        reusing.submit(key, ask(key, max_new_tokens=2, min_new_tokens=2), one[key])
    run(reusing)
    for key in rounds:
        reusing.submit(key, ask(key, seed=len(key) + 3), two[key])
    steps_before = reusing.prefill_steps
    reusing.step()
    assert reusing.prefill_steps == steps_before + 1
    # Fewest new tokens first (then in that order): when many ask at once, most get their first words soonest.
    assert [row.key for row in reusing.rows] == sorted(rounds, key=lambda key: len(two[key]) - len(one[key]))
    results = run(reusing)
    width = max(len(two[key]) - len(one[key]) for key in rounds)
    for key in rounds:
        assert results[key].text == expected[key].text
        # Each computed the longest extension's length: its own new tokens and, for shorter ones, cached ones again.
        assert results[key].tokens_prefilled == width
    assert reusing.prefix_cache.hits == 3


def cached_rounds(tokenizer, b, keys, priority=0):
    """A first round for each key, written (two tokens) so that the batcher's prefix cache holds it; their ids."""
    rounds = {key: tokenizer(f"{key}: " + PARAGRAPH * 2)["input_ids"] for key in keys}
    for key, ids in rounds.items():
        b.submit(key, ask(key, max_new_tokens=2, min_new_tokens=2, priority=priority), ids)
    run(b)
    return rounds


@pytest.mark.parametrize("background", [{}, {"priority": 1, "ahead": True}], ids=["pre-generated", "prefills-ahead"])
def test_pre_generated_extensions_beside_live_debates_are_grouped_within_the_finer_chunk(tiny_model_dir, background):
    """A judge's question waits for the step being run: beside live debates, pre-generated rows and prefills ahead of
    time extending cached prefixes are grouped only up to the finer chunk, as their long prompts are chunked."""
    tokenizer, made = _batcher(tiny_model_dir, prefill_tokens=2048, max_rows=8, clock=lambda: 0)
    made.prefix_cache = PrefixCache(64 * 2**20)
    rounds = cached_rounds(tokenizer, made, "abcdef")
    added = tokenizer(" and the judge asked why")["input_ids"]
    made.live_chunk_tokens = 2 * len(added) + 1  # the finer chunk: two rows' new tokens fit, not three
    made.live_seen_at = 0.0  # a live request came just now
    for key, ids in rounds.items():
        made.submit(key, ask(key, **background), ids + added)
    made.step()
    assert len(made.rows) == 2
    made.live_seen_at = None  # no live debate expected: the whole chunk's budget
    made.step()  # the two decode
    made.step()
    assert len(made.rows) == 6


def test_a_wide_extension_passed_over_too_often_goes_first(tiny_model_dir):
    tokenizer, made = batcher(tiny_model_dir, max_rows=2)
    made.chunk_tokens = 64
    narrow_keys = [f"n{i}" for i in range(continuous.MOST_PASSED_OVER + 2)]
    rounds = cached_rounds(tokenizer, made, ["wide", *narrow_keys])
    made.submit("wide", ask("wide", max_new_tokens=1), rounds["wide"] + tokenizer(PARAGRAPH * 2)["input_ids"][:40])
    started = {}
    for step, key in enumerate(narrow_keys):  # a narrower question arrives at every step, the wide one waits
        made.submit(key, ask(key, max_new_tokens=1), rounds[key] + tokenizer(" Why?")["input_ids"])
        for finished, _ in made.step():
            started.setdefault(finished, step)
        started.update({row.key: step for row in made.rows if row.key not in started})
    assert started["wide"] <= continuous.MOST_PASSED_OVER
    assert started["wide"] > 0  # but not before narrower ones: fewest new tokens first


def test_a_short_shared_preamble_is_not_reused(tiny_model_dir):
    """A prompt sharing only its first few tokens (a chat template's preamble) is prefilled with the others."""
    tokenizer, reusing = batcher(tiny_model_dir, max_rows=4)
    reusing.submit("one", ask("one"), tokenizer(PARAGRAPH * 2)["input_ids"])
    run(reusing)
    other = tokenizer(PARAGRAPH[:40] + " something else entirely, " * 12)["input_ids"]
    reusing.submit("other", ask("other"), other)
    assert run(reusing)["other"].tokens_prefilled == len(other)


def layers(length):
    """Keys and values of ``length`` tokens for a one-layer cache of 2 heads of 4 dimensions (zeros)."""
    return [(torch.zeros(1, 2, length, 4), torch.zeros(1, 2, length, 4))]


PER_TOKEN_BYTES = 2 * 2 * 4 * 4  # of ``layers(1)``: keys and values, 2 heads x 4 float32 each


def test_the_prefix_cache_keeps_to_its_memory_and_drops_the_least_recently_used():
    cache = PrefixCache(max_bytes=100 * PER_TOKEN_BYTES)
    a, b, c = list(range(40)), list(range(1000, 1040)), list(range(2000, 2040))
    cache.store(a, layers(40))
    cache.store(b, layers(40))
    assert cache.nbytes == 80 * PER_TOKEN_BYTES
    cache.store(a, layers(40))  # a finished again (held already): b is now the least recently used
    cache.store(c, layers(40))
    assert [e.tokens[0] for e in cache.entries.values()] == [0, 2000] and cache.nbytes == 80 * PER_TOKEN_BYTES
    assert cache.longest(b, most=40) == (0, None)
    assert cache.longest(a + [7], most=41)[0] == 40
    cache.store(a + [1, 2, 3], layers(43))  # supersedes a
    assert [len(e.tokens) for e in cache.entries.values()] == [40, 43]
    length, found = cache.longest(a + [1, 2, 9], most=100)
    assert length == 42 and found.layers[0].keys.shape == (1, 2, 42, 4)
    assert cache.longest(a + [1, 2, 9], most=100, least=43) == (0, None)
    assert cache.longest(a[: MIN_REUSED_TOKENS - 1] + [-1], most=100) == (0, None)
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2 and common_prefix_length([], [1]) == 0


def test_the_prefix_cache_drops_a_taken_entry_before_one_still_waiting_for_its_next_round(caplog):
    """Live debaters' prompts: one has been taken by its next round (whose own prompt will supersede it), the
    others wait for theirs. Over the bound, the taken one goes, though it was used last; the least recently used
    would be the prompt whose next round comes soonest. Storing the same prompt again makes it waiting again."""

    cache = PrefixCache(max_bytes=100 * PER_TOKEN_BYTES)
    a, b, c, d = (list(range(start, start + 30)) for start in (0, 1000, 2000, 3000))
    for tokens in (a, b, c):
        cache.store(tokens, layers(30), priority=1)
    assert cache.longest(b + [7], most=31, least=15)[0] == 30  # b's next round starts from it
    cache.store(d, layers(30), priority=1)
    assert [e.tokens[0] for e in cache.entries.values()] == [0, 2000, 3000]  # b goes, not the least recent, a
    assert cache.longest(c + [7], most=31)[0] == 30
    cache.store(c, layers(30), priority=1)  # c's row stored its prompt again: c waits again, a is least recent
    cache.store(b, layers(30), priority=1)
    assert [e.tokens[0] for e in cache.entries.values()] == [3000, 2000, 1000]
    assert not caplog.records  # a, still waiting, was dropped: harmless unless a lookup needs it (a last round's)
    assert cache.longest(a + [7], most=31) == (0, None)  # its next round: the cache was too small, said once
    assert cache.missed_dropped == 1 and [r.levelname for r in caplog.records] == ["WARNING"]
    assert "DEBATE_GENERATION_PREFIX_CACHE_MB" in caplog.records[0].getMessage()
    assert cache.longest(d + [7], most=31)[0] == 30
    cache.store(list(range(5000, 5030)), layers(30))  # a pre-generated prompt goes before a taken live one
    assert [e.tokens[0] for e in cache.entries.values()] == [2000, 1000, 3000]
    cache.store(list(range(6000, 6030)), layers(30), priority=1)
    assert [e.tokens[0] for e in cache.entries.values()] == [2000, 1000, 6000]
    cache.store(list(range(7000, 7030)), layers(30), priority=1)  # none taken: waiting live prompts go
    cache.store(list(range(8000, 8030)), layers(30), priority=1)
    assert [e.tokens[0] for e in cache.entries.values()] == [6000, 7000, 8000]
    assert cache.longest(list(range(9000, 9031)), most=31) == (0, None) and cache.missed_dropped == 1  # unrelated
    assert cache.longest(b + [7], most=31) == (0, None) and cache.missed_dropped == 2
    assert len(caplog.records) == 1  # said once


def test_an_entry_matched_in_part_is_not_taken():
    """A row sharing only part of an entry (another candidate, or a trial on the same passage), more than
    SUPERSEDED_WITHIN_TOKENS short of it, will not supersede it: the entry still waits for its own row (a paused
    candidate resuming), and an entry taken whole goes before it."""

    cache = PrefixCache(max_bytes=300 * PER_TOKEN_BYTES)
    paused, other = list(range(100)), list(range(1000, 1100))
    cache.store(paused, layers(100), priority=1)
    cache.store(other, layers(100), priority=1)
    assert cache.longest(paused[:30] + [-1] * 5, most=35)[0] == 30  # a sibling shares the first 30 tokens
    assert cache.longest(other + [7], most=101)[0] == 100  # other's next round takes it whole
    cache.store(list(range(2000, 2100)), layers(100), priority=1)
    cache.store(list(range(3000, 3100)), layers(100), priority=1)  # over the bound: the taken one goes
    assert [e.tokens[0] for e in cache.entries.values()] == [0, 2000, 3000]


def test_the_prefix_cache_drops_pre_generated_entries_before_live_ones():
    """A live round's prompt outlives newer pre-generated prompts: the judge waits on its next round."""

    cache = PrefixCache(max_bytes=100 * PER_TOKEN_BYTES)
    live, first, second = list(range(40)), list(range(1000, 1040)), list(range(2000, 2040))
    cache.store(live, layers(40), priority=1)
    cache.store(first, layers(40))
    cache.store(second, layers(40))  # over the bound: the pre-generated `first` goes, not the older live entry
    assert [e.tokens[0] for e in cache.entries.values()] == [0, 2000]
    cache.store(list(range(3000, 3040)), layers(40), priority=1)  # only live ones above: the pre-generated goes
    assert [e.tokens[0] for e in cache.entries.values()] == [0, 3000]
    cache.store(list(range(4000, 4040)), layers(40), priority=1)  # all live: the least recently used goes
    assert [e.tokens[0] for e in cache.entries.values()] == [3000, 4000]


def test_a_newer_prompt_sharing_all_but_an_older_ones_closing_words_supersedes_it():
    """A debater's round-1 prompt is its round-2 prompt but for the closing words: once the newer is stored the
    older is dropped, unless more than SUPERSEDED_WITHIN_TOKENS or over half of it would be lost, or it is a live
    prompt and the newer a pre-generated one."""

    def stored(*prompts):
        cache = PrefixCache(max_bytes=10**6)
        for tokens, priority in prompts:
            cache.store(tokens, layers(len(tokens)), priority)
        return [list(entry.tokens) for entry in cache.entries.values()], cache

    def tail(start, length):
        return list(range(start, start + length))

    transcript = tail(0, 100)
    round_one, round_two = transcript + tail(900, 20), transcript + tail(200, 60) + tail(800, 20)
    left, cache = stored((round_one, 1), (round_two, 1))
    assert left == [round_two]
    assert cache.longest(round_one + [7], most=200)[0] == 100  # what extends round one loses its 20 closing tokens
    assert stored((transcript + tail(2000, SUPERSEDED_WITHIN_TOKENS), 1), (round_two, 1))[0] == [round_two]
    assert len(stored((transcript + tail(3000, SUPERSEDED_WITHIN_TOKENS + 1), 1), (round_two, 1))[0]) == 2
    assert len(stored((transcript[:30] + tail(4000, 40), 1), (round_two, 1))[0]) == 2  # 30 of 70 shared
    assert len(stored((round_one, 1), (round_two, 0))[0]) == 2  # a pre-generated prompt never drops a live one
    assert stored((round_one, 0), (round_two, 1))[0] == [round_two]


def test_the_default_prompts_put_everything_round_specific_at_the_end():
    """A debater's prompt for round 2 extends its prompt for round 1 up to the closing line (prefix reuse)."""

    class Speech:
        def __init__(self, speaker, round, text):
            self.speaker, self.round, self.text, self.addressed_to = speaker, round, text, []

    def prompt(round_number, speeches):
        messages = build_debater_messages(
            system_prompt=DEFAULT_SYSTEM_PROMPT,
            template=DEFAULT_DEBATER_TEMPLATE,
            me="B",
            question="Why?",
            my_answer="Yes",
            opponent_answer="No",
            passage=PARAGRAPH,
            visible_speeches=speeches,
            round_number=round_number,
            rounds=3,
            char_limit=500,
        )
        return "\n".join(m["content"] for m in messages)

    one = prompt(1, [Speech("A", 1, "First.")])
    two = prompt(2, [Speech("A", 1, "First."), Speech("B", 1, "Mine."), Speech("A", 2, "Again.")])
    closing = one.index("This is round 1 of 3.")
    assert two.startswith(one[:closing].rstrip()) and closing > 0.8 * len(one)


def _question_beside_pre_generated_work(make_model_config, make_experiment, tiny_model_dir, judge, *, rounds, slow):
    """A live debate's question asked while ``slow`` pre-generated debates (one round, 200-token speeches) are being
    written, through the worker: the answer, and the pre-generated turns, every one written once."""
    config = make_model_config(tiny_model_dir, max_new_tokens=200)
    live = make_experiment(
        config, mode="live", rounds=rounds, min_rounds=1, num_questions=1, turn_style="sequential", char_limit=60
    )
    busy = make_experiment(config, name="slow", num_questions=slow, rounds=1, char_limit=8000)
    trial = question_while_busy(live, busy, judge)
    answer = Turn.objects.get(trial=trial, round=2, speaker="A")
    slow_turns = list(Turn.objects.filter(trial__experiment=busy))
    assert answer.status == "done" and len(slow_turns) == 2 * slow and {t.status for t in slow_turns} == {"done"}
    assert {t.attempts for t in slow_turns} == {1} and answer.attempts == 1
    assert answer.model_settings["pauses"] == 0
    return answer, slow_turns


def test_a_live_turn_pauses_pre_generated_work_in_a_full_batch(
    make_model_config, make_experiment, tiny_model_dir, judge, settings
):
    """Through the worker: with the batch full of pre-generated speeches, a judge's question is answered
    at once by pausing one of them; every turn is written exactly once and the pause is recorded."""
    settings.GENERATION_BATCH_SIZE = 2
    settings.GENERATION_LIVE_TURNS_BEYOND_BATCH = 0  # no row kept for live turns: pausing is what makes room
    answer, slow_turns = _question_beside_pre_generated_work(
        make_model_config, make_experiment, tiny_model_dir, judge, rounds=3, slow=1
    )
    assert answer.model_settings["batch_size"] == 2
    paused = [t for t in slow_turns if t.model_settings["pauses"]]
    assert len(paused) == 1 and paused[0].model_settings["paused_seconds"] > 0
    assert paused[0].tokens_prefilled == paused[0].tokens_in + 1  # resumed from its kept cache
    assert answer.finished_at < min(t.finished_at for t in slow_turns)


def test_a_live_turn_takes_a_row_kept_for_live_turns_which_pre_generated_turns_never_take(
    make_model_config, make_experiment, tiny_model_dir, judge, settings
):
    """Beside a full batch of pre-generated speeches, a judge's question takes a row beyond the batch (no pause);
    the four pre-generated speeches ready at once never run more than two at a time, the batch."""
    settings.GENERATION_BATCH_SIZE = 2
    settings.GENERATION_LIVE_TURNS_BEYOND_BATCH = 1
    # Two rounds: the question's is the last, so no next round is prefilled ahead (a live trial's prefill ahead
    # may pause a pre-generated row too, by design).
    answer, slow_turns = _question_beside_pre_generated_work(
        make_model_config, make_experiment, tiny_model_dir, judge, rounds=2, slow=2
    )
    assert answer.model_settings["batch_size"] == 3
    assert not any(t.model_settings["pauses"] for t in slow_turns)
    at_once = [
        sum(o.claimed_at < t.finished_at and o.finished_at > t.claimed_at for o in slow_turns) for t in slow_turns
    ]
    assert max(at_once) == 2  # itself and one more: the batch, never the live turn's row
    assert max(t.model_settings["batch_size"] for t in slow_turns) == 3  # beside the live turn


@pytest.mark.parametrize("questions, asks_for_help", [(1, False), (2, True)])
def test_a_worker_asks_for_help_when_pre_generated_turns_wait_for_its_batch(
    make_model_config, make_experiment, tiny_model_dir, settings, questions, asks_for_help
):
    """The rows kept for live turns are no room for pre-generated ones: four speeches ready for a batch of two
    ask for another worker (once), two do not."""
    from generation.worker import generate_ready_turns
    from judging.services import experiment_launch

    settings.GENERATION_BATCH_SIZE = 2
    settings.GENERATION_LIVE_TURNS_BEYOND_BATCH = 8
    experiment = make_experiment(make_model_config(tiny_model_dir, max_new_tokens=4), num_questions=questions, rounds=1)
    experiment_launch(experiment=experiment)
    asked = []
    assert generate_ready_turns(max_seconds=math.inf, on_backlog=lambda: asked.append(1)) == 2 * questions
    assert asked == ([1] if asks_for_help else [])


@pytest.mark.parametrize(
    "name, value", [("DEBATE_GENERATION_LIVE_TURNS_BEYOND_BATCH", "-1"), ("DEBATE_GENERATION_BATCH_SIZE", "0")]
)
def test_a_batch_with_no_room_is_refused_at_start(name, value):
    from tests.security.test_secure_settings import manage

    result = manage(["check"], {"DJANGO_SECRET_KEY": "t", name: value})
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and name in result.stderr


def _round_two_after_a_question(config, experiment, judge):
    """Launch a live debate, write round 1, ask a question: round 2's two turns as written."""
    from generation.worker import generate_batch
    from judging.models import Trial
    from judging.services import experiment_launch, live_move, trial_open

    experiment_launch(experiment=experiment)
    trial = Trial.objects.get(experiment=experiment)
    trial_open(trial=trial)
    while generate_batch(experiment.pk):  # round 1, and the prefills of round 2 while the judge reads
        pass
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="Which line of the passage says so?")
    while generate_batch(experiment.pk):
        pass
    return list(Turn.objects.filter(trial=trial, round=2).order_by("speaker"))


def test_a_live_debates_next_round_is_prefilled_while_the_judge_reads(
    make_model_config, make_experiment, tiny_model_dir, judge, other_judge
):
    """After a live round, the worker prefills each debater's next prompt (as it would be without a question);
    after the judge's question only the question and the round's closing line are left to prefill. Without
    it the new round prefills the speeches of the round before too (their prompts extend round 1's only)."""
    from generation.backends import backend_for
    from generation.session import GenerationSession

    config = make_model_config(tiny_model_dir, max_new_tokens=120)
    options = dict(mode="live", rounds=3, num_questions=1, turn_style="simultaneous", char_limit=600)
    handed_out, take_ahead = [], GenerationSession._take_ahead

    def recorded(session, rows):
        taken = take_ahead(session, rows)
        handed_out.extend(request for _, request in taken)
        return taken

    with mock.patch.object(GenerationSession, "_take_ahead", recorded):
        ahead = _round_two_after_a_question(config, make_experiment(config, name="ahead", **options), judge)
    assert {t.status for t in ahead} == {"done"} and len(ahead) == 2
    # Marked as prefills ahead of time: after every live turn, holding no row while they wait.
    assert len(handed_out) >= 2 and all(r.ahead and r.priority == 1 and r.max_new_tokens == 1 for r in handed_out)
    backend_for(config).prefix_cache.clear()  # nothing of the first debate's prompts is reused by the second
    with mock.patch.object(GenerationSession, "_prefill_next_round", lambda self, trial: None):
        behind = make_experiment(config, name="behind", judges=[other_judge], **options)
        behind = _round_two_after_a_question(config, behind, other_judge)
    assert backend_for(config).keeps_prompt_caches
    for with_ahead, without in zip(ahead, behind):
        # The question and the closing line: a few dozen tokens, whatever the transcript's length.
        assert with_ahead.tokens_prefilled <= 60 < with_ahead.tokens_in
        # Without: round 1's two speeches as well (each at least some tokens long).
        assert without.tokens_prefilled > with_ahead.tokens_prefilled + 20


def test_only_a_backend_whose_prompt_caches_outlive_a_request_is_asked_to_prefill_ahead(tiny_model_dir):
    """A request no turn needs is worth sending only where its cache is kept: the continuous path with a prefix
    cache, on a loaded model it supports (not padded batches, not before the model is loaded)."""
    from inference.transformers_backend import TransformersBackend

    def backend(**options):
        settings = {"cache_dir": tiny_model_dir, "device": "cpu", "prefix_cache_bytes": 2**20} | options
        return TransformersBackend(str(tiny_model_dir), **settings)

    unloaded = backend()
    assert not unloaded.keeps_prompt_caches
    unloaded._load()
    assert unloaded.keeps_prompt_caches
    for options in ({"continuous": False}, {"prefix_cache_bytes": 0}):
        padded = backend(**options)
        padded._load()
        assert not padded.keeps_prompt_caches
