"""The analysis page's main figures on the command line, for scripts and notebooks."""

from django.core.management.base import BaseCommand, CommandError

from judging.exports import model_answer_rows, trial_rows
from judging.models import Experiment
from results import accuracy
from results.agreement import agreement_by_arm
from results.inference import RESAMPLED_UNITS
from results.services import primary_sections, shared_plan


def _interval(e, points: bool = False) -> str:
    if not e.has_interval:
        return "no interval"
    scale, unit = (100, " pts") if points else (100, "%")
    return f"[{e.low * scale:.1f}{unit} – {e.high * scale:.1f}{unit}]"


def _agreement(found) -> str:
    if found is None:
        return "no overlapping judgments"
    judges = f"{found.raters[0]}" if found.raters[0] == found.raters[1] else f"{found.raters[0]}-{found.raters[1]}"
    parts = [f"{found.units} units of {judges} judges ({found.verdicts} verdicts)"]
    for name, e in (("Krippendorff's alpha", found.alpha), ("Fleiss' kappa", found.kappa)):
        if e is None:
            parts.append(f"{name}: not defined (units have different numbers of judges)")
        elif e.has_interval:
            parts.append(f"{name} {e.value:.3f} [{e.low:.3f} – {e.high:.3f}]")
        else:
            parts.append(f"{name}: not reported ({e.method})")
    return "; ".join(parts)


class Command(BaseCommand):
    help = (
        "Print an experiment's primary results (its declared comparisons) and the exploratory accuracy figures, "
        "with the page's clustered intervals (docs/analysis.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("experiments", type=int, nargs="+", metavar="ID", help="experiment ids to analyse")

    def handle(self, *args, experiments, **options):
        found = list(Experiment.objects.filter(pk__in=experiments).order_by("pk"))
        missing = sorted(set(experiments) - {e.pk for e in found})
        if missing:
            raise CommandError(f"no experiment with id {missing[0]}")
        ids = [e.pk for e in found]
        rows, model_rows = list(trial_rows(ids)), list(model_answer_rows(ids))
        data = accuracy.Judged(rows, model_rows)
        if not len(data):
            raise CommandError("no verdicts yet: nothing to analyse until judges have judged trials")
        write = self.stdout.write
        write(f"{len(data)} judged trials. Intervals: 95%, resampling {RESAMPLED_UNITS}.")
        write("\nPrimary results (declared before launch)")
        for section in primary_sections(found, rows, model_rows):
            plan = section["plan"]
            write(
                f"  {plan.experiment}: α = {plan.alpha}, δ = {plan.margin}, {plan.planned_judgments} planned verdicts"
            )
            if not section["decisions"]:
                write("    no comparison declared: everything is exploratory")
            for d in section["decisions"]:
                p = "—" if d.p_adjusted is None else f"{d.p_adjusted:.4f}"
                write(f"    {d.label}: {d.outcome}{f' ({d.reason})' if d.reason else ''}; p (adjusted) {p}")
        write("\nExploratory: accuracy by arm")
        for arm, e in (accuracy.by_arm(data) | accuracy.by_condition(data)).items():
            write(f"  {arm:<40} {e.value * 100:5.1f}% {_interval(e)}  n={e.n}")
        for label, e in accuracy.arm_differences(data).items():
            write(f"  {label:<40} {e.value * 100:+5.1f} pts {_interval(e, points=True)}")
        write("\nExploratory: agreement between judges on whether they chose the correct answer (docs/analysis.md)")
        for group, measured in agreement_by_arm(rows).items():
            write(f"  {group:<40} {_agreement(measured)}")
        sandwich = accuracy.sandwich(data, alpha=shared_plan(found).alpha, margin=shared_plan(found).margin)
        if sandwich:
            write("\nExploratory: sandwiching")
            for name, e in sandwich.numbers.items():
                write(f"  {name:<40} " + (f"{e.value * 100:5.1f}% {_interval(e)}" if e.estimable else "not measured"))
            for d in sandwich.decisions:
                write(f"  {d.label}: {d.outcome}{f' ({d.reason})' if d.reason else ''}")
