#!/usr/bin/env python
"""How long the analysis page takes for an experiment of N judged trials (goal: 10,000 in under 5 s).

    .venv/bin/python benchmarks/analysis_page.py                  # 10,000 trials, scratch SQLite
    .venv/bin/python benchmarks/analysis_page.py --trials 2000 --database-url postgres://postgres@127.0.0.1/bench

Fills a scratch database (a SQLite file in a temporary folder unless --database-url is given; that
database is flushed first) with one launched experiment mixing all five arms, planned by the platform's
own ``plan_trials`` (1 question per 10 trials, 10 judgments per question, 100 judges), every trial
judged by a simulated judge (results/simulation.py's model) and the model-alone answers of its
sandwiching questions; then renders /results/analysis/?experiment=ID as a researcher would, three
times, and prints the wall time of each render and of the main parts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = ["debate", "consultancy", "naive", "assisted-honest", "assisted-misleading"]


def populate(trials: int) -> int:
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from judging.assignment import QuestionInfo, plan_trials
    from judging.importers import import_questions
    from judging.models import Experiment, ModelAnswer, ModelConfig, Trial, Verdict
    from judging.protocols.registry import PROTOCOLS
    from results.simulation import Truth, sigmoid

    call_command("migrate", "--no-input", verbosity=0)
    call_command("flush", "--no-input", verbosity=0)
    rng = np.random.default_rng(0)
    n_questions, judgments = max(1, trials // 10), 10
    judges = [get_user_model().objects.create_user(username=f"judge{i:03d}") for i in range(100)]
    qs = import_questions(
        set_name="bench",
        questions=[
            {"external_id": f"q{i}", "text": f"Question {i}?", "choices": ["yes", "no"], "correct_index": i % 2}
            for i in range(n_questions)
        ],
    )
    questions = list(qs.questions.all())
    experiment = Experiment.objects.create(
        name="bench",
        conditions=ARMS,
        question_set=qs,
        num_questions=n_questions,
        judgments_per_question=judgments,
        mode="live",
        debater_model=ModelConfig.objects.create(name="bench", model_name="bench"),
        primary_comparisons=["sandwich-helpful", "sandwich-robust", "difference:debate:consultancy"],
        status="launched",
        launched_at=timezone.now(),
    )
    plans = plan_trials(
        [QuestionInfo(q.id, 2, q.correct_index) for q in questions],
        [j.id for j in judges],
        num_questions=n_questions,
        judgments_per_question=judgments,
        seed=1,
        arms=ARMS,
    )
    truth = Truth(
        accuracy={
            "debate": 0.72,
            "honest consultant": 0.8,
            "dishonest consultant": 0.5,
            "naive": 0.6,
            "assisted-honest": 0.7,
            "assisted-misleading": 0.55,
        }
    )
    centres = {c: truth.centre(c) for c in truth.accuracy}
    skill = {j.id: rng.normal(0, truth.judge_sd) for j in judges}
    difficulty = {q.id: rng.normal(0, truth.question_sd) for q in questions}
    now = timezone.now()
    with transaction.atomic():
        created = Trial.objects.bulk_create(
            [
                Trial(
                    experiment=experiment,
                    question_id=p.question_id,
                    judge_id=p.judge_id,
                    honest_side=p.honest_side,
                    answer_a_index=p.answer_a_index,
                    answer_b_index=p.answer_b_index,
                    first_speaker=p.first_speaker,
                    queue_position=p.queue_position,
                    protocol=p.protocol,
                    condition=p.condition,
                    live=True,
                    status="judged",
                    **({PROTOCOLS[p.protocol].speaker_side_field: p.speaker_side} if p.speaker_side else {}),
                )
                for p in plans
            ]
        )
        if created[0].pk is None:  # backends that do not return ids from bulk inserts
            created = list(Trial.objects.filter(experiment=experiment).order_by("id"))
        verdicts = []
        for trial, p in zip(created, plans):
            correct = rng.random() < sigmoid(centres[p.condition] + skill[p.judge_id] - difficulty[p.question_id])
            wrong = "B" if p.honest_side == "A" else "A"
            verdicts.append(
                Verdict(
                    trial=trial,
                    judge_id=p.judge_id,
                    chosen=p.honest_side if correct else wrong,
                    probability=float(np.clip(rng.normal(0.75, 0.12), 0.5, 1.0)),
                    rationale="simulated",
                    seconds_on_page=float(rng.uniform(60, 600)),
                    active_seconds=float(rng.uniform(50, 500)),
                    created_at=now,
                )
            )
        Verdict.objects.bulk_create(verdicts)
        sandwich_questions = {p.question_id for p in plans if p.protocol == "sandwich"}
        ModelAnswer.objects.bulk_create(
            [
                ModelAnswer(
                    experiment=experiment,
                    question=q,
                    model_config=experiment.debater_model,
                    answer_a_index=0,
                    answer_b_index=1,
                    honest_side="A",
                    probability_a=float(rng.uniform(0.2, 0.8)),
                )
                for q in questions
                if q.id in sandwich_questions
            ]
        )
    return experiment.pk


def render(experiment_id: int) -> tuple[float, int]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    admin = get_user_model().objects.filter(username="bench-admin").first()
    if admin is None:
        admin = get_user_model().objects.create_superuser("bench-admin", "bench@example.org", "bench-pass")
    client.force_login(admin)
    started = time.perf_counter()
    response = client.get(f"/results/analysis/?experiment={experiment_id}")
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"the analysis page answered {response.status_code}")
    return seconds, len(response.content)


def parts(experiment_id: int) -> dict[str, float]:
    """Wall seconds of the main computations behind the page, one by one."""
    from judging.exports import model_answer_rows, trial_rows
    from results import accuracy, analysis

    timings = {}
    started = time.perf_counter()
    rows = list(trial_rows([experiment_id]))
    model_rows = list(model_answer_rows([experiment_id]))
    timings["read trial and model rows"] = time.perf_counter() - started
    for name, work in (
        ("accuracy: levels, differences, splits", lambda: accuracy.Judged(rows, model_rows)),
        ("calibration (all and per judge)", lambda: (analysis.calibration(rows), analysis.calibration_by_judge(rows))),
        ("judge skill", lambda: analysis.judge_skill(rows)),
    ):
        started = time.perf_counter()
        result = work()
        if isinstance(result, accuracy.Judged):
            accuracy.by_arm(result), accuracy.arm_differences(result), accuracy.debate_splits(result)
            accuracy.sandwich(result, alpha=0.05, margin=0.05)
        timings[name] = time.perf_counter() - started
    return timings


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--database-url", help="scratch database (flushed!); default: a temporary SQLite file")
    parser.add_argument("--renders", type=int, default=3)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="analysis-bench-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "debate_platform.settings",
            "DATABASE_URL": args.database_url or f"sqlite:///{scratch / 'bench.sqlite3'}",
            "CELERY_BROKER_URL": "memory://",
        }
    )
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    experiment_id = populate(args.trials)
    print(f"populated {args.trials:,} judged trials in {time.perf_counter() - started:.0f} s", flush=True)
    renders = []
    for i in range(args.renders):
        seconds, size = render(experiment_id)
        renders.append(seconds)
        print(f"render {i + 1}: {seconds:.2f} s ({size / 1e3:.0f} kB of HTML)", flush=True)
    breakdown = parts(experiment_id)
    for name, seconds in breakdown.items():
        print(f"  {name:<42} {seconds:.2f} s")
    return {"trials": args.trials, "render_seconds": renders, "parts": breakdown}


if __name__ == "__main__":
    main()
