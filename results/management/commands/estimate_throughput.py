from django.core.management.base import BaseCommand, CommandError

from results.services import throughput_estimate
from results.throughput import (
    DEFAULTS,
    LABELS,
    MEASURABLE,
    EstimatorInputError,
    is_duration_in_years,
    output_label,
    readable_years,
)


class Command(BaseCommand):
    help = "Project human-feedback throughput and cost (see docs/throughput.md)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--preset",
            choices=["back-of-envelope", "back-of-envelope-quoted"],
            help="Start from a preset's numbers (docs/throughput.md); any input given below replaces the preset's.",
        )
        parser.add_argument(
            "--experiments",
            type=int,
            nargs="+",
            default=[],
            metavar="ID",
            help="Experiment ids (shown in the admin's list) to measure the --measure inputs from.",
        )
        parser.add_argument(
            "--measure",
            nargs="+",
            default=[],
            choices=MEASURABLE,
            help="Inputs to measure from --experiments instead of setting by hand.",
        )
        for name, label in LABELS.items():
            default = DEFAULTS.get(name)
            shown = f" (default {default:g}, or the preset's)" if default is not None else ""
            parser.add_argument(f"--{name.replace('_', '-')}", type=float, help=label + shown)

    def handle(self, *args, preset, experiments, measure, **options):
        # Given on the line: used. Not given: the preset's number, or without a preset the default.
        values = {name: options[name] if options[name] is not None or preset else DEFAULTS.get(name) for name in LABELS}
        try:
            inputs, figures = throughput_estimate(
                preset=preset or "", values=values, experiment_ids=experiments, measure=measure
            )
        except EstimatorInputError as exc:
            raise CommandError(
                "invalid input: " + "; ".join(f"--{k.replace('_', '-')} {v}" for k, v in exc.errors.items())
            ) from exc
        for warning in inputs.warnings():
            self.stdout.write(f"Warning: {warning}")
        self.stdout.write("Inputs")
        for name, value, source in inputs.rows():
            self.stdout.write(f"  {name:30} {value:>16,.4g}   {source}")
        self.stdout.write("Results (estimate [95% interval])")
        for key, f in figures.items():
            interval = f"  [{f.low:.4g} – {f.high:.4g}]" if f.low != f.high else ""
            readable = f"  ({readable_years(f.value)})" if is_duration_in_years(key) else ""
            self.stdout.write(f"  {output_label(key):70} {f.value:>14.4g}{interval}{readable}")
