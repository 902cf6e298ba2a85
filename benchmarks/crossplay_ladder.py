#!/usr/bin/env python
"""The debater ladder on simulated cross-play tournaments of debaters of known strength (issue 11).

    .venv/bin/python benchmarks/crossplay_ladder.py                      # 400 studies per scenario
    .venv/bin/python benchmarks/crossplay_ladder.py --studies 100 --jobs 2 --out figures.json

Each study has four debaters of known strength (logit -0.9, -0.3, 0.3, 0.9) in a line-up; its pairing
design's cells (judging.lineups.design_cells) are planned by the platform's own ``plan_trials`` and judged
by simulated judges and questions of known skill and difficulty, the honest side winning with
P = sigmoid(s_honest - s_adversary + h + truth_gain * (s_honest + s_adversary) / 2 + skill - difficulty)
(results/simulation.py). The page's own ``debater_ratings`` then builds the ladder. Printed per scenario:
the share of studies whose 95% intervals cover the truth (each strength, the honesty advantage, each
self-play accuracy, the slope of self-play accuracy on strength; the truth is the population figure the
ladder estimates, ``results.simulation.ladder_truth``), how often the ladder orders the four debaters
exactly right, the mean Spearman correlation of estimated with true strengths, and how often the
one-sided test that self-play accuracy rises with strength passes at alpha (its power, or its false-pass
rate where self-play accuracy is flat). Goals (docs/statistics standard): coverage >= 0.93; false-pass rate
<= alpha + Monte Carlo error. The reduced version runs in tests/results/test_ladder.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.inference_validity import finish, monte_carlo_error  # noqa: E402
from results.simulation import LADDER_SCENARIOS, ladder_validity  # noqa: E402


def run(scenario, studies: int, resamples: int, alpha: float) -> dict:
    started = time.perf_counter()
    figures = ladder_validity(scenario, studies=studies, resamples=resamples, alpha=alpha)
    truth = figures.pop("truth")
    return figures | {
        "truth": {
            "strengths": {name: round(float(s), 4) for name, s in truth["strengths"].items()},
            "honesty_advantage": round(truth["honesty_advantage"], 4),
            "self_play": {name: round(float(a), 4) for name, a in truth["self_play"].items()},
            "slope": None if truth["slope"] is None else round(truth["slope"], 4),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=400, help="simulated studies per scenario")
    parser.add_argument("--resamples", type=int, default=1000, help="resamples per scheme (the page uses 1000)")
    parser.add_argument("--alpha", type=float, default=0.05, help="level of the self-play slope's one-sided test")
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run in parallel processes")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = {"studies": args.studies, "resamples": args.resamples, "alpha": args.alpha, "scenarios": {}}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, s, args.studies, args.resamples, args.alpha) for s in LADDER_SCENARIOS]
        results = [f.result() for f in futures]
    print(f"The debater ladder on {args.studies} simulated studies per scenario, {args.resamples} resamples per scheme")
    for scenario, figures in zip(LADDER_SCENARIOS, results):
        report["scenarios"][scenario.name] = figures
        print(f"\n  {scenario.name}   ({figures['seconds']} s)")
        print("    coverage of 95% intervals (goal >= 0.93)")
        for name, rate in figures["coverage"].items():
            print(f"      {name:<50} {rate:.3f} ± {monte_carlo_error(rate, args.studies):.3f}")
        for label, key in (("order recovered exactly", "order_recovered"), ("mean Spearman", "mean_spearman")):
            print(f"    {label:<52} {figures[key]:.3f}")
        passes = figures["slope_test_passes"]
        if passes is not None:
            what = "false-pass rate" if figures["truth"]["slope"] == 0 else "power"
            label = f"slope test passes at alpha = {args.alpha} ({what})"
            print(f"    {label:<52} {passes:.3f} ± {monte_carlo_error(passes, args.studies):.3f}")
    return finish(report, started, args.out)


if __name__ == "__main__":
    main()
