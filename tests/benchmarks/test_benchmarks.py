"""The benchmark scripts' CPU paths run and report sensible figures (no timing assertions)."""

import json

import pytest


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
            "--batch-sizes",
            "4",
            "--repeats",
            "1",
            "--busy-rows",
            "3",
            "--long-prompt-tokens",
            "192",
            "--chunk-tokens",
            "32",
            "64",
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
    # Continuous batching at 1, --batch-sizes and --concurrency rows.
    assert set(row["continuous_by_batch_size"]) == {"1", "2", "4"}
    assert all(tokens_per_s > 0 for tokens_per_s in row["continuous_by_batch_size"].values())
    assert row["continuous_2_concurrent_tokens_per_s"] == row["continuous_by_batch_size"]["2"]
    assert row["continuous_peak_bytes_by_batch_size"] == {"1": None, "2": None, "4": None}  # measured on a GPU only

    assert row["live_idle_ttft_seconds"] > 0
    assert set(row["preemption"]) == {"3"}
    for cases in row["preemption"].values():
        priority, waiting = cases["priority"], cases["waiting"]
        assert priority["paused_rows"] == 1 and waiting["paused_rows"] == 0
        assert priority["paused_seconds"] > 0 and waiting["paused_seconds"] == 0
        # The paused row resumed from its cached prefix: far fewer tokens than its 16-token prompt again.
        assert 1 <= priority["tokens_reprefilled"] < 16 and waiting["tokens_reprefilled"] == 0
        for case in (priority, waiting):
            assert case["live_ttft_vs_idle"] > 0 and case["busy_tokens_per_s"] > 0
            assert case["live_ttft_vs_idle"] == case["live_ttft_seconds"] / row["live_idle_ttft_seconds"]

    chunked = row["chunked_prefill"]
    assert chunked["long_prompt_tokens"] == 192 and chunked["running_rows"] == gpu_generation.SHIPPED_BATCH_SIZE - 2
    assert set(chunked["by_chunk_tokens"]) == {"32", "64", "whole"}
    for case in chunked["by_chunk_tokens"].values():
        assert case["live_ttft_vs_idle"] > 0 and case["long_ttft_seconds"] > 0

    # A full batch of next rounds at once: grouped, fewer prefill steps than one per round.
    together = row["next_rounds_at_once"]
    assert together["debates"] == gpu_generation.SHIPPED_BATCH_SIZE and together["prompt_tokens"] == 16
    assert together["one_by_one"]["prefill_steps"] == gpu_generation.SHIPPED_BATCH_SIZE
    assert 1 <= together["grouped"]["prefill_steps"] < together["one_by_one"]["prefill_steps"]
    for case in (together["grouped"], together["one_by_one"]):
        assert 0 < case["median_ttft_seconds"] <= case["max_ttft_seconds"]

    # The long lane: a live request's figures beside nothing, a long row in one batch and in a lane of its own.
    lanes = row["long_lane"]
    assert lanes["long_prompt_tokens"] == 192 and lanes["short_rows"] == gpu_generation.SHIPPED_BATCH_SIZE - 2
    for way in ("idle", "one_batch", "lanes"):
        assert lanes[way]["live_ttft_seconds"] > 0 and lanes[way]["live_token_seconds"] > 0
    assert "pre_generated_tokens_per_s" not in lanes["idle"]
    assert lanes["one_batch"]["pre_generated_tokens_per_s"] > 0 and lanes["lanes"]["pre_generated_tokens_per_s"] > 0

    # Prefix reuse: the extended prompt prefilled only its 4 new tokens from the cache, all 20 without.
    reuse = row["prefix_reuse"]
    assert reuse["extended_prompt_tokens"] == 20
    assert reuse["with_cache"]["tokens_prefilled"] == 4 and reuse["without_cache"]["tokens_prefilled"] == 20
    assert reuse["with_cache"]["ttft_seconds"] > 0 and reuse["without_cache"]["ttft_seconds"] > 0
    tiny = gpu_generation.TINY  # keys and values, every layer, float32
    head_dim = tiny["hidden_size"] // tiny["num_attention_heads"]
    assert reuse["kv_bytes_per_token"] == 2 * tiny["num_hidden_layers"] * tiny["num_key_value_heads"] * head_dim * 4

    advice = row["recommendation"]
    assert advice["DEBATE_GENERATION_BATCH_SIZE"]["value"] in (1, 2, 4)
    assert advice["DEBATE_GENERATION_PREFILL_CHUNK_TOKENS"]["value"] in (32, 64)
    cache_mb = advice["DEBATE_GENERATION_PREFIX_CACHE_MB"]
    assert cache_mb["value"] >= 64 and cache_mb["value"] % 64 == 0
    assert cache_mb["tokens_held"] == cache_mb["value"] * 2**20 // reuse["kv_bytes_per_token"]
    assert advice["DEBATE_GENERATION_STATIC_CACHE"]["value"] in ("off", "auto")
    assert isinstance(advice["preemption_within_2x_idle"]["value"], bool)
    assert advice["DEBATE_GENERATION_LONG_LANE"]["value"] in (0, 1)
    assert all(isinstance(item["because"], str) and item["because"] for item in advice.values())


