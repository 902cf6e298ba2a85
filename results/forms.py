from django import forms

from judging.models import Experiment

from .throughput import DEFAULTS, LABELS, MEASURABLE

PRESETS = [
    ("", "Custom (the numbers below)"),
    ("back-of-envelope", "Back-of-envelope: 250 wpm, 500-word pages, 10M readers, 2 tokens/word, 2,000 h/year"),
    ("back-of-envelope-quoted", "Back-of-envelope as quoted: the same, at the ~333 h/year that give 1e11 pages"),
]


class EstimatorForm(forms.Form):
    preset = forms.ChoiceField(choices=PRESETS, required=False)
    experiments = forms.ModelMultipleChoiceField(
        queryset=Experiment.objects.all(),
        required=False,
        help_text="Measure the ticked inputs from these experiments' verdicts and turns.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in LABELS.items():
            # Presence and range checks live in throughput (build_inputs, Inputs.validate),
            # so the page and the command report the same errors, and a preset needs none.
            self.fields[name] = forms.FloatField(label=label, required=False, initial=DEFAULTS.get(name))
            if name in MEASURABLE:
                self.fields[f"measure_{name}"] = forms.BooleanField(required=False, label="measure")

    def measure_names(self) -> list[str]:
        return [n for n in MEASURABLE if self.cleaned_data.get(f"measure_{n}")]

    def input_rows(self):
        """(input field, measure checkbox or None) pairs, for the template."""
        return [(self[name], self[f"measure_{name}"] if name in MEASURABLE else None) for name in LABELS]
