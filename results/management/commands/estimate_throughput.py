from django.core.management.base import BaseCommand, CommandError

from results.services import throughput_estimate
from results.throughput import DEFAULTS, LABELS, MEASURABLE, EstimatorInputError, output_label


class Command(BaseCommand):
    help = "Project human-feedback throughput and cost (see docs/throughput.md)."

    def add_arguments(self, parser):
        parser.add_argument("--preset", choices=["back-of-envelope", "back-of-envelope-quoted"])
        parser.add_argument("--experiments", type=int, nargs="+", default=[], metavar="ID")
        parser.add_argument(
            "--measure",
            nargs="+",
            default=[],
            choices=MEASURABLE,
            help="Inputs to measure from --experiments instead of setting by hand.",
        )
        for name, label in LABELS.items():
            parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=DEFAULTS.get(name), help=label)

    def handle(self, *args, preset, experiments, measure, **options):
        values = {name: options[name] for name in LABELS}
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
            self.stdout.write(f"  {output_label(key):70} {f.value:>14.4g}{interval}")
