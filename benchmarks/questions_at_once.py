#!/usr/bin/env python
"""Many judges asking at once: how soon each debater's next round gets its first token (issue 12, 16 live trials).

    .venv/bin/python benchmarks/questions_at_once.py                  # the batcher as shipped
    .venv/bin/python benchmarks/questions_at_once.py --one-by-one     # as before: one per step, in arrival order

The batcher alone (no worker, no database), on SmolLM2-135M-Instruct (the bundled model) in float32 on the CPU:
--debates debates each write a first round (--prompt-tokens of transcript, kept in the prefix cache), then all
their next rounds arrive at once, each extending its cached round by a random 60-300 words (a question and the
other side's speech). Printed: the median and largest time from arrival to first token, and the prefill steps.
Shipped: rows extending cached prefixes are prefilled together, the fewest new tokens first, within one chunk's
tokens per step (``ContinuousBatcher._extensions``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# The words random transcripts are drawn from (ordinary English tokens, as a debate's).
WORDS = "the harbour committee argued costs morning plan vote budget river bridge town mayor".split()


def bundled_model(model_dir: str = ""):
    """(tokenizer, model): ``model_dir``, or SmolLM2-135M-Instruct (the bundled model), in float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inference.bundled import SMOLLM2, resolve_bundled

    path = model_dir or str(resolve_bundled(SMOLLM2, ROOT / "var" / "models"))
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def cpu_batcher(model, tokenizer, *, max_rows: int, prefix_cache, **options):
    """A ContinuousBatcher on the CPU with the worker's shipped prefill settings (README), and ``options``."""
    from inference import continuous

    return continuous.ContinuousBatcher(
        model,
        "cpu",
        stop_ids={tokenizer.eos_token_id},
        pad_token_id=tokenizer.eos_token_id,
        max_rows=max_rows,
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        prefill_tokens=2048,
        chunk_tokens=512,
        prefix_cache=prefix_cache,
        **options,
    )


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debates", type=int, default=16, help="next rounds arriving at once (default 16)")
    parser.add_argument("--prompt-tokens", type=int, default=700, help="each cached first round (default 700)")
    parser.add_argument("--new-tokens", type=int, default=24, help="tokens each next round writes (default 24)")
    parser.add_argument("--one-by-one", action="store_true", help="the earlier policy: one per step, arrival order")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model-dir", default="", help="a transformers model folder (default: the bundled SmolLM2)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    from benchmarks.gpu_generation import one_by_one
    from inference import GenerationRequest
    from inference.prefix_cache import PrefixCache

    tokenizer, model = bundled_model(args.model_dir)
    batcher = cpu_batcher(model, tokenizer, max_rows=args.debates, prefix_cache=PrefixCache(4 * 2**30))
    if args.one_by_one:
        one_by_one(batcher)
    rng = random.Random(args.seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    def request(tokens: int) -> GenerationRequest:
        return GenerationRequest(
            messages=[], max_new_tokens=tokens, min_new_tokens=tokens, temperature=0.0, top_p=1.0, priority=1
        )

    first = {i: tokenizer(text(args.prompt_tokens))["input_ids"][: args.prompt_tokens] for i in range(args.debates)}
    for i, ids in first.items():
        batcher.submit(i, request(1), ids)
    while not batcher.idle:
        batcher.step()
    steps_before = batcher.prefill_steps
    second = {i: ids + tokenizer(text(rng.randint(60, 300)))["input_ids"] for i, ids in first.items()}
    for i, ids in second.items():
        batcher.submit(i, request(args.new_tokens), ids)
    results = {}
    while not batcher.idle:
        results.update(batcher.step())
    first_token = {key: result.ttft_seconds for key, result in results.items()}  # from each one's submission
    figures = {
        "policy": "one by one, arrival order" if args.one_by_one else "shipped: together, fewest new tokens first",
        "median_s": statistics.median(first_token.values()),
        "max_s": max(first_token.values()),
        "prefill_steps": batcher.prefill_steps - steps_before,
    }
    print(
        f"{figures['policy']}: {args.debates} next rounds at once, first token median {figures['median_s']:.2f} s, "
        f"largest {figures['max_s']:.2f} s, {figures['prefill_steps']} prefill steps"
    )
    return figures


if __name__ == "__main__":
    main()
