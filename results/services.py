"""Entry points shared by the results pages and management commands."""

from __future__ import annotations

import dataclasses

from judging import analysis_plan
from judging.models import Experiment

from . import accuracy
from .measure import measured_quantities
from .throughput import (
    EstimatorInputError,
    Inputs,
    back_of_envelope,
    build_inputs,
    estimate,
    hand,
    reading_hours_for_pages,
)

QUOTED_PAGES_PER_YEAR = 1e11


def preset_inputs(name: str) -> Inputs:
    if name == "back-of-envelope":
        return back_of_envelope()
    if name == "back-of-envelope-quoted":
        hours = reading_hours_for_pages(QUOTED_PAGES_PER_YEAR, readers=1e7, wpm=250, words_per_page=500)
        return back_of_envelope(hours_per_year=hours)
    raise EstimatorInputError({"preset": f"unknown preset {name!r}"})


def preset_values(name: str) -> dict[str, float]:
    """A preset's numbers, by input name (what the page fills its inputs with)."""
    return {input_name: value for input_name, value, _ in preset_inputs(name).rows()}


def throughput_estimate(*, preset: str = "", values: dict | None = None, experiment_ids=(), measure=()):
    """Returns (inputs, figures). Raises EstimatorInputError with per-input messages.

    With a ``preset``, its numbers are the starting point: a value given that differs from the preset's
    replaces it (set by hand), as does a measured one; nothing typed is silently overridden."""
    given = {name: value for name, value in (values or {}).items() if value is not None}
    measured = {}
    if measure:
        if not experiment_ids:
            raise EstimatorInputError({"experiments": "choose the experiments to measure from"})
        available = measured_quantities(list(experiment_ids), measure)
        missing = [name for name in measure if name not in available]
        if missing:
            raise EstimatorInputError(
                {name: "the chosen experiments have no measurements of this yet" for name in missing}
            )
        measured = {name: available[name] for name in measure}
    if preset:
        start = preset_inputs(preset)
        changed = {
            name: hand(value)
            for name, value in given.items()
            if getattr(start, name) is None or getattr(start, name).value != value
        }
        inputs = dataclasses.replace(start, **(changed | measured))
    else:
        inputs = build_inputs(given, measured)
    return inputs, estimate(inputs)


def experiment_plan(experiment: Experiment) -> accuracy.Plan:
    return accuracy.Plan(
        experiment=experiment.name,
        primary=tuple(experiment.primary_comparisons),
        alpha=experiment.alpha,
        margin=experiment.non_inferiority_margin,
        planned_judgments=experiment.judgments_planned,
        collection_over=experiment.verdict_collection_over(),
    )


def shared_plan(experiments: list[Experiment]) -> accuracy.Plan:
    """α and δ for the exploratory sections that pool experiments: one experiment's own, else the
    defaults (δ shared when every experiment declared the same)."""
    if len(experiments) == 1:
        return experiment_plan(experiments[0])
    margins = {e.non_inferiority_margin for e in experiments}
    return accuracy.Plan(
        experiment=", ".join(e.name for e in experiments),
        primary=(),
        alpha=analysis_plan.DEFAULT_ALPHA,
        margin=margins.pop() if len(margins) == 1 else analysis_plan.DEFAULT_MARGIN,
        planned_judgments=sum(e.judgments_planned for e in experiments),
    )


def primary_sections(experiments, rows, model_rows) -> list[dict]:
    """Each experiment's declared comparisons, tested on its own verdicts only."""
    sections = []
    for experiment in experiments:
        plan = experiment_plan(experiment)
        own = [r for r in rows if r["experiment_id"] == experiment.pk]
        data = accuracy.Judged(own, [m for m in model_rows if m["experiment_id"] == experiment.pk])
        sections.append(
            {
                "experiment": experiment,
                "plan": plan,
                "judged": len(data),
                "decisions": accuracy.primary_results(data, plan) if plan.primary else [],
            }
        )
    return sections
