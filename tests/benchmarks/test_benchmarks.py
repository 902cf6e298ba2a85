"""The benchmark scripts' CPU paths run and report sensible figures (no timing assertions)."""

import json


def test_the_gpu_generation_benchmark_runs_on_the_cpu_with_tiny_shapes(tmp_path):
    from benchmarks import gpu_generation

    out = tmp_path / "figures.json"
    report = gpu_generation.main(
        [
            "--tiny",
            "--device",
            "cpu",
            "--shapes",
            "smollm2-135m",
            "--prompt-tokens",
            "16",
            "--new-tokens",
            "4",
            "--concurrency",
            "2",
            "--static-cache",
            "on",
            "--out",
            str(out),
        ]
    )
    assert json.loads(out.read_text()) == report
    row = report["shapes"]["smollm2-135m"]
    assert report["copy_bandwidth_GBps"] > 0 and row["ceiling_tokens_per_s"] > 0
    for key in (
        "plain_single_tokens_per_s",
        "platform_single_tokens_per_s",
        "plain_2_concurrent_tokens_per_s",
        "platform_2_concurrent_tokens_per_s",
        "continuous_single_tokens_per_s",
        "continuous_2_concurrent_tokens_per_s",
    ):
        assert row[key] > 0, key
    assert row["plain_single_fraction_of_ceiling"] == row["plain_single_tokens_per_s"] / row["ceiling_tokens_per_s"]
