"""Entry points shared by the results pages and management commands."""

from __future__ import annotations

from .measure import measured_quantities
from .throughput import (
    EstimatorInputError,
    Inputs,
    back_of_envelope,
    build_inputs,
    estimate,
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


def throughput_estimate(*, preset: str = "", values: dict | None = None, experiment_ids=(), measure=()):
    """Returns (inputs, figures). Raises EstimatorInputError with per-input messages."""
    if preset:
        inputs = preset_inputs(preset)
    else:
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
        inputs = build_inputs(values or {}, measured)
    return inputs, estimate(inputs)
