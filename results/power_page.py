"""The power and sample-size page (/results/power/): a form over ``results.power``, prefilled from an experiment.

The checks of the inputs live in ``results.power.input_errors``, so the page and the command
(``manage.py power_analysis``) refuse the same inputs with the same messages.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from judging import analysis_plan
from judging.models import Experiment
from judging.protocols.registry import ARMS, CONDITIONS

from . import power
from .simulation import Design, Truth, conditions_of

# A web request should answer in well under half a minute on a 2-core machine (docs/power.md has the
# timings): fewer studies per search step than at the design, a coarser bisection, and a lower cap than
# the command's. The page says how large each figure's Monte Carlo error is.
# The recommended size is checked on fresh studies only up to 60,000 simulated judgments (100 studies of 600):
# a sandwiching design of 5,000 judgments took 80 s of CPU to check; the command checks any size.
PAGE = {
    "studies": 100,
    "search_studies": 20,
    "resamples": 200,
    "cap": 5_000,
    "resolution": 0.25,
    "check_budget": 60_000,
}

ASSUMPTIONS_HELP = (
    "Accuracy: the share of verdicts you expect to be correct in each condition, over all judges and questions; "
    "only the ticked arms' conditions are used. The values shown first are placeholders, not estimates."
)

DEFAULT_DESIGN = Design()
DEFAULT_TRUTH = Truth()


def accuracy_field(condition: str) -> str:
    return "accuracy_" + condition.replace(" ", "_").replace("-", "_")


def _spread_help(sd: float, unit: str, up: str, down: str) -> str:
    up_accuracy, down_accuracy = power.spread_example(sd)
    return (
        f"How much {unit}s differ, as a standard deviation on the log-odds scale (0: not at all). For example "
        f"{sd:g}: where the average {unit} gives 70% correct verdicts, a {unit} one standard deviation {up} gives "
        f"{up_accuracy:.0%} and one {down} {down_accuracy:.0%}."
    )


class PowerForm(forms.Form):
    arms = forms.MultipleChoiceField(
        choices=[(arm.value, arm.label) for arm in ARMS.values()],
        widget=forms.CheckboxSelectMultiple,
        initial=list(DEFAULT_DESIGN.arms),
        help_text="Mixed and balanced per judge, as on the experiment form.",
    )
    num_questions = forms.IntegerField(label="Questions", initial=DEFAULT_DESIGN.num_questions)
    judgments_per_question = forms.IntegerField(
        label="Judgments per question",
        initial=DEFAULT_DESIGN.judgments_per_question,
        help_text="Each by a different judge.",
    )
    judges = forms.IntegerField(label="Judges", initial=DEFAULT_DESIGN.judges)
    model_accuracy = forms.FloatField(
        label="Accuracy of the model alone",
        initial=DEFAULT_TRUTH.model_accuracy,
        help_text="Sandwiching's model-alone baseline (used by the 'helpful' test only).",
    )
    judge_sd = forms.FloatField(
        label="Judge spread",
        initial=DEFAULT_TRUTH.judge_sd,
        help_text=_spread_help(DEFAULT_TRUTH.judge_sd, "judge", "better", "worse"),
    )
    question_sd = forms.FloatField(
        label="Question spread",
        initial=DEFAULT_TRUTH.question_sd,
        help_text=_spread_help(DEFAULT_TRUTH.question_sd, "question", "easier", "harder"),
    )
    comparisons = forms.MultipleChoiceField(
        choices=[(c.key, c.label) for c in analysis_plan.available_comparisons(list(ARMS))],
        widget=forms.CheckboxSelectMultiple,
        initial=power.default_comparisons(DEFAULT_DESIGN.arms),
        required=False,  # "choose at least one" comes from results.power, with the other checks
        help_text="The primary comparisons, tested together (Holm across them); only those possible with the "
        "arms ticked above are accepted.",
    )
    alpha = forms.FloatField(label="α", initial=analysis_plan.DEFAULT_ALPHA, help_text="One-sided, for each test.")
    margin = forms.FloatField(
        label="δ",
        initial=analysis_plan.DEFAULT_MARGIN,
        help_text="Non-inferiority margin of the 'robust' test (a share of accuracy: 0.05 = 5 points).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for condition in CONDITIONS:
            self.fields[accuracy_field(condition)] = forms.FloatField(
                label=f"Accuracy: {condition}",
                required=False,  # needed only for the arms ticked; results.power says which are missing
                initial=power.ASSUMED_ACCURACY.get(condition),
            )

    def design_fields(self):
        return [self[name] for name in ("arms", "num_questions", "judgments_per_question", "judges")]

    def assumption_fields(self):
        accuracies = [self[accuracy_field(c)] for c in CONDITIONS]
        return accuracies + [self[name] for name in ("model_accuracy", "judge_sd", "question_sd")]

    def plan_fields(self):
        return [self[name] for name in ("comparisons", "alpha", "margin")]

    def inputs(self) -> dict:
        """``results.power.size_study``'s arguments from the cleaned data."""
        data = self.cleaned_data
        arms = tuple(data["arms"])
        accuracy = {c: data[accuracy_field(c)] for c in conditions_of(arms) if data[accuracy_field(c)] is not None}
        return {
            "design": Design(arms, data["num_questions"], data["judgments_per_question"], data["judges"]),
            "truth": Truth(
                accuracy=accuracy,
                judge_sd=data["judge_sd"],
                question_sd=data["question_sd"],
                model_accuracy=data["model_accuracy"],
            ),
            "keys": data["comparisons"],
            "alpha": data["alpha"],
            "margin": data["margin"],
        }

    def add_input_errors(self, errors: dict[str, str]) -> None:
        for name, message in errors.items():
            if name.startswith("accuracy:"):
                name = accuracy_field(name.partition(":")[2])
            self.add_error(name if name in self.fields else None, message)