def test_the_gpu_generation_benchmark_measures_with_the_shipped_settings():
    from django.conf import settings

    from benchmarks import gpu_generation

    assert gpu_generation.SHIPPED_BATCH_SIZE == settings.GENERATION_BATCH_SIZE
    assert gpu_generation.SHIPPED_LIVE_TURNS_BEYOND_BATCH == settings.GENERATION_LIVE_TURNS_BEYOND_BATCH
    assert gpu_generation.SHIPPED_PREFILL_TOKENS == settings.GENERATION_PREFILL_TOKENS
    assert gpu_generation.SHIPPED_CHUNK_TOKENS == settings.GENERATION_PREFILL_CHUNK_TOKENS
    assert gpu_generation.SHIPPED_PREFIX_CACHE_MB == settings.GENERATION_PREFIX_CACHE_MB
    assert gpu_generation.SHIPPED_MODELS_PER_DEVICE == settings.MODELS_PER_DEVICE


@pytest.mark.parametrize(
    "one_batch, lanes, expected",
    [
        # One batch makes live first words 4x idle; the lanes 1.5x: the lanes, though they cost throughput.
        ((0.04, 0.01, 1000.0), (0.015, 0.01, 500.0), 1),
        # One batch slows live tokens to 3x idle (the time between them), the lanes do not: the lanes.
        ((0.01, 0.03, 1000.0), (0.01, 0.01, 800.0), 1),
        # Live keeps within 2x idle in one batch, which runs pre-generated work 25% faster: one batch.
        ((0.015, 0.015, 1000.0), (0.012, 0.01, 800.0), 0),
        # The same, but one batch is only 5% faster: the lanes stay (within noise).
        ((0.015, 0.015, 1050.0), (0.012, 0.01, 1000.0), 1),
        # One batch misses 2x idle, the lanes do no better, and one batch is faster: one batch.
        ((0.04, 0.01, 1000.0), (0.05, 0.01, 500.0), 0),
    ],
)
def test_the_long_lane_recommendation_puts_live_requests_first_then_throughput(one_batch, lanes, expected):
    from benchmarks import gpu_generation

    def case(ttft, token, tokens_per_s=None):
        figures = {"live_ttft_seconds": ttft, "live_token_seconds": token}
        return figures | ({"pre_generated_tokens_per_s": tokens_per_s} if tokens_per_s else {})

    figures = {
        "long_prompt_tokens": 7000,
        "idle": case(0.01, 0.01),
        "one_batch": case(*one_batch),
        "lanes": case(*lanes),
    }
    advice = gpu_generation.recommend_long_lane(figures)
    assert advice["value"] == expected and "7000-token row" in advice["because"]


def test_the_gpu_generation_benchmark_options(capsys):
    import pytest

    from benchmarks import gpu_generation

    # By default the live request pre-empts a full batch of the shipped size and one of the first --concurrency.
    assert gpu_generation.parse(["--concurrency", "32", "128"]).busy_rows == [8, 32]
    tiny = gpu_generation.parse(["--tiny"])
    assert tiny.long_prompt_tokens == 768 and tiny.chunk_tokens == [128, 256, 512]
    assert gpu_generation.parse([]).long_prompt_tokens == 7000
    with pytest.raises(SystemExit):
        gpu_generation.parse(
            ["--tiny", "--prompt-tokens", "16", "--long-prompt-tokens", "192", "--chunk-tokens", "192"]
        )
    assert "--chunk-tokens and --prompt-tokens must be shorter than the long prompt (192" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_generation.parse(["--prompt-tokens", "8"])
    assert "--prompt-tokens must be between 16" in capsys.readouterr().err
    chunks = gpu_generation.parse(
        ["--long-prompt-tokens", "192", "--prompt-tokens", "16", "--chunk-tokens", "191", "16"]
    )
    assert chunks.chunk_tokens == [16, 191]


