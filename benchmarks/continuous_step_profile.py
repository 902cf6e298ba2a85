#!/usr/bin/env python
"""Where one decoding step of the continuous batcher spends its time, at 1 row and at several.

    python benchmarks/continuous_step_profile.py                  # GPU if there is one (bf16), SmolLM2-135M shape
    python benchmarks/continuous_step_profile.py --device cpu --tiny

Prints, per row count: the wall time of a decoding step (device synchronised), the part spent in the model's
forward pass and the part in sampling and bookkeeping (``_take_tokens``), then the operators that took the
most host time over a few profiled steps, with their counts per step. Written after the first GPU run showed
the batcher's steps far slower at 8 rows than at 1 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gpu_generation import SHAPES, TINY, forced_request, new_batcher, random_prompt  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shape", default="smollm2-135m", choices=list(SHAPES))
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.device(device):
        model = LlamaForCausalLM(LlamaConfig(**(TINY if args.tiny else SHAPES[args.shape]))).to(dtype).eval()
    for rows in args.rows:
        batcher = new_batcher(model, device, rows)
        for i in range(rows):
            batcher.submit(i, forced_request(args.steps * 3 + 20), random_prompt(torch, model, args.prompt_tokens))
        forward_seconds, take_seconds = [], []
        model_forward, take_tokens = model.forward, batcher._take_tokens

        def timed_forward(*a, **k):
            sync()
            started = time.perf_counter()
            out = model_forward(*a, **k)
            sync()
            forward_seconds.append(time.perf_counter() - started)
            return out

        def timed_take(*a, **k):
            started = time.perf_counter()
            take_tokens(*a, **k)
            sync()
            take_seconds.append(time.perf_counter() - started)

        with torch.inference_mode():
            while batcher.waiting or len(batcher.rows) < rows:
                batcher.step()
            for _ in range(3):
                batcher.step()
            sync()
            started = time.perf_counter()
            for _ in range(args.steps):
                batcher.step()
            sync()
            plain = (time.perf_counter() - started) / args.steps
            model.forward, batcher._take_tokens = timed_forward, timed_take
            for _ in range(args.steps):
                batcher.step()
            model.forward, batcher._take_tokens = model_forward, take_tokens
            activities = [torch.profiler.ProfilerActivity.CPU]
            with torch.profiler.profile(activities=activities) as profile:
                for _ in range(3):
                    batcher.step()
                sync()
        forward = sorted(forward_seconds)[len(forward_seconds) // 2]
        take = sorted(take_seconds)[len(take_seconds) // 2]
        print(
            f"{rows} rows: step {plain * 1000:.1f} ms ({rows / plain:,.0f} tok/s); synchronised: forward "
            f"{forward * 1000:.1f} ms, sampling and bookkeeping {take * 1000:.1f} ms",
            flush=True,
        )
        events = sorted(profile.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        print(
            "   host time by operator (per step): "
            + "; ".join(f"{e.key} {e.self_cpu_time_total / 3000:.2f} ms x{e.count / 3:.0f}" for e in events),
            flush=True,
        )
        del batcher
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