def experiment_inputs(experiment: Experiment) -> dict:
    """The design and analysis plan an experiment declares, by the names of ``PowerForm``'s fields."""
    arms = [a for a in experiment.conditions if a in ARMS]
    keys = list(experiment.primary_comparisons) or power.default_comparisons(arms)
    return {
        "arms": arms,
        "num_questions": experiment.num_questions,
        "judgments_per_question": experiment.judgments_per_question,
        # The judges assigned, else those who judged its trials, else the calculator's default.
        "judges": experiment.judges.count()
        or experiment.trials.values("judge").distinct().count()
        or DEFAULT_DESIGN.judges,
        "comparisons": keys,
        "alpha": experiment.alpha,
        "margin": experiment.non_inferiority_margin,
    }


@staff_member_required
def power_calculator(request):
    """Power of each comparison at a design and the judgments needed for 80%: ?experiment=ID prefills it."""
    data = request.POST if request.method == "POST" else request.GET
    initial, experiment, notes = {}, None, []
    if "experiment" in data:
        try:
            experiment = Experiment.objects.get(pk=int(data["experiment"]))
        except (ValueError, Experiment.DoesNotExist):
            notes.append(f"There is no experiment with id {data['experiment']!r}; the form shows the defaults.")
        else:
            initial = experiment_inputs(experiment)
    # Only the experiment (or nothing) given: show the form to fill in; anything else is a calculation.
    bound = any(name not in ("experiment", "csrfmiddlewaretoken") for name in data)
    form = PowerForm(data if bound else None, initial=initial)
    sizing = None
    if bound and form.is_valid():
        try:
            sizing = power.size_study(**form.inputs(), **PAGE)
        except power.PowerInputError as exc:
            form.add_input_errors(exc.errors)
    status = 400 if notes or (bound and form.errors) else 200
    return render(
        request,
        "results/power.html",
        {
            **admin.site.each_context(request),
            "title": "Power and sample size",
            "form": form,
            "form_sections": [
                ("Design", "", form.design_fields()),
                ("Assumptions", ASSUMPTIONS_HELP, form.assumption_fields()),
                ("Analysis plan", "", form.plan_fields()),
            ],
            "experiment": experiment,
            "notes": notes,
            "page": PAGE,
            **(_results(sizing) if sizing else {}),
        },
        status=status,
    )


def _results(sizing: power.Sizing) -> dict:
    """What the template shows of a sizing, in the order the comparisons were given."""
    design, search = sizing.design, sizing.search
    return {
        "sizing": sizing,
        "design_judgments": design.num_questions * design.judgments_per_question,
        "target_percent": round(100 * search.target),
        "resolution_percent": round(100 * PAGE["resolution"]),
        "judgments_for_all": (search.questions_for_all or 0) * design.judgments_per_question,
        "rows": [
            {"key": key, "label": sizing.labels[key], "at_design": sizing.at_design[key], "needed": search.needed[key]}
            for key in sizing.keys
        ],
        "tried": [
            (questions, questions * design.judgments_per_question, [powers[key] for key in sizing.keys])
            for questions, powers in search.tried.items()
        ],
    }
