#!/usr/bin/env python
"""A judge's next round beside a long pre-generated prompt: one batch, or the long prompt in a lane of its own.

    .venv/bin/python benchmarks/long_lane.py                      # SmolLM2 on the CPU, 3 rounds of each, alternated
    .venv/bin/python benchmarks/long_lane.py --long-tokens 7500 --rounds 5

The batcher alone (no worker, no database), on SmolLM2-135M-Instruct (the bundled model) in float32: a live round
that extends a cached 700-token round by about 100 tokens (a judge's question) arrives beside a pre-generated row
with a --long-tokens prompt (a long passage, as issue 12's 170,000 characters become once fitted to the 8,192-token
window) that is decoding, or beside such a prompt being prefilled in chunks. Printed for each: the live round's
first and third token after its arrival (the first words a judge sees), the time between its tokens, and how long
a step of the other work took just before it arrived (a question arriving at a random moment waits for the rest of
one), against the same round with nothing else running. "one batch" is every row in one ContinuousBatcher, as
before inference/lanes.py; "lanes" is as shipped. The decoding row's prompt is prefilled once and then reused from
the prefix cache; the chunked one is new each round.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-tokens", type=int, default=7500, help="the long pre-generated prompt (default 7500)")
    parser.add_argument("--rounds", type=int, default=3, help="live rounds measured per way, alternated (default 3)")
    parser.add_argument("--model-dir", default="", help="a transformers model folder (default: the bundled SmolLM2)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    import torch

    from benchmarks.questions_at_once import WORDS, bundled_model, cpu_batcher
    from inference import GenerationRequest
    from inference.lanes import Lanes
    from inference.prefix_cache import PrefixCache

    tokenizer, model = bundled_model(args.model_dir)
    prefix_cache = PrefixCache(4 * 2**30)

    def batcher():  # the worker's shipped settings (README), with a live debate under way
        return cpu_batcher(
            model,
            tokenizer,
            max_rows=16,
            prefix_cache=prefix_cache,
            live_chunk_tokens=64,
            live_seen_at=time.perf_counter(),  # a live debate under way: pre-generated chunks of 64 tokens
        )

    rng = random.Random(1)

    def text(n: int) -> list[int]:
        return tokenizer(" ".join(rng.choice(WORDS) for _ in range(n)))["input_ids"][:n]

    def request(tokens: int, priority: int) -> GenerationRequest:
        return GenerationRequest(
            messages=[], max_new_tokens=tokens, min_new_tokens=tokens, temperature=0.0, top_p=1.0, priority=priority
        )

    def drain(runner) -> None:
        while not runner.idle:
            runner.step()

    long_ids, live_ids = text(args.long_tokens), text(700)
    warm = batcher()  # both prompts into the prefix cache: each round below prefills only its new tokens
    warm.submit("long", request(1, 0), long_ids)
    warm.submit("live", request(1, 1), live_ids)
    drain(warm)

    def live_round(runner, beside: str) -> dict:
        """One live round on a fresh ``runner``, ``beside`` nothing (""), a long row decoding ("decoding") or a long
        prompt being prefilled in chunks ("chunks"); what else runs is left behind with the runner."""
        before = []  # the durations of the last steps before the live round: a question waits for one under way
        if beside == "decoding":
            runner.submit("long", request(10_000, 0), long_ids)
            while not any(row.key == "long" and len(row.tokens) >= 6 for row in rows(runner)):
                started = time.perf_counter()
                runner.step()
                before.append(time.perf_counter() - started)
        elif beside == "chunks":  # a long prompt of its own, not in the prefix cache
            runner.submit("long", request(10_000, 0), text(args.long_tokens))
            for _ in range(30):
                started = time.perf_counter()
                runner.step()
                before.append(time.perf_counter() - started)
        runner.submit("live", request(8, 1), live_ids + text(100))
        arrived, tokens_at, decoding = time.perf_counter(), {}, []
        while len(tokens_at) < 8:
            runner.step()
            live = next((row for row in rows(runner) if row.key == "live"), None)
            if live is None:
                break
            if live.tokens and len(live.tokens) not in tokens_at:
                if tokens_at:  # the steps between two of its tokens, whichever lane they were
                    decoding.append(time.perf_counter() - arrived - max(tokens_at.values()))
                tokens_at[len(live.tokens)] = time.perf_counter() - arrived
        step_before = statistics.median(before[-3:]) if before else 0.0
        return {
            "first": tokens_at[1],
            "third": tokens_at[3],
            "token_to_token": statistics.median(decoding),
            "step_before": step_before,
        }

    def lanes(runner):
        return (runner.main, runner.long) if isinstance(runner, Lanes) else (runner,)

    def rows(runner):
        return [row for lane in lanes(runner) for row in lane.rows]

    def lanes_of_their_own():
        return Lanes(batcher(), batcher(), long_tokens=2048)

    ways = {
        "idle (nothing else)": (batcher, ""),
        "one batch, beside a long row decoding": (batcher, "decoding"),
        "lanes, beside a long row decoding (shipped)": (lanes_of_their_own, "decoding"),
        "one batch, beside a long prompt's chunks": (batcher, "chunks"),
        "lanes, beside a long prompt's chunks (shipped)": (lanes_of_their_own, "chunks"),
    }
    measured = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, (make, beside) in ways.items():
            measured[name].append(live_round(make(), beside))
    figures = {}
    print(f"SmolLM2-135M float32 CPU, torch threads {torch.get_num_threads()}; long prompt {len(long_ids)} tokens")
    keys = ("first", "third", "token_to_token", "step_before")
    for name, rounds in measured.items():
        figures[name] = {key: statistics.median(r[key] for r in rounds) for key in keys}
        f = figures[name]
        print(
            f"{name}: first token {f['first'] * 1000:.0f} ms, third {f['third'] * 1000:.0f} ms, "
            f"then one token every {f['token_to_token'] * 1000:.0f} ms; a step before it came "
            f"{f['step_before'] * 1000:.0f} ms (medians of {len(rounds)})"
        )
    return figures


if __name__ == "__main__":
    main()
