import base64
import binascii

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import authenticate
from django.http import JsonResponse
from django.shortcuts import render

from judging import exports
from judging.exports import model_answer_rows, model_verdict_rows, trial_rows
from judging.models import Experiment

from . import analysis as stats
from . import plots
from .forms import EstimatorForm
from .measure import verdict_measurements
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
                preset=data["preset"],
                values={n: data.get(n) for n in LABELS},
                experiment_ids=[e.pk for e in data["experiments"]],
                measure=form.measure_names(),
            )
        except EstimatorInputError as exc:
            for name, message in exc.errors.items():
                form.add_error(name if name in form.fields else None, message)
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request,
        "results/throughput.html",
        {
            **admin.site.each_context(request),
            "form": form,
            "inputs": inputs,
            "title": "Human-feedback throughput estimator",
            "figures": [(output_label(k), f) for k, f in figures.items()] if figures else None,
        },
        status=status,
    )


def _basic_auth_user(request):
    """The user named by an HTTP Basic Authorization header, if its password is right."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        username, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return authenticate(request, username=username, password=password)


def export(request):
    """Exports for scripts: ``curl -u researcher:PASSWORD '.../results/export/?experiment=1&table=trials&format=csv'``.

    Researchers (staff) only. A logged-in judge gets 403; no or wrong credentials get 401.
    """
    user = request.user if request.user.is_authenticated else _basic_auth_user(request)
    if user is None:
        response = JsonResponse({"error": "authentication required (session or HTTP Basic)"}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="debate platform exports"'
        return response
    if not user.is_staff:
        return JsonResponse({"error": "exports are for researchers only"}, status=403)
    table, fmt = request.GET.get("table", "trials"), request.GET.get("format", "csv")
    if table not in exports.TABLES or fmt not in exports.FORMATS:
        return JsonResponse(
            {"error": f"table must be one of {list(exports.TABLES)}, format one of {list(exports.FORMATS)}"}, status=400
        )
    try:
        ids = sorted({int(x) for x in request.GET.getlist("experiment")})
    except ValueError:
        return JsonResponse({"error": "experiment must be an integer id"}, status=400)
    if not ids:
        return JsonResponse({"error": "give at least one ?experiment=ID"}, status=400)
    found = set(Experiment.objects.filter(pk__in=ids).values_list("pk", flat=True))
    if missing := [i for i in ids if i not in found]:
        return JsonResponse({"error": f"no experiment with id {missing[0]}"}, status=404)
    return exports.export_response(table, fmt, ids)


@staff_member_required
def analysis(request):
    """Analysis of one or more experiments: ?experiment=ID&experiment=ID."""
    try:
        ids = sorted({int(x) for x in request.GET.getlist("experiment")})
    except ValueError:
        ids = []
    experiments = list(Experiment.objects.filter(pk__in=ids))
    context = {
        **admin.site.each_context(request),
        "title": "Analysis",
        "experiments": experiments,
        "all_experiments": Experiment.objects.all(),
    }
    if not experiments:
        context["notes"] = ["Choose one or more experiments to analyse."]
        return render(request, "results/analysis.html", context)
    ids = [e.pk for e in experiments]
    rows = list(trial_rows(ids))
    context["notes"] = stats.data_warnings(rows)
    if stats.judged(rows):
        accuracy = stats.accuracy_by_protocol(rows)
        sandwich = stats.sandwich_summary(rows, list(model_answer_rows(ids)))
        if sandwich.get("numbers"):
            context["sandwich_plot"] = plots.interval_bars(
                sandwich["numbers"], title="Sandwiching: accuracy by condition", ylabel="share correct", reference=0.5
            )
        position = stats.honest_win_rate_by_position(rows)
        calibration = stats.calibration(rows)
        context.update(
            {
                "n_judged": len(stats.judged(rows)),
                "accuracy": accuracy,
                "accuracy_plot": plots.interval_bars(
                    accuracy, title="Judge accuracy by protocol", ylabel="share of verdicts correct", reference=0.5
                ),
                "position": position,
                "position_plot": plots.interval_bars(
                    position,
                    title="Honest debater win rate by answer position",
                    ylabel="honest side chosen",
                    reference=0.5,
                )
                if position
                else None,
                "by_model": stats.honest_win_rate_by_model(rows),
                "calibration": calibration,
                "reliability_plot": plots.reliability_diagram(calibration, title="Reliability diagram (all judges)"),
                "calibration_by_judge": stats.calibration_by_judge(rows),
                "sandwich": stats.sandwich_summary(rows, list(model_answer_rows(ids))),
                "model_judges": stats.model_judge_accuracy(rows, list(model_verdict_rows(ids))),
                "ratings": stats.debater_ratings(rows),
                "skill": stats.judge_skill(rows),
                "time": stats.time_summary(verdict_measurements(ids)),
            }
        )
    return render(request, "results/analysis.html", context)
