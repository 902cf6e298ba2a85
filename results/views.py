import base64
import binascii

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import authenticate
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from audit.recording import record_export
from judging import exports
from judging.exports import iter_csv, model_answer_rows, model_verdict_rows, trial_rows
from judging.models import Experiment

from . import accuracy, agreement, plots, quality
from . import analysis as stats
from .attrition import attrition_report
from .forms import PRESETS, EstimatorForm
from .inference import RESAMPLED_UNITS
from .measure import verdict_records
from .services import preset_values, primary_sections, shared_plan, throughput_estimate
from .throughput import LABELS, EstimatorInputError, is_duration_in_years, output_label

PRESET_NAMES = {name for name, _ in PRESETS if name}


@staff_member_required
def throughput(request):
    data = request.GET.copy() if request.GET else None
    if data is not None and data.get("preset") in PRESET_NAMES and not any(data.get(name) for name in LABELS):
        # A preset chosen on its own fills the inputs with its numbers, shown and used; the researcher
        # then edits them (a number typed beside a preset is never silently replaced by it).
        for name, value in preset_values(data["preset"]).items():
            data[name] = repr(value)
    form = EstimatorForm(data)
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
            "figures": [(output_label(k), f, is_duration_in_years(k)) for k, f in figures.items()] if figures else None,
        },
        status=status,
    )


def _query_with(request, **changes) -> str:
    """This page's query string with ``changes`` made (for links that change one setting of the view)."""
    query = request.GET.copy()
    for name, value in changes.items():
        query[name] = value
    return query.urlencode()


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
    # Study trials by default; practice trials and attention checks exported separately (docs/onboarding.md).
    role = request.GET.get("role", exports.STUDY)
    if role not in exports.ROLES or (role != exports.STUDY and table not in exports.ROLE_TABLES):
        return JsonResponse(
            {
                "error": f"role must be one of {list(exports.ROLES)}; practice and attention rows are in the tables "
                f"{list(exports.ROLE_TABLES)}"
            },
            status=400,
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
    record_export(table if role == exports.STUDY else f"{table} ({role})", fmt, ids, actor=user)
    return exports.export_response(table, fmt, ids, role)


def _chosen_experiments(request) -> list[Experiment]:
    """The experiments named by ?experiment=ID (repeated); none when an id is not a number."""
    try:
        ids = sorted({int(x) for x in request.GET.getlist("experiment")})
    except ValueError:
        ids = []
    return list(Experiment.objects.filter(pk__in=ids).order_by("pk"))


@staff_member_required
def judge_quality_csv(request):
    """The analysis page's judge quality panel as CSV (researchers only; judges never see it)."""
    experiments = _chosen_experiments(request)
    if not experiments:
        return JsonResponse({"error": "give at least one ?experiment=ID of an existing experiment"}, status=400)
    ids = [e.pk for e in experiments]
    record_export("judge_quality", "csv", ids, actor=request.user)
    panel = quality.judge_quality(verdict_records(ids), verdict_records(ids, role="attention"))
    # The exports' CSV writer: text in chunks, and cells a spreadsheet will not run as formulas.
    response = StreamingHttpResponse(
        iter_csv(quality.panel_rows(panel), quality.PANEL_COLUMNS), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="experiments-{"-".join(map(str, ids))}-judge-quality.csv"'
    return response


@staff_member_required
def analysis(request):
    """Analysis of one or more experiments: ?experiment=ID&experiment=ID."""
    experiments = _chosen_experiments(request)
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
    model_rows = list(model_answer_rows(ids))
    context["notes"] = stats.data_warnings(rows)
    data = accuracy.Judged(rows, model_rows)
    # Data collection is over for each closed experiment; the researcher may say so of all of them sooner
    # (?closed=1: unfinished trials count as lost) or look at unfinished trials as still running (?closed=0).
    said = request.GET.get("closed")
    closed = said == "1" if said in ("0", "1") else {e.pk for e in experiments if e.status == Experiment.Status.CLOSED}
    context |= {
        "attrition": attrition_report(rows, closed=closed) if rows else None,
        # Links that change one view setting keep the others (experiments, closed, ratings scale).
        "with_closed": {value: _query_with(request, closed=value) for value in ("0", "1")},
        "with_ratings": {scale: _query_with(request, ratings=scale) for scale in ("elo", "logit")},
    }
    if len(data):
        plan = shared_plan(experiments)
        records = verdict_records(ids)
        by_arm = accuracy.by_arm(data)
        sandwich = accuracy.sandwich(data, alpha=plan.alpha, margin=plan.margin)
        calibration = stats.calibration(rows)
        context.update(
            {
                "n_judged": len(data),
                "units": RESAMPLED_UNITS,
                "primary": primary_sections(experiments, rows, model_rows),
                "by_arm": by_arm,
                "by_condition": accuracy.by_condition(data),
                "arm_differences": accuracy.arm_differences(data),
                "accuracy_plot": plots.interval_bars(
                    by_arm | accuracy.by_condition(data),
                    title="Judge accuracy by arm",
                    ylabel="share of verdicts correct",
                    reference=0.5,
                ),
                "honest_wins": accuracy.honest_wins_test(data),
                "debate_splits": accuracy.debate_splits(data),
                "sandwich": sandwich,
                "sandwich_plot": plots.interval_bars(
                    {k: v for k, v in sandwich.numbers.items() if v.estimable},
                    title="Sandwiching: accuracy by condition",
                    ylabel="share correct",
                    reference=0.5,
                )
                if sandwich
                else None,
                "calibration": calibration,
                "reliability_plot": plots.reliability_diagram(calibration, title="Reliability diagram (all judges)"),
                "calibration_by_judge": stats.calibration_by_judge(rows),
                "model_judges": stats.model_judge_accuracy(rows, list(model_verdict_rows(ids))),
                "ratings": stats.debater_ratings(rows, scale="elo" if request.GET.get("ratings") == "elo" else "logit"),
                "skill": stats.judge_skill(rows),
                "agreement": agreement.agreement_by_arm(rows),
                "quality": quality.judge_quality(records, verdict_records(ids, role="attention")),
                "quality_csv": request.GET.urlencode(),
                "quality_limits": {
                    "ceiling": quality.READING_CEILING_CHARS_PER_MINUTE,
                    "fast": quality.FAST_VERDICT_SECONDS,
                    "alpha": quality.POSITION_ALPHA,
                    "attention_share": quality.ATTENTION_PASS_SHARE,
                    "attention_min": quality.ATTENTION_MIN_CHECKS,
                    "attention_slips": quality.ATTENTION_MIN_SLIPS,
                },
                "time_rows": list(
                    zip(
                        (
                            "active seconds",
                            "words read",
                            "reading rate (words per minute: all words ÷ all minutes)",
                        ),
                        stats.time_summary(records).values(),
                    )
                ),
            }
        )
    return render(request, "results/analysis.html", context)
