#!/usr/bin/env python
"""Decode speed against the memory-bandwidth ceiling, the scheduler's latencies, and recommended defaults.

    python benchmarks/gpu_generation.py --out results.json          # on a GPU machine (bf16, real shapes)
    python benchmarks/gpu_generation.py --tiny --device cpu          # the CPU path (tests run this)

Models are built from real configurations with random weights (speed does not
depend on weight values, and nothing is downloaded): SmolLM2-135M and
Llama-3-8B shapes. Prompts are random token ids of --prompt-tokens; exactly
--new-tokens are generated (forced). For each shape it prints and records:
- the measured device copy bandwidth and the ceiling it implies for one turn
  (weights read once per decoding step: bandwidth / weight bytes);
- one turn's decode tokens/s, plain generate() and the platform's path with the
  static KV cache (inference.transformers_backend.speed_options, as a
  worker with DEBATE_GENERATION_STATIC_CACHE=auto runs it), each as a fraction of the ceiling;
- aggregate tokens/s at each --concurrency (one padded batch), plain and platform;
- the same through continuous batching (inference/continuous.py, what a worker runs
  by default): one turn, and 1, --batch-sizes and --concurrency turns submitted together (tokens/s, and on a GPU
  the most device memory each run held beyond the model: the batch's cache with its spare room, inference/kv_cache.py).
Then the scheduler, driven through ContinuousBatcher's own steps with the shipped settings (SHIPPED
below; a "live" request has priority 1, as a turn a judge waits on):
- pre-emption: a live request's first-token time with nothing running (idle), and beside a full batch
  of --busy-rows pre-generated rows, with priority (it pauses one row) and without (priority 0: it waits
  for a row to free up); rows paused, tokens prefilled again on resume, and the busy rows' aggregate
  tokens/s with and without the interruption;
- chunked prefill: a live request arriving as a chunk of a --long-prompt-tokens prompt starts (the
  chunk holding the prompt's middle), beside running rows: its first-token time for each of
  --chunk-tokens and for the whole prompt in one prefill, and the long prompt's own first-token time;
- prefix reuse: a --prompt-tokens prompt, then one extending it by a quarter: the second's first-token
  time and tokens prefilled with the prefix cache and without; the cache's bytes per token;
- next rounds at once: a full batch of debaters' cached rounds extended together (judges asking at once):
  first-token median and largest, grouped as shipped and one by one in arrival order;
- the long lane: a live request beside a decoding row of a --long-prompt-tokens prompt and the batch's other
  pre-generated rows: its first-token time and time between tokens, idle, in one batch and with the long prompt
  in a lane of its own (inference/lanes.py); and that pre-generated work alone, tokens/s each way;
- recommended defaults, each with the figure it rests on: DEBATE_GENERATION_BATCH_SIZE (where aggregate
  continuous tokens/s stops growing by 10%), DEBATE_GENERATION_PREFILL_CHUNK_TOKENS (the largest chunk
  keeping live first words within 2x idle), DEBATE_GENERATION_PREFIX_CACHE_MB (memory left after the
  model and a full batch, bounded by what a full batch's debaters can reuse), DEBATE_GENERATION_STATIC_CACHE
  (auto only where it beat plain generate() by 20% everywhere), DEBATE_GENERATION_LONG_LANE (1 where one batch
  slows live requests beside a long row beyond 2x idle and the lanes do better; else 0 only where one batch runs
  the mixed pre-generated work 10% faster), and whether pre-emption kept live first words within 2x idle.
Issue 5 targets (GPU): one 8B turn >= 50% of the ceiling; 32 turns >= 2x plain padded generate().
Issue 12 target: a live turn's first words within 2x idle beside a full batch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {
    "smollm2-135m": dict(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
    ),
    "llama-3-8b": dict(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        tie_word_embeddings=False,
        max_position_embeddings=8192,
        rope_theta=500000.0,
    ),
}
TINY = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
)


# The defaults debate_platform/settings.py ships (tests/benchmarks checks they agree): the scheduler figures are
# measured with them, as a worker runs.
SHIPPED_BATCH_SIZE = 8  # DEBATE_GENERATION_BATCH_SIZE
SHIPPED_LIVE_TURNS_BEYOND_BATCH = 8  # DEBATE_GENERATION_LIVE_TURNS_BEYOND_BATCH
SHIPPED_PREFILL_TOKENS = 2048  # DEBATE_GENERATION_PREFILL_TOKENS
SHIPPED_CHUNK_TOKENS = 512  # DEBATE_GENERATION_PREFILL_CHUNK_TOKENS
SHIPPED_PREFIX_CACHE_MB = 1024  # DEBATE_GENERATION_PREFIX_CACHE_MB
SHIPPED_MODELS_PER_DEVICE = 3  # DEBATE_MODELS_PER_DEVICE

# Pre-emption: the live request (LIVE_TOKENS) arrives once every busy row runs and the batch has decoded
# BUSY_TOKENS_BEFORE_LIVE more steps; the busy rows write enough to run until then, through the live request,
# and BUSY_TOKENS_AFTER_LIVE more (so a paused row still has tokens to write on resuming).
BUSY_TOKENS_BEFORE_LIVE, LIVE_TOKENS, BUSY_TOKENS_AFTER_LIVE = 8, 8, 16
# Next rounds at once: their prompts and lengths are drawn with this seed, the same for both policies.
NEXT_ROUNDS_SEED = 12
# Chunked prefill: the long prompt (a passage near the 8k context, as docs/benchmarks.md's long-passage runs
# truncate to) and the chunk sizes tried.
LONG_PROMPT_TOKENS = 7000
CHUNK_TOKENS = (256, 512, 1024, 2048)
# A warm-up run of the continuous batcher writes this many tokens (enough to size the memory pool).
WARM_UP_TOKENS = 8
# The recommendations' thresholds: the issue's target for live first words, the growth a larger batch must
# bring, the margin by which the static cache must beat plain generate(), and the prefix cache's rounding.
LIVE_TARGET_VS_IDLE = 2.0
GROWTH_THAT_PAYS = 1.10
STATIC_MARGIN = 1.2
PREFIX_CACHE_STEP_MB = 64


def copy_bandwidth(torch, device: str, megabytes: int) -> float:
    """Bytes per second moved by a device-to-device copy (read + write)."""
    n = megabytes * 2**20 // 2
    src = torch.empty(n, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    synchronize(torch, device)
    repeats = 10
    started = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    synchronize(torch, device)
    return 2 * src.numel() * src.element_size() * repeats / (time.perf_counter() - started)


def synchronize(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_generate(torch, model, device, batch: int, prompt_tokens: int, new_tokens: int, options: dict) -> float:
    """Tokens per second for one padded batch of random prompts, after a warm-up call."""
    ids = torch.randint(10, model.config.vocab_size - 10, (batch, prompt_tokens), device=device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, **options)
    with torch.inference_mode():
        model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)  # warm-up (and compile, if any)
        synchronize(torch, device)
        started = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        synchronize(torch, device)
    generated = (out.shape[1] - prompt_tokens) * batch
    return generated / (time.perf_counter() - started)


def forced_request(tokens: int, priority: int = 0):
    """A greedy request for exactly ``tokens`` new tokens."""
    from inference.base import GenerationRequest

    return GenerationRequest(
        messages=[], max_new_tokens=tokens, min_new_tokens=tokens, temperature=0.0, top_p=1.0, priority=priority
    )


def random_prompt(torch, model, tokens: int) -> list[int]:
    return torch.randint(10, model.config.vocab_size - 10, (tokens,)).tolist()


def new_batcher(
    model, device, max_rows: int, *, prefill_tokens=SHIPPED_PREFILL_TOKENS, chunk_tokens=None, cached=False
):
    """A ContinuousBatcher as a worker builds one with the shipped settings (a prefix cache if ``cached``)."""
    from inference.continuous import ContinuousBatcher
    from inference.prefix_cache import PrefixCache

    return ContinuousBatcher(
        model,
        device,
        stop_ids={model.config.eos_token_id},
        pad_token_id=0,
        max_rows=max_rows,
        decode=lambda ids: "",
        prefill_tokens=prefill_tokens,
        chunk_tokens=chunk_tokens or SHIPPED_CHUNK_TOKENS,
        prefix_cache=PrefixCache(SHIPPED_PREFIX_CACHE_MB * 2**20) if cached else None,
    )


def run_until(batcher, keys: set) -> dict:
    """Step ``batcher`` until the requests ``keys`` have finished; every result so far, by key."""
    results = {}
    while not keys <= results.keys():
        if batcher.idle:
            raise RuntimeError(f"the batcher ran empty before {sorted(map(str, keys - results.keys()))} finished")
        results.update(batcher.step())
    return results


def timed_continuous(torch, model, device, batch: int, prompt_tokens: int, new_tokens: int) -> tuple[float, int | None]:
    """Tokens per second for ``batch`` random prompts through the continuous batcher, after a short warm-up
    run of the same prompts (it sizes the device's memory pool; eager kernels need no compiling per shape); and on
    a GPU the most device memory the timed run held beyond what was allocated before it (the batch's cache, its
    spare room and the activations), None on the CPU."""
    prompts = [random_prompt(torch, model, prompt_tokens) for _ in range(batch)]

    def generate(tokens: int) -> int:
        batcher = new_batcher(model, device, batch)
        for i, prompt in enumerate(prompts):
            batcher.submit(i, forced_request(tokens), prompt)
        return sum(result.tokens_out for result in run_until(batcher, set(range(batch))).values())

    generate(min(new_tokens, WARM_UP_TOKENS))
    synchronize(torch, device)
    cuda = device.startswith("cuda")
    if cuda:
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    generated = generate(new_tokens)
    synchronize(torch, device)
    seconds = time.perf_counter() - started
    return generated / seconds, torch.cuda.max_memory_allocated(device) - before if cuda else None


def live_first_token_idle(torch, model, device, prompt_tokens: int) -> float:
    """Seconds from a live request's submission to its first token, with nothing else running."""
    batcher = new_batcher(model, device, SHIPPED_BATCH_SIZE)
    synchronize(torch, device)
    batcher.submit("live", forced_request(1, priority=1), random_prompt(torch, model, prompt_tokens))
    return run_until(batcher, {"live"})["live"].ttft_seconds


def preemption(torch, model, device, busy_rows: int, prompt_tokens: int, priority: int) -> dict:
    """A live request (of ``priority``) submitted while ``busy_rows`` pre-generated rows fill the batch and
    decode: its first-token time, the rows paused for it, the tokens they prefilled again on resuming, and the
    busy rows' aggregate tokens/s from their submission to their end."""
    batcher = new_batcher(model, device, busy_rows, cached=True)
    busy = {("busy", i) for i in range(busy_rows)}
    # The first rows to join write a token per decoding step while the others are prefilled, a group at a time.
    groups = -(-busy_rows // (SHIPPED_PREFILL_TOKENS // prompt_tokens))
    busy_tokens = groups + BUSY_TOKENS_BEFORE_LIVE + LIVE_TOKENS + BUSY_TOKENS_AFTER_LIVE
    for key in sorted(busy):
        batcher.submit(key, forced_request(busy_tokens), random_prompt(torch, model, prompt_tokens))
    while batcher.waiting:  # until every busy row runs
        batcher.step()
    if len(batcher.rows) != busy_rows:
        raise RuntimeError(f"{busy_rows - len(batcher.rows)} busy row(s) finished before the batch was full")
    for _ in range(BUSY_TOKENS_BEFORE_LIVE):
        batcher.step()
    synchronize(torch, device)
    batcher.submit("live", forced_request(LIVE_TOKENS, priority), random_prompt(torch, model, prompt_tokens))
    results = run_until(batcher, busy | {"live"})
    rows = [results[key] for key in busy]
    return {
        "busy_tokens": busy_tokens,
        "live_tokens": LIVE_TOKENS,
        "live_ttft_seconds": results["live"].ttft_seconds,
        "paused_rows": sum(1 for row in rows if row.pauses),
        "paused_seconds": sum(row.paused_seconds for row in rows),
        "tokens_reprefilled": sum(row.tokens_prefilled for row in rows) - busy_rows * prompt_tokens,
        "busy_tokens_per_s": sum(row.tokens_out for row in rows) / max(row.seconds for row in rows),
    }


def chunked_prefill(torch, model, device, chunk_tokens: int | None, long_tokens: int, prompt_tokens: int) -> dict:
    """A live request arriving just as the chunk holding the middle of a ``long_tokens`` prompt starts, beside
    running rows (the shipped batch less the long prompt's row and the live one's): its first-token time
    (from its arrival) and the long prompt's own. ``chunk_tokens`` None: the whole prompt in one prefill."""
    chunk = chunk_tokens or long_tokens
    # Prompts longer than prefill_tokens are chunked: the shipped value, lowered where the long prompt is
    # shorter (--tiny), raised for a chunk size above it, and the prompt's length for the whole prompt.
    prefill_tokens = max(chunk, min(SHIPPED_PREFILL_TOKENS, long_tokens - 1))
    batcher = new_batcher(model, device, SHIPPED_BATCH_SIZE, prefill_tokens=prefill_tokens, chunk_tokens=chunk)
    running = SHIPPED_BATCH_SIZE - 2
    for i in range(running):  # they write on (never finish) while the long prompt is prefilled
        tokens = model.config.max_position_embeddings - prompt_tokens - 1
        batcher.submit(("busy", i), forced_request(tokens), random_prompt(torch, model, prompt_tokens))
    while batcher.waiting:
        batcher.step()
    batcher.submit("long", forced_request(1), random_prompt(torch, model, long_tokens))
    chunks_before, middle_chunk = batcher.prefill_steps, (long_tokens // 2) // chunk
    results = {}
    while batcher.prefill_steps - chunks_before <= middle_chunk:  # until a step has run the middle chunk
        if "long" in results:
            raise RuntimeError(f"the {long_tokens}-token prompt was prefilled before its chunk {middle_chunk + 1}")
        synchronize(torch, device)
        step_started = time.perf_counter()
        results.update(batcher.step())
    synchronize(torch, device)
    submitted = time.perf_counter()
    batcher.submit("live", forced_request(1, priority=1), random_prompt(torch, model, prompt_tokens))
    results.update(run_until(batcher, {"live", "long"} - results.keys()))
    return {
        "live_ttft_seconds": results["live"].ttft_seconds + (submitted - step_started),
        "long_ttft_seconds": results["long"].ttft_seconds,
    }


def prefix_reuse(torch, model, device, prompt_tokens: int, cached: bool) -> dict:
    """A prompt, then one extending it by a quarter of new tokens (the next round of a debate): the second's
    first-token time and tokens prefilled, with a prefix cache or without; the cache's bytes per token."""
    batcher = new_batcher(model, device, SHIPPED_BATCH_SIZE, cached=cached)
    prompt = random_prompt(torch, model, prompt_tokens)
    batcher.submit("first", forced_request(1), prompt)
    run_until(batcher, {"first"})
    kv_bytes_per_token = batcher.prefix_cache.nbytes / prompt_tokens if cached else None  # holds the first prompt
    extended = prompt + random_prompt(torch, model, max(1, prompt_tokens // 4))
    synchronize(torch, device)
    batcher.submit("extended", forced_request(1), extended)
    result = run_until(batcher, {"extended"})["extended"]
    return {
        "ttft_seconds": result.ttft_seconds,
        "tokens_prefilled": result.tokens_prefilled,
        "kv_bytes_per_token": kv_bytes_per_token,
    }


def rows_of(runner) -> list:
    """The running rows of a batcher, or of both lanes of a ``Lanes``."""
    lanes = (runner.main, runner.long) if hasattr(runner, "long") else (runner,)
    return [row for lane in lanes for row in lane.rows]


def long_lane(torch, model, device, way: str, long_tokens: int, prompt_tokens: int, new_tokens: int) -> dict:
    """A live request (``prompt_tokens``, LIVE_TOKENS tokens) beside a decoding pre-generated row of a
    ``long_tokens`` prompt and the shipped batch's other pre-generated rows, ``way``: "one_batch" (every row in one
    ContinuousBatcher, DEBATE_GENERATION_LONG_LANE=0), "lanes" (the long prompt in a lane of its own, as shipped) or
    "idle" (the live request alone). Its first-token time and the time between its tokens; then, apart, the
    pre-generated work mixing the long prompt and the short ones (each writing ``new_tokens``): tokens/s from their
    submission to the last one's end."""
    from inference.lanes import Lanes

    prefill_tokens = min(SHIPPED_PREFILL_TOKENS, long_tokens - 1)  # the long prompt is chunked: the long lane's

    def batcher():
        return new_batcher(model, device, SHIPPED_BATCH_SIZE, prefill_tokens=prefill_tokens)

    def runner():
        return Lanes(batcher(), batcher(), long_tokens=prefill_tokens) if way == "lanes" else batcher()

    short_rows = SHIPPED_BATCH_SIZE - 2  # with the long row and the live one: a full batch
    live = runner()
    if way != "idle":  # they write on (never finish) through the live request
        context = model.config.max_position_embeddings
        for i in range(short_rows):
            live.submit(
                ("busy", i), forced_request(context - prompt_tokens - 1), random_prompt(torch, model, prompt_tokens)
            )
        live.submit("long", forced_request(context - long_tokens - 1), random_prompt(torch, model, long_tokens))
        while not any(row.key == "long" and len(row.tokens) >= 2 for row in rows_of(live)):
            if "long" in live.step():
                raise RuntimeError(f"the {long_tokens}-token prompt's row finished before the live request came")
    synchronize(torch, device)
    live.submit("live", forced_request(LIVE_TOKENS, priority=1), random_prompt(torch, model, prompt_tokens))
    finished = run_until(live, {"live"})
    if "long" in finished:  # the figure would be of the live request partly alone
        raise RuntimeError(f"the {long_tokens}-token prompt's row finished before the live request did")
    result = finished["live"]
    figures = {
        "live_ttft_seconds": result.ttft_seconds,
        "live_token_seconds": (result.seconds - result.ttft_seconds) / (LIVE_TOKENS - 1),
    }
    if way != "idle":
        mixed = runner()
        keys = {("busy", i) for i in range(short_rows)} | {"long"}
        synchronize(torch, device)
        started = time.perf_counter()
        for key in sorted(keys, key=str):
            tokens = long_tokens if key == "long" else prompt_tokens
            mixed.submit(key, forced_request(new_tokens), random_prompt(torch, model, tokens))
        run_until(mixed, keys)
        synchronize(torch, device)
        figures["pre_generated_tokens_per_s"] = len(keys) * new_tokens / (time.perf_counter() - started)
    return figures


def one_by_one(batcher) -> None:
    """Make ``batcher`` prefill rows extending cached prefixes one per step, in arrival order (the policy before
    they were grouped): for comparison only."""
    batcher._extensions = lambda candidates, room: next(row for row in candidates if batcher._extends_cached(row))


def next_rounds_at_once(torch, model, device, debates: int, prompt_tokens: int, grouped: bool) -> dict:
    """``debates`` debaters' next rounds arriving at once (judges asking together), each extending its cached
    round of ``prompt_tokens`` by 10-40% new tokens: from their arrival, the median and largest first-token time
    and the prefill steps, grouped as shipped (``ContinuousBatcher._extensions``: together, fewest new tokens
    first) or not (``one_by_one``)."""
    batcher = new_batcher(model, device, debates, cached=True)
    if not grouped:
        one_by_one(batcher)
    torch.manual_seed(NEXT_ROUNDS_SEED)  # the same rounds for both policies
    first = {i: random_prompt(torch, model, prompt_tokens) for i in range(debates)}
    lengths = torch.randint(max(1, prompt_tokens // 10), max(2, prompt_tokens * 2 // 5), (debates,)).tolist()
    added = {i: random_prompt(torch, model, lengths[i]) for i in range(debates)}
    for key, prompt in first.items():
        batcher.submit(key, forced_request(1, priority=1), prompt)
    run_until(batcher, set(first))
    steps = batcher.prefill_steps
    synchronize(torch, device)
    for key, prompt in first.items():  # each writes a few tokens: decoding steps come between prefills, as live
        batcher.submit(key, forced_request(LIVE_TOKENS, priority=1), prompt + added[key])
    times = [result.ttft_seconds for result in run_until(batcher, set(first)).values()]
    return {
        "median_ttft_seconds": statistics.median(times),
        "max_ttft_seconds": max(times),
        "prefill_steps": batcher.prefill_steps - steps,
    }


def median_of(repeats: int, measure) -> float | dict:
    """The median of ``repeats`` runs of ``measure()`` (a number, or a dict of numbers: per key), after a warm-up."""
    measure()
    runs = [measure() for _ in range(repeats)]
    if isinstance(runs[0], dict):
        return {
            key: statistics.median(run[key] for run in runs) if runs[0][key] is not None else None for key in runs[0]
        }
    return statistics.median(runs)


def scheduler_figures(torch, model, device, args) -> dict:
    """The pre-emption, chunked-prefill and prefix-reuse figures of one shape (see the module docstring)."""
    idle = median_of(args.repeats, lambda: live_first_token_idle(torch, model, device, args.prompt_tokens))
    figures = {"live_idle_ttft_seconds": idle, "preemption": {}}
    preemption(torch, model, device, min(args.busy_rows), args.prompt_tokens, 1)  # warm-up (pausing, resuming)
    for busy_rows in args.busy_rows:
        cases = {}
        for label, priority in (("priority", 1), ("waiting", 0)):
            case = preemption(torch, model, device, busy_rows, args.prompt_tokens, priority)
            case["live_ttft_vs_idle"] = case["live_ttft_seconds"] / idle
            cases[label] = case
        figures["preemption"][str(busy_rows)] = cases
    long_tokens = args.long_prompt_tokens
    if long_tokens + 2 * LIVE_TOKENS > model.config.max_position_embeddings:  # the long row writes on beside a live one
        raise SystemExit(
            f"--long-prompt-tokens {long_tokens} leaves too little of this shape's context "
            f"({model.config.max_position_embeddings} positions) for {2 * LIVE_TOKENS} tokens more"
        )
    by_chunk = {}
    chunked_prefill(torch, model, device, args.chunk_tokens[0], long_tokens, args.prompt_tokens)  # warm-up
    for chunk in [*args.chunk_tokens, None]:
        case = chunked_prefill(torch, model, device, chunk, long_tokens, args.prompt_tokens)
        case["live_ttft_vs_idle"] = case["live_ttft_seconds"] / idle
        by_chunk[str(chunk) if chunk else "whole"] = case
    figures["chunked_prefill"] = {
        "long_prompt_tokens": long_tokens,
        "running_rows": SHIPPED_BATCH_SIZE - 2,
        "by_chunk_tokens": by_chunk,
    }
    figures["long_lane"] = {
        "long_prompt_tokens": long_tokens,
        "short_rows": SHIPPED_BATCH_SIZE - 2,
        **{
            way: median_of(
                args.repeats,
                lambda way=way: long_lane(torch, model, device, way, long_tokens, args.prompt_tokens, args.new_tokens),
            )
            for way in ("idle", "one_batch", "lanes")
        },
    }
    with_cache = median_of(args.repeats, lambda: prefix_reuse(torch, model, device, args.prompt_tokens, True))
    without = median_of(args.repeats, lambda: prefix_reuse(torch, model, device, args.prompt_tokens, False))
    figures["next_rounds_at_once"] = {
        "debates": SHIPPED_BATCH_SIZE,
        "prompt_tokens": args.prompt_tokens,
        **{
            policy: median_of(
                args.repeats,
                lambda grouped=grouped: next_rounds_at_once(
                    torch, model, device, SHIPPED_BATCH_SIZE, args.prompt_tokens, grouped
                ),
            )
            for policy, grouped in (("grouped", True), ("one_by_one", False))
        },
    }
    figures["prefix_reuse"] = {
        "prompt_tokens": args.prompt_tokens,
        "extended_prompt_tokens": args.prompt_tokens + max(1, args.prompt_tokens // 4),
        "kv_bytes_per_token": with_cache.pop("kv_bytes_per_token"),
        "with_cache": with_cache,
        "without_cache": {key: value for key, value in without.items() if key != "kv_bytes_per_token"},
    }
    return figures


def device_memory_bytes(torch, device: str) -> int:
    """The device's whole memory (a worker is the only process on its GPU); the machine's RAM on the CPU."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def recommend(row: dict, *, static_measured: bool, context_tokens: int, memory_bytes: int) -> dict:
    """Recommended defaults for one shape, each {"value", "because"}: the figure it rests on."""
    recommendation = {}

    throughput = {int(size): tokens_per_s for size, tokens_per_s in row["continuous_by_batch_size"].items()}
    sizes = sorted(throughput)
    # The smallest batch that no larger one beats by GROWTH_THAT_PAYS (not the first step that fails to: one
    # noisy or flat step does not hide a later gain).
    for size in sizes[:-1]:
        best = max((larger for larger in sizes if larger > size), key=throughput.get)
        if throughput[best] < GROWTH_THAT_PAYS * throughput[size]:
            batch_size = size
            because = (
                f"continuous {throughput[size]:,.0f} tok/s at {size} rows; the most at any larger size, "
                f"{throughput[best]:,.0f} at {best}, is {throughput[best] / throughput[size] - 1:+.0%} "
                f"(under +{GROWTH_THAT_PAYS - 1:.0%})"
            )
            break
    else:
        batch_size = sizes[-1]
        because = (
            f"continuous tok/s grew by {GROWTH_THAT_PAYS - 1:.0%} or more up to the largest size measured, "
            f"{sizes[-1]} rows ({throughput[sizes[-1]]:,.0f} tok/s): measure larger batches"
        )
    recommendation["DEBATE_GENERATION_BATCH_SIZE"] = {"value": batch_size, "because": because}

    idle = row["live_idle_ttft_seconds"]
    chunked = row["chunked_prefill"]["by_chunk_tokens"]
    candidates = sorted(int(chunk) for chunk in chunked if chunk != "whole")
    within = [chunk for chunk in candidates if chunked[str(chunk)]["live_ttft_vs_idle"] <= LIVE_TARGET_VS_IDLE]
    whole = f"whole prompt in one prefill {chunked['whole']['live_ttft_vs_idle']:.1f}x"
    if within:
        chunk = max(within)
        because = (
            f"live first token {chunked[str(chunk)]['live_ttft_vs_idle']:.1f}x idle ({idle * 1000:.0f} ms) with "
            f"{chunk}-token chunks, the largest within {LIVE_TARGET_VS_IDLE:g}x; "
        )
    else:
        chunk = candidates[0]
        because = (
            f"no chunk size kept live first words within {LIVE_TARGET_VS_IDLE:g}x idle ({idle * 1000:.0f} ms): "
            f"the smallest, {chunk}, {chunked[str(chunk)]['live_ttft_vs_idle']:.1f}x; "
        )
    recommendation["DEBATE_GENERATION_PREFILL_CHUNK_TOKENS"] = {"value": chunk, "because": because + whole}

    # The prefix cache gets what is left of the device after the weights, a full batch and the rows kept for live
    # turns at the full context and 10% for activations, shared by the models a worker keeps loaded (each has a
    # cache of its own); more than every debater of a full batch can reuse (two contexts per row) would sit unused.
    kv = row["prefix_reuse"]["kv_bytes_per_token"]
    batch_kv = (batch_size + SHIPPED_LIVE_TURNS_BEYOND_BATCH) * context_tokens * kv
    left = memory_bytes - row["weight_bytes"] - batch_kv - memory_bytes // 10
    share = max(0, left) // SHIPPED_MODELS_PER_DEVICE
    useful = 2 * batch_size * context_tokens * kv
    megabytes = max(
        PREFIX_CACHE_STEP_MB, int(min(share, useful) // 2**20) // PREFIX_CACHE_STEP_MB * PREFIX_CACHE_STEP_MB
    )
    held = int(megabytes * 2**20 // kv)
    recommendation["DEBATE_GENERATION_PREFIX_CACHE_MB"] = {
        "value": megabytes,
        "tokens_held": held,
        "because": (
            f"holds {held:,} tokens at {kv / 1024:,.1f} KB a token ({held / context_tokens:.1f} full "
            f"{context_tokens}-token contexts); {memory_bytes / 1e9:.1f} GB less the weights "
            f"({row['weight_bytes'] / 1e9:.1f} GB), a full batch at the full context ({batch_kv / 1e9:.1f} GB) "
            f"and 10% leave {max(0, left) / 1e9:.1f} GB for {SHIPPED_MODELS_PER_DEVICE} models' caches; "
            f"a full batch's debaters reuse at most {useful / 1e9:.1f} GB"
        ),
    }

    if static_measured:
        ratios = {"1 turn": row["platform_single_tokens_per_s"] / row["plain_single_tokens_per_s"]}
        for key, value in row.items():
            if key.startswith("platform_") and key.endswith("_concurrent_tokens_per_s"):
                c = key.split("_")[1]
                ratios[f"{c} turns"] = value / row[f"plain_{c}_concurrent_tokens_per_s"]
        pays = min(ratios.values()) >= STATIC_MARGIN
        because = (
            "static cache vs plain generate(): "
            + ", ".join(f"{label} {ratio:.2f}x" for label, ratio in ratios.items())
            + f" ({'' if pays else 'not '}{STATIC_MARGIN:g}x or more everywhere; it serves padded batches only, "
            "DEBATE_GENERATION_CONTINUOUS=0)"
        )
        recommendation["DEBATE_GENERATION_STATIC_CACHE"] = {"value": "auto" if pays else "off", "because": because}
    else:
        recommendation["DEBATE_GENERATION_STATIC_CACHE"] = {
            "value": "off",
            "because": "not measured: the platform path ran without a static cache on this device (--static-cache)",
        }

    recommendation["DEBATE_GENERATION_LONG_LANE"] = recommend_long_lane(row["long_lane"])

    worst = max((cases["priority"]["live_ttft_vs_idle"], int(rows)) for rows, cases in row["preemption"].items())
    recommendation["preemption_within_2x_idle"] = {
        "value": worst[0] <= LIVE_TARGET_VS_IDLE,
        "because": "live first token with priority beside a full batch: "
        + ", ".join(
            f"{rows} rows {cases['priority']['live_ttft_vs_idle']:.1f}x idle "
            f"(without priority {cases['waiting']['live_ttft_vs_idle']:.1f}x)"
            for rows, cases in row["preemption"].items()
        ),
    }
    return recommendation


def live_slowdown(case: dict, idle: dict) -> float:
    """How much slower a live request ran than idle: the larger of its first-token and between-tokens ratios."""
    return max(
        case["live_ttft_seconds"] / idle["live_ttft_seconds"], case["live_token_seconds"] / idle["live_token_seconds"]
    )


def recommend_long_lane(figures: dict) -> dict:
    """1 (the long lane, as shipped) where one batch slows a live request beside a long row beyond the issue's 2x
    idle and the lanes do better; else whichever runs mixed pre-generated work faster, 1 unless one batch is faster
    by GROWTH_THAT_PAYS (a second forward pass per token is the lanes' cost)."""
    idle, one, lanes = figures["idle"], figures["one_batch"], figures["lanes"]
    one_slowdown, lanes_slowdown = live_slowdown(one, idle), live_slowdown(lanes, idle)
    throughput = lanes["pre_generated_tokens_per_s"] / one["pre_generated_tokens_per_s"]
    facts = (
        f"beside a {figures['long_prompt_tokens']}-token row, a live request ran {one_slowdown:.1f}x idle in one batch "
        f"and {lanes_slowdown:.1f}x with the lanes (the larger of first token and time between tokens); mixed "
        f"pre-generated work ran {throughput:.2f}x one batch's tokens/s with the lanes"
    )
    if one_slowdown > LIVE_TARGET_VS_IDLE and lanes_slowdown < one_slowdown:
        return {"value": 1, "because": f"{facts}: one batch misses {LIVE_TARGET_VS_IDLE:g}x idle, the lanes do better"}
    if throughput * GROWTH_THAT_PAYS < 1:
        live = (
            f"live requests keep within {LIVE_TARGET_VS_IDLE:g}x idle in one batch"
            if one_slowdown <= LIVE_TARGET_VS_IDLE
            else "live requests gain nothing from the lanes"
        )
        return {"value": 0, "because": f"{facts}: {live}, and one batch is {1 / throughput - 1:.0%} faster"}
    return {"value": 1, "because": f"{facts}: one batch is not {GROWTH_THAT_PAYS - 1:.0%} faster"}


def save_partial(args, report: dict) -> None:
    """Write what is measured so far to --out: a run stopped at a time limit keeps its figures."""
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


def run(args) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from inference.transformers_backend import speed_options

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    bandwidth = copy_bandwidth(torch, device, 64 if args.tiny else 1024)
    report = {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "dtype": str(dtype),
        "copy_bandwidth_GBps": bandwidth / 1e9,
        "shapes": {},
    }
    print(f"device {report['device']}, copy bandwidth {bandwidth / 1e9:.0f} GB/s", flush=True)
    platform = speed_options(device, args.static_cache)
    for name in args.shapes:
        shape_started = time.perf_counter()
        config = LlamaConfig(**(TINY if args.tiny else SHAPES[name]))
        with torch.device(device):
            model = LlamaForCausalLM(config).to(dtype).eval()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        ceiling = bandwidth / weight_bytes
        row = {"weight_bytes": weight_bytes, "ceiling_tokens_per_s": ceiling}
        report["shapes"][name] = row  # filled in as measured, and saved after each part (see save_partial)
        for label, options in (("plain", {}), ("platform", platform)):
            single = timed_generate(torch, model, device, 1, args.prompt_tokens, args.new_tokens, options)
            row[f"{label}_single_tokens_per_s"] = single
            row[f"{label}_single_fraction_of_ceiling"] = single / ceiling
            for c in args.concurrency:
                row[f"{label}_{c}_concurrent_tokens_per_s"] = timed_generate(
                    torch, model, device, c, args.prompt_tokens, args.new_tokens, options
                )
        save_partial(args, report)
        timed = {
            size: timed_continuous(torch, model, device, size, args.prompt_tokens, args.new_tokens)
            for size in sorted({1, *args.batch_sizes, *args.concurrency})
        }
        by_batch = {size: tokens_per_s for size, (tokens_per_s, _) in timed.items()}
        row["continuous_by_batch_size"] = {str(size): tokens_per_s for size, tokens_per_s in by_batch.items()}
        row["continuous_peak_bytes_by_batch_size"] = {str(size): peak for size, (_, peak) in timed.items()}
        row["continuous_single_tokens_per_s"] = by_batch[1]
        row["continuous_single_fraction_of_ceiling"] = by_batch[1] / ceiling
        for c in args.concurrency:
            row[f"continuous_{c}_concurrent_tokens_per_s"] = by_batch[c]
        print(
            f"{name}: ceiling {ceiling:,.0f} tok/s; one turn plain {row['plain_single_tokens_per_s']:,.1f} "
            f"({row['plain_single_fraction_of_ceiling']:.0%}), platform {row['platform_single_tokens_per_s']:,.1f} "
            f"({row['platform_single_fraction_of_ceiling']:.0%}); "
            + "; ".join(
                f"{c} turns plain {row[f'plain_{c}_concurrent_tokens_per_s']:,.0f} vs platform "
                f"{row[f'platform_{c}_concurrent_tokens_per_s']:,.0f} tok/s"
                for c in args.concurrency
            ),
            flush=True,
        )
        print(
            f"{name}: continuous batching: one turn {row['continuous_single_tokens_per_s']:,.1f} tok/s "
            f"({row['continuous_single_fraction_of_ceiling']:.0%}); "
            + "; ".join(
                f"{size} turns {tokens_per_s:,.0f} tok/s"
                + ("" if peak is None else f" ({peak / 2**20:,.0f} MiB more than the model at most)")
                for size, (tokens_per_s, peak) in timed.items()
                if size > 1
            ),
            flush=True,
        )
        save_partial(args, report)
        scheduler_started = time.perf_counter()
        row.update(scheduler_figures(torch, model, device, args))
        row["scheduler_seconds"] = time.perf_counter() - scheduler_started
        print_scheduler(name, row)
        row["recommendation"] = recommend(
            row,
            static_measured=bool(platform),
            context_tokens=config.max_position_embeddings,
            memory_bytes=device_memory_bytes(torch, device),
        )
        row["seconds"] = time.perf_counter() - shape_started
        save_partial(args, report)
        print(f"{name}: recommended defaults ({report['device']}, {row['seconds']:.0f} s for this shape):", flush=True)
        for setting, advice in row["recommendation"].items():
            print(f"  {setting}={advice['value']}: {advice['because']}", flush=True)
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return report


def print_scheduler(name: str, row: dict) -> None:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:,.1f} ms"

    print(f"{name}: live first token idle {ms(row['live_idle_ttft_seconds'])}", flush=True)
    for rows, cases in row["preemption"].items():
        priority, waiting = cases["priority"], cases["waiting"]
        print(
            f"{name}: beside {rows} busy rows: live first token with priority {ms(priority['live_ttft_seconds'])} "
            f"({priority['live_ttft_vs_idle']:.1f}x idle; {priority['paused_rows']} row(s) paused "
            f"{ms(priority['paused_seconds'])}, {priority['tokens_reprefilled']} token(s) prefilled again on resume), "
            f"without {ms(waiting['live_ttft_seconds'])} ({waiting['live_ttft_vs_idle']:.1f}x); busy rows "
            f"{priority['busy_tokens_per_s']:,.0f} tok/s interrupted vs {waiting['busy_tokens_per_s']:,.0f}",
            flush=True,
        )
    chunked = row["chunked_prefill"]
    print(
        f"{name}: live first token as a chunk of a {chunked['long_prompt_tokens']}-token prompt starts, beside "
        f"{chunked['running_rows']} rows, by chunk tokens: "
        + "; ".join(
            f"{chunk} {ms(case['live_ttft_seconds'])} ({case['live_ttft_vs_idle']:.1f}x idle; the long prompt's "
            f"own {ms(case['long_ttft_seconds'])})"
            for chunk, case in chunked["by_chunk_tokens"].items()
        ),
        flush=True,
    )
    together = row["next_rounds_at_once"]
    grouped, alone = together["grouped"], together["one_by_one"]
    print(
        f"{name}: {together['debates']} next rounds (of {together['prompt_tokens']}-token cached rounds) at once: "
        f"first token median {ms(grouped['median_ttft_seconds'])}, largest {ms(grouped['max_ttft_seconds'])} "
        f"grouped ({grouped['prefill_steps']:.0f} prefill steps) vs {ms(alone['median_ttft_seconds'])}, "
        f"{ms(alone['max_ttft_seconds'])} one by one ({alone['prefill_steps']:.0f})",
        flush=True,
    )
    lanes = row["long_lane"]
    print(
        f"{name}: a live request beside a decoding {lanes['long_prompt_tokens']}-token row and {lanes['short_rows']} "
        "short ones: first token, then one every "
        + "; ".join(
            f"{way.replace('_', ' ')} {ms(lanes[way]['live_ttft_seconds'])}, {ms(lanes[way]['live_token_seconds'])}"
            for way in ("idle", "one_batch", "lanes")
        )
        + f"; that pre-generated work alone: one batch {lanes['one_batch']['pre_generated_tokens_per_s']:,.0f} tok/s, "
        f"lanes {lanes['lanes']['pre_generated_tokens_per_s']:,.0f}",
        flush=True,
    )
    reuse = row["prefix_reuse"]
    cached, uncached = reuse["with_cache"], reuse["without_cache"]
    print(
        f"{name}: a {reuse['prompt_tokens']}-token prompt extended to {reuse['extended_prompt_tokens']}: first token "
        f"{ms(cached['ttft_seconds'])}, {cached['tokens_prefilled']:.0f} tokens prefilled with the prefix cache vs "
        f"{ms(uncached['ttft_seconds'])}, {uncached['tokens_prefilled']:.0f} without; "
        f"{reuse['kv_bytes_per_token'] / 1024:,.1f} KB a token",
        flush=True,
    )


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[8, 16, 64],
        help="more continuous-batching sizes for the batch-size recommendation (with 1 and --concurrency)",
    )
    parser.add_argument(
        "--busy-rows",
        type=int,
        nargs="+",
        help=f"full batches the live request pre-empts (default: {SHIPPED_BATCH_SIZE}, as shipped, and the first "
        "--concurrency)",
    )
    parser.add_argument(
        "--long-prompt-tokens",
        type=int,
        help=f"the long prompt being prefilled (default {LONG_PROMPT_TOKENS}; tiny: 768)",
    )
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        nargs="+",
        help=f"prefill chunk sizes to try (default {' '.join(map(str, CHUNK_TOKENS))}; tiny: 128 256 512); "
        "the whole prompt in one prefill is always tried",
    )
    parser.add_argument("--repeats", type=int, default=3, help="median of this many for the idle and prefix figures")
    parser.add_argument("--static-cache", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, for a quick check of the script")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.busy_rows is None:
        args.busy_rows = sorted({SHIPPED_BATCH_SIZE, args.concurrency[0]})
    if args.long_prompt_tokens is None:
        args.long_prompt_tokens = 768 if args.tiny else LONG_PROMPT_TOKENS
    if args.chunk_tokens is None:
        args.chunk_tokens = [128, 256, 512] if args.tiny else list(CHUNK_TOKENS)
    args.chunk_tokens = sorted(set(args.chunk_tokens))
    from inference.prefix_cache import MIN_REUSED_TOKENS

    positive = {
        "--prompt-tokens": [args.prompt_tokens],
        "--new-tokens": [args.new_tokens],
        "--concurrency": args.concurrency,
        "--batch-sizes": args.batch_sizes,
        "--chunk-tokens": args.chunk_tokens,
        "--repeats": [args.repeats],
    }
    for option, values in positive.items():
        if min(values) < 1:
            parser.error(f"{option} must be at least 1")
    if not MIN_REUSED_TOKENS <= args.prompt_tokens <= SHIPPED_PREFILL_TOKENS:
        parser.error(
            f"--prompt-tokens must be between {MIN_REUSED_TOKENS} (the shortest prefix the prefix cache keeps) and "
            f"{SHIPPED_PREFILL_TOKENS} (the scheduler figures prefill a prompt in one step, as a judge's question)"
        )
    if min(args.busy_rows) < 2:
        parser.error("--busy-rows must be at least 2 (a full batch that one live request pauses a row of)")
    if max(args.chunk_tokens, default=0) >= args.long_prompt_tokens or args.prompt_tokens >= args.long_prompt_tokens:
        parser.error(
            f"--chunk-tokens and --prompt-tokens must be shorter than the long prompt ({args.long_prompt_tokens} "
            "tokens; the whole prompt in one prefill is always measured)"
        )
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    return run(args)  # which writes --out as it goes (save_partial), the last time with every figure


if __name__ == "__main__":
    main()
