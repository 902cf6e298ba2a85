import argparse

from django.core.management.base import BaseCommand, CommandError

from judging import analysis_plan
from judging.models import Experiment
from judging.protocols.registry import ARMS
from results import power
from results.power_page import experiment_inputs
from results.simulation import Design, Truth, conditions_of

# Each input's option, for messages: results.power names inputs as the page's form does.
OPTIONS = {
    "arms": "--arms",
    "num_questions": "--questions",
    "judgments_per_question": "--judgments",
    "judges": "--judges",
    "model_accuracy": "--model-accuracy",
    "judge_sd": "--judge-sd",
    "question_sd": "--question-sd",
    "comparisons": "--compare",
    "alpha": "--alpha",
    "margin": "--margin",
    "target": "--target",
}


def condition_accuracy(text: str) -> tuple[str, float]:
    """``--accuracy``'s value: CONDITION=P (a condition's name may contain spaces, never "=")."""
    condition, _, value = text.rpartition("=")
    try:
        accuracy = float(value)
    except ValueError:
        accuracy = None
    if not condition.strip() or accuracy is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give CONDITION=P, e.g. debate=0.7 or 'honest consultant=0.8'")
    return condition.strip(), accuracy


class Command(BaseCommand):
    help = (
        "Power of each primary comparison at a design, and the judgments needed for 80%, by simulating the "
        "platform's own planner and tests (docs/power.md). Take the design and plan from --experiment, or give "
        "them; explicit options override the experiment's."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--experiment", type=int, metavar="ID", help="Take arms, design, comparisons, α and δ from it."
        )
        parser.add_argument(
            "--arms",
            nargs="+",
            metavar="ARM",
            help=f"Arms to mix (default: debate). One or more of: {', '.join(ARMS)}.",
        )
        parser.add_argument("--questions", type=int, help="Number of questions (default 60).")
        parser.add_argument(
            "--judgments", type=int, help="Judgments per question, each by a different judge (default 3)."
        )
        parser.add_argument("--judges", type=int, help="Number of judges (default 6).")
        parser.add_argument(
            "--accuracy",
            action="append",
            default=[],
            type=condition_accuracy,
            metavar="CONDITION=P",
            help="Assumed population accuracy of a condition, e.g. --accuracy debate=0.7 --accuracy "
            "'honest consultant=0.8' (repeat for each; conditions not given use the placeholders "
            f"{power.ASSUMED_ACCURACY}).",
        )
        parser.add_argument(
            "--model-accuracy",
            type=float,
            default=Truth.model_accuracy,
            help="Accuracy of the model alone (sandwiching's 'helpful' test; default %(default)s).",
        )
        parser.add_argument(
            "--judge-sd",
            type=float,
            default=Truth.judge_sd,
            help="How much judges differ: SD of skill on the log-odds scale (default %(default)s).",
        )
        parser.add_argument(
            "--question-sd",
            type=float,
            default=Truth.question_sd,
            help="How much questions differ: SD of difficulty on the log-odds scale (default %(default)s).",
        )
        parser.add_argument(
            "--compare",
            action="append",
            metavar="KEY",
            help="A primary comparison (repeat for a family, tested with Holm), e.g. above-chance:debate, "
            "difference:debate:consultancy, sandwich-helpful, sandwich-robust.",
        )
        parser.add_argument("--alpha", type=float, help="One-sided significance level of each test (default 0.05).")
        parser.add_argument("--margin", type=float, help="Non-inferiority margin δ of sandwich-robust (default 0.05).")
        parser.add_argument(
            "--target", type=float, default=power.TARGET, help="Power to size for (default %(default)s)."
        )
        parser.add_argument(
            "--studies", type=int, default=200, help="Simulated studies at the design (default %(default)s)."
        )
        parser.add_argument(
            "--search-studies",
            type=int,
            default=50,
            help="Simulated studies per size while searching for the judgments needed (default %(default)s).",
        )
        parser.add_argument(
            "--resamples", type=int, default=200, help="Bootstrap resamples per study (default %(default)s)."
        )
        parser.add_argument(
            "--cap", type=int, default=power.CAP, help="Largest study searched, in judgments (default %(default)s)."
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the simulated studies (default %(default)s).")

    def handle(self, *args, **options):
        values = self._inputs(options)
        for name, low in (("studies", 10), ("search_studies", 10), ("resamples", 50), ("cap", 1)):
            if options[name] < low:
                raise CommandError(f"--{name.replace('_', '-')} must be at least {low}")
        arms = tuple(values["arms"])
        # Unknown arms are left to results.power's checks, which name them.
        conditions = conditions_of([a for a in arms if a in ARMS])
        accuracy = {c: values["accuracy"].get(c, power.ASSUMED_ACCURACY.get(c)) for c in conditions}
        design = Design(arms, values["num_questions"], values["judgments_per_question"], values["judges"])
        truth = Truth(
            accuracy=accuracy,
            judge_sd=options["judge_sd"],
            question_sd=options["question_sd"],
            model_accuracy=options["model_accuracy"],
        )
        try:
            sizing = power.size_study(
                design,
                truth,
                values["comparisons"],
                alpha=values["alpha"],
                margin=values["margin"],
                studies=options["studies"],
                search_studies=options["search_studies"],
                resamples=options["resamples"],
                seed=options["seed"],
                target=options["target"],
                cap=options["cap"],
            )
        except power.PowerInputError as exc:
            raise CommandError(
                "invalid input: " + "; ".join(_option(k) + f": {m}" for k, m in exc.errors.items())
            ) from exc
        self._print(sizing, given=set(values["accuracy"]))

    def _inputs(self, options) -> dict:
        """The design and plan: the experiment's, overridden by explicit options, else the defaults."""
        values = {
            "arms": list(Design.arms),
            "num_questions": Design.num_questions,
            "judgments_per_question": Design.judgments_per_question,
            "judges": Design.judges,
            "comparisons": [],
            "alpha": analysis_plan.DEFAULT_ALPHA,
            "margin": analysis_plan.DEFAULT_MARGIN,
        }
        if options["experiment"] is not None:
            experiment = Experiment.objects.filter(pk=options["experiment"]).first()
            if experiment is None:
                raise CommandError(f"no experiment with id {options['experiment']}")
            values |= experiment_inputs(experiment)
        explicit = {
            "arms": options["arms"],
            "num_questions": options["questions"],
            "judgments_per_question": options["judgments"],
            "judges": options["judges"],
            "comparisons": options["compare"],
            "alpha": options["alpha"],
            "margin": options["margin"],
        }
        values |= {name: value for name, value in explicit.items() if value is not None}
        if not values["comparisons"]:
            values["comparisons"] = power.default_comparisons(values["arms"])
        values["accuracy"] = dict(options["accuracy"])
        unknown = [c for c in values["accuracy"] if c not in power.ASSUMED_ACCURACY]
        if unknown:
            raise CommandError(
                f"--accuracy: unknown condition {unknown[0]!r}; conditions are {', '.join(power.ASSUMED_ACCURACY)}"
            )
        return values

    def _print(self, sizing: power.Sizing, *, given: set[str]) -> None:
        design, truth, search = sizing.design, sizing.truth, sizing.search
        write = self.stdout.write
        write(
            f"Design: arms {', '.join(design.arms)}; {design.num_questions} questions x "
            f"{design.judgments_per_question} judgments = {design.num_questions * design.judgments_per_question:,} "
            f"judgments; {design.judges} judges"
        )
        assumed = ", ".join(f"{c} {p:g}" + ("" if c in given else " (placeholder)") for c, p in truth.accuracy.items())
        write(
            f"Assumed: accuracy {assumed}; model alone {truth.model_accuracy:g}; judge spread {truth.judge_sd:g}, "
            f"question spread {truth.question_sd:g} (log-odds SD)"
        )
        holm = " (Holm across them)" if len(sizing.keys) > 1 else ""
        write(
            f"Tests: one-sided at alpha {sizing.alpha:g}{holm}, delta {sizing.margin:g}, "
            f"{sizing.resamples} bootstrap resamples per study"
        )
        target = f"{search.target:.0%}"
        write("")
        write(f"{'comparison':<40} {'power at the design':>22} {'judgments for ' + target:>22} {'power there':>22}")
        for key in sizing.keys:
            at, needed = sizing.at_design[key], search.needed[key]
            size = f"{needed.judgments:,}" if needed.questions else f"> {search.cap:,}"
            write(f"{key:<40} {_power(at):>22} {size:>22} {_power(needed.power):>22}")
        write("")
        if search.questions_for_all:
            write(
                f"Every comparison at {target}: {search.questions_for_all * design.judgments_per_question:,} judgments "
                f"({search.questions_for_all:,} questions x {design.judgments_per_question}, {design.judges} judges)."
            )
            write(
                "Check, with fresh simulated studies: "
                + "; ".join(f"{k} {_power(p)}" for k, p in sizing.check.items())
                + (
                    " (short of the target by more than its Monte Carlo error: take the next size up below)"
                    if sizing.check_falls_short
                    else ""
                )
            )
        else:
            write(
                f"Adding questions alone did not bring every comparison to {target} by {search.cap:,} judgments: a "
                f"larger --cap may; where power stops rising with more questions (below), the {design.judges} judges' "
                "spread limits it and more judges are needed."
            )
        write("")
        write("Sizes simulated (power ± Monte Carlo error (studies)):")
        write(f"  {'questions':>9} {'judgments':>10}  " + "  ".join(f"{key:>22}" for key in sizing.keys))
        for questions, powers in search.tried.items():
            cells = "  ".join(f"{_power(powers[key]):>22}" for key in sizing.keys)
            write(f"  {questions:>9,} {questions * design.judgments_per_question:>10,}  {cells}")
        write(
            "Judgments needed change only the number of questions (judgments per question and judges fixed); every "
            f"planned trial judged, no attrition. {search.studies_simulated} studies simulated; ± is the Monte Carlo "
            "standard error."
        )


def _power(p: power.Power) -> str:
    return f"{p.rate:.2f} ± {p.error:.2f} ({p.studies})"


def _option(name: str) -> str:
    if name.startswith("accuracy:"):
        return f"--accuracy {name.partition(':')[2]}=P"
    return OPTIONS.get(name, name)
