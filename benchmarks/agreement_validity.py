#!/usr/bin/env python
"""Coverage of the agreement intervals (Krippendorff's alpha, Fleiss' kappa) on studies of known agreement.

    .venv/bin/python benchmarks/agreement_validity.py                 # 1,000 studies per scenario
    .venv/bin/python benchmarks/agreement_validity.py --studies 200 --out figures.json

Each study is planned by the platform's own ``plan_trials`` and judged by simulated judges and questions
of known skill and difficulty (results/simulation.py); results/agreement.py then reports alpha and kappa
per arm with their question-bootstrap intervals. The truth is the population agreement,
Var_q(P(correct | q)) / (p (1 - p)) (``results.simulation.agreement_truth``). Goal: every 95% interval
covers it in >= 93% of studies. The reduced version runs in tests/results/test_agreement.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.inference_validity import finish, monte_carlo_error  # noqa: E402
from results.simulation import AGREEMENT_SCENARIOS, agreement_validity  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=1000, help="simulated studies per scenario")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per study")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = {"studies": args.studies, "resamples": args.resamples, "scenarios": {}}
    print(f"Coverage of 95% agreement intervals ({args.studies} studies each; goal >= 0.93)")
    for scenario in AGREEMENT_SCENARIOS:
        found = agreement_validity(scenario, studies=args.studies, resamples=args.resamples)
        report["scenarios"][scenario.name] = found
        print(f"  {scenario.name}")
        for name, rate in found["coverage"].items():
            truth, mean = found["truth"][name.partition(": ")[2]], found["mean_estimate"].get(name, float("nan"))
            print(
                f"    {name:<45} coverage {rate:.3f} ± {monte_carlo_error(rate, args.studies):.3f}"
                f"   truth {truth:.3f}, mean estimate {mean:.3f}"
                f"   with an interval in {found['with_interval'][name]} of {found['studies_with_figure'][name]} studies"
            )
    return finish(report, started, args.out)


if __name__ == "__main__":
    main()
