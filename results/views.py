from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from .forms import EstimatorForm
from .services import throughput_estimate
from .throughput import LABELS, EstimatorInputError, output_label


@staff_member_required
def throughput(request):
    form = EstimatorForm(request.GET or None)
    inputs = figures = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            inputs, figures = throughput_estimate(
                preset=data["preset"], values={n: data.get(n) for n in LABELS},
                experiment_ids=[e.pk for e in data["experiments"]], measure=form.measure_names(),
            )
        except EstimatorInputError as exc:
            for name, message in exc.errors.items():
                form.add_error(name if name in form.fields else None, message)
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "results/throughput.html", {
        "form": form, "inputs": inputs, "title": "Human-feedback throughput estimator",
        "figures": [(output_label(k), f) for k, f in figures.items()] if figures else None,
    }, status=status)
