#!/usr/bin/env python
"""Decode speed against the memory-bandwidth ceiling, and aggregate speed under concurrency.

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
  by default): one turn, and --concurrency turns submitted together.
Issue 5 targets (GPU): one 8B turn >= 50% of the ceiling; 32 turns >= 2x plain padded generate().
"""

from __future__ import annotations

import argparse
import json
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


def timed_continuous(torch, model, device, batch: int, prompt_tokens: int, new_tokens: int) -> float:
    """Tokens per second for ``batch`` random prompts through the continuous batcher, after a warm-up run."""
    from inference.base import GenerationRequest
    from inference.continuous import ContinuousBatcher

    prompts = torch.randint(10, model.config.vocab_size - 10, (batch, prompt_tokens)).tolist()
    request = GenerationRequest(
        messages=[], max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0.0, top_p=1.0
    )

    def generate() -> int:
        batcher = ContinuousBatcher(
            model, device, stop_ids={model.config.eos_token_id}, pad_token_id=0, max_rows=batch, decode=lambda ids: ""
        )
        for i, prompt in enumerate(prompts):
            batcher.submit(i, request, prompt)
        generated = 0
        while not batcher.idle:
            generated += sum(result.tokens_out for _, result in batcher.step())
        return generated

    generate()  # warm-up
    synchronize(torch, device)
    started = time.perf_counter()
    generated = generate()
    synchronize(torch, device)
    return generated / (time.perf_counter() - started)


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
        config = LlamaConfig(**(TINY if args.tiny else SHAPES[name]))
        with torch.device(device):
            model = LlamaForCausalLM(config).to(dtype).eval()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        ceiling = bandwidth / weight_bytes
        row = {"weight_bytes": weight_bytes, "ceiling_tokens_per_s": ceiling}
        for label, options in (("plain", {}), ("platform", platform)):
            single = timed_generate(torch, model, device, 1, args.prompt_tokens, args.new_tokens, options)
            row[f"{label}_single_tokens_per_s"] = single
            row[f"{label}_single_fraction_of_ceiling"] = single / ceiling
            for c in args.concurrency:
                row[f"{label}_{c}_concurrent_tokens_per_s"] = timed_generate(
                    torch, model, device, c, args.prompt_tokens, args.new_tokens, options
                )
        single = timed_continuous(torch, model, device, 1, args.prompt_tokens, args.new_tokens)
        row["continuous_single_tokens_per_s"] = single
        row["continuous_single_fraction_of_ceiling"] = single / ceiling
        for c in args.concurrency:
            row[f"continuous_{c}_concurrent_tokens_per_s"] = timed_continuous(
                torch, model, device, c, args.prompt_tokens, args.new_tokens
            )
        report["shapes"][name] = row
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
                f"{c} turns {row[f'continuous_{c}_concurrent_tokens_per_s']:,.0f} tok/s" for c in args.concurrency
            ),
            flush=True,
        )
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return report


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--static-cache", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, for a quick check of the script")
    parser.add_argument("--out", help="write the figures as JSON here")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    report = run(args)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
