#!/usr/bin/env python
"""Coverage, false-pass rate and power of the analysis, on studies simulated with known truth.

    .venv/bin/python benchmarks/inference_validity.py                 # 1,000 studies per scenario
    .venv/bin/python benchmarks/inference_validity.py --studies 200 --out figures.json

Each study is planned by the platform's own ``plan_trials`` and judged by simulated judges and
questions of known skill and difficulty (results/simulation.py); the platform's own analysis
(results/accuracy.py) then reports intervals and tests on it. Goals (issue 10): every 95% interval
covers the truth in >= 93% of studies; each test passes falsely in <= alpha + 1 point when its null
holds at the boundary. Power is printed for the default designs; size studies with
``manage.py power_analysis``. The reduced version runs in tests/results/test_inference_validity.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results.power import Power  # noqa: E402
from results.simulation import (  # noqa: E402
    COVERAGE_SCENARIOS,
    NULL_FAMILY,
    NULL_SCENARIOS,
    POWER_SCENARIOS,
    coverage,
    family_pass_rate,
    pass_rates,
)


def monte_carlo_error(rate: float, studies: int) -> float:
    return Power("", round(rate * studies), studies).error


def finish(report: dict, started: float, out: str | None) -> dict:
    """Print the run's time and write the figures as JSON to ``out`` (if given)."""
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\n{report['seconds']} s")
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=1000, help="simulated studies per scenario")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per study")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--margin", type=float, default=0.05, help="non-inferiority margin delta")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = {"studies": args.studies, "resamples": args.resamples, "alpha": args.alpha, "margin": args.margin}

    print(f"Coverage of 95% intervals ({args.studies} studies each; goal >= 0.93)")
    report["coverage"] = {}
    for scenario in COVERAGE_SCENARIOS:
        rates = coverage(scenario, studies=args.studies, resamples=args.resamples)
        report["coverage"][scenario.name] = rates
        print(f"  {scenario.name}")
        for name, rate in rates.items():
            print(f"    {name:<55} {rate:.3f} ± {monte_carlo_error(rate, args.studies):.3f}")

    def rates_of(scenarios, title, goal):
        print(f"\n{title}")
        out = {}
        for scenario, key in scenarios:
            rate = pass_rates(
                scenario, [key], studies=args.studies, resamples=args.resamples, alpha=args.alpha, margin=args.margin
            )[key]
            out[scenario.name] = {"comparison": key, "rate": rate}
            print(f"  {scenario.name:<72} {key:<22} {rate:.3f} ± {monte_carlo_error(rate, args.studies):.3f}{goal}")
        return out

    goal = f"  (goal <= {args.alpha + 0.01:.2f})"
    report["false_pass"] = rates_of(NULL_SCENARIOS, "False-pass rate under the null", goal)
    scenario, keys = NULL_FAMILY
    rate = family_pass_rate(
        scenario, keys, studies=args.studies, resamples=args.resamples, alpha=args.alpha, margin=args.margin
    )
    report["family_false_pass"] = {"scenario": scenario.name, "comparisons": list(keys), "rate": rate}
    print(f"  {'family of ' + str(len(keys)) + ': ' + scenario.name:<72} {'any of them':<22} {rate:.3f}{goal}")
    report["power"] = rates_of(POWER_SCENARIOS, "Power at the default designs (60 x 3, 6 judges)", "")
    return finish(report, started, args.out)


if __name__ == "__main__":
    main()