def test_the_inference_validity_benchmark_reports_every_figure():
    from benchmarks import inference_validity

    report = inference_validity.main(["--studies", "3", "--resamples", "10"])
    assert report["coverage"] and report["false_pass"] and report["power"]
    assert all(0 <= rate <= 1 for rates in report["coverage"].values() for rate in rates.values())


def test_the_crossplay_ladder_benchmark_reports_every_figure(tmp_path):
    from benchmarks import crossplay_ladder

    out = tmp_path / "figures.json"
    report = crossplay_ladder.main(["--studies", "2", "--resamples", "10", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    for figures in report["scenarios"].values():
        assert figures["coverage"] and all(0 <= rate <= 1 for rate in figures["coverage"].values())
        assert 0 <= figures["order_recovered"] <= 1 and -1 <= figures["mean_spearman"] <= 1


def test_the_analysis_page_benchmark_renders_the_page(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    # Its own process: the benchmark sets up Django on a scratch database of its own.
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "benchmarks/analysis_page.py", "--trials", "200", "--renders", "1"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "render 1:" in done.stdout and "calibration (all and per judge)" in done.stdout


def run_on_scratch_postgres(script: str, name: str, tmp_path, *args: str, timeout: int = 600):
    """Run ``script`` with ``args`` on a scratch PostgreSQL database beside the test database (skipped on SQLite: it
    measures as deployed) and TEST_REDIS_URL; its completed process and the figures it wrote (--json)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip(f"{script} measures on PostgreSQL, as deployed; this run uses SQLite")
    redis_url = os.environ.get("TEST_REDIS_URL")
    assert redis_url, "TEST_REDIS_URL must point at a running Redis (dev.py test sets it)"
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            script,
            *args,
            f"--database-url=postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}_{name}",
            f"--redis-url={redis_url}",
            f"--json={out}",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


@pytest.mark.integration
def test_the_load_test_runs_end_to_end_and_every_acknowledged_verdict_is_stored(tmp_path):
    """benchmarks/load_test.py, tiny: a few judges against gunicorn and PostgreSQL, each scenario until two verdicts
    are in (a guard of minutes only stops a hung run). No timing is checked: only that it ran, without errors."""
    import socket

    with socket.socket() as probe:  # a free port for this run's gunicorn
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done, steps = run_on_scratch_postgres(
        "benchmarks/load_test.py",
        "load_smoke",
        tmp_path,
        "--judges=3",
        "--trials=4",
        "--verdicts=2",
        "--seconds=300",
        "--settle-seconds=0",
        "--speech-seconds=0.5",
        "--first-words-seconds=0.2",
        "--read-seconds=1",
        "--move-seconds=0.5",
        f"--port={port}",
        timeout=900,
    )
    assert [(s["scenario"], s["judges"]) for s in steps] == [("mixed", 3), ("live", 3)]
    for step in steps:
        assert step["errors_total"] == 0, step["error_messages"]
        assert step["verdicts acknowledged"] >= 2
        assert step["verdicts acknowledged"] == step["verdicts_stored"]
        assert step["cpu_seconds"]["gunicorn"] > 0
    # As deployed (ASGI), live pages follow their streams instead of polling: pushed renders at least (the speeches
    # are short here), and how late each page had the writer's latest words.
    live = steps[1]
    assert "live poll" not in live["endpoints"] and live["streams opened"] > 0 and live["pushed renders"] > 0
    assert live["endpoints"]["update lag"]["requests"] > 0
    assert "requests/s" in done.stdout and "live update" in done.stdout
    # Redis's count of connections accepted is the whole server's (other tests share it): only reported here.
    assert all(step["redis_connections_opened"] >= 0 for step in steps) and "Redis connections opened" in done.stdout
    # The web workers' garbage collections were recorded (the young ones run many times a second under load).
    assert all(step["gc_pauses"]["younger"]["count"] > 0 for step in steps)
    assert "garbage collections in the web workers" in done.stdout


@pytest.mark.integration
def test_the_poll_cost_benchmark_measures_each_kind_of_poll_and_the_floor_of_a_pushed_update(tmp_path):
    """benchmarks/live_poll_cost.py, tiny: polls that find a longer speech are sent its new characters (or the
    partials, when they ask for them), polls that find nothing new 304, within the query budget. No timing is
    checked."""
    from tests.judging.test_judge_pages import QUERY_BUDGET

    done, figures = run_on_scratch_postgres(
        "benchmarks/live_poll_cost.py", "poll_smoke", tmp_path, "--polls=10", "--repeats=1", "--breakdown"
    )
    assert figures["grown"]["answered"] == {"200 news": 10}
    assert figures["rendered"]["answered"] == {"200 partials": 10}
    # Every one: the round's elapsed seconds are not part of the tag (the page counts them on itself).
    assert figures["unchanged"]["answered"] == {"304": 10}
    assert figures["quoted"]["answered"] == {"200 rewrite": 10}  # the speech whole, its quote marked: no render
    assert figures["pushed"]["answered"] == {"200 news, no request": 10}
    for kind in ("grown", "rendered", "unchanged", "quoted", "pushed"):
        assert 0 < figures[kind]["queries"] <= QUERY_BUDGET["trial_live"] and figures[kind]["web_ms"] > 0
    # Sessions and users in Redis: the tag, and for a render the trial and its turns.
    assert figures["grown"]["queries"] == figures["unchanged"]["queries"] == 1 and figures["rendered"]["queries"] == 3
    assert figures["quoted"]["queries"] == 2  # the tag, and the passage
    assert figures["pushed"]["queries"] == 1  # the tag alone: no request, so no health check either
    # A stream's render: the trial and its turns, nothing for a session or a user.
    assert figures["pushed render"]["answered"] == {"partials, no request": 10}
    assert figures["pushed render"]["queries"] == 2
    assert len(figures["breakdown"]) == 3 and "ms per poll" in done.stdout


def test_the_continuous_step_profile_runs_on_the_cpu_with_tiny_shapes(capsys):
    from benchmarks import continuous_step_profile

    continuous_step_profile.main(
        ["--device", "cpu", "--tiny", "--rows", "1", "3", "--prompt-tokens", "16", "--steps", "2"]
    )
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if " rows: step " in line]
    assert [line.split(" rows")[0] for line in steps] == ["1", "3"]
    assert all("forward" in line and "sampling and bookkeeping" in line for line in steps)
    assert sum("host time by operator" in line for line in lines) == 2


def test_the_long_lane_benchmark_measures_each_way_on_a_tiny_model(tiny_model_dir, capsys):
    from benchmarks import long_lane

    figures = long_lane.main(["--model-dir", str(tiny_model_dir), "--long-tokens", "2500", "--rounds", "1"])
    assert len(figures) == 5 and all(0 < f["first"] <= f["third"] and f["token_to_token"] > 0 for f in figures.values())
    out = capsys.readouterr().out
    assert "long prompt 2500 tokens" in out and out.count("first token") == 5


@pytest.mark.parametrize("one_by_one", [False, True])
def test_the_questions_at_once_benchmark_measures_next_rounds_arriving_together(tiny_model_dir, capsys, one_by_one):
    from benchmarks import questions_at_once

    argv = ["--model-dir", str(tiny_model_dir), "--debates", "3", "--prompt-tokens", "16", "--new-tokens", "2"]
    figures = questions_at_once.main(argv + (["--one-by-one"] if one_by_one else []))
    assert 0 < figures["median_s"] <= figures["max_s"] and figures["prefill_steps"] >= 1
    assert figures["policy"].startswith("one by one" if one_by_one else "shipped")
    assert "3 next rounds at once" in capsys.readouterr().out


@pytest.mark.integration
def test_the_live_take_cost_benchmark_times_the_workers_query_for_live_turns(tmp_path):
    """benchmarks/live_take_cost.py, tiny, on PostgreSQL: the check between full looks is one query; a look that finds
    no live debate sends one query, one that finds a live debate whose next turn is not yet due reads it (its trial,
    experiment and turns) and finds none."""
    done, figures = run_on_scratch_postgres(
        "benchmarks/live_take_cost.py", "take_smoke", tmp_path, "--live", "0", "2", "--pre-generated=3", "--calls=2"
    )
    assert [figures[n]["look"]["queries"] for n in ("0", "2")] == [1, 4]
    assert [figures[n]["check"]["queries"] for n in ("0", "2")] == [1, 1]  # one query however many live debates
    assert all(f[way]["wall_ms"] > 0 for f in figures.values() for way in ("look", "check"))
    assert "2 live debates with a turn not yet due, 3 pre-generated trials pending" in done.stdout
