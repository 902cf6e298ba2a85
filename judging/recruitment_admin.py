"""The researcher's recruitment pages in the admin (docs/recruitment.md): invite links with their seats, judges
created from a CSV, and an experiment's time and pay report with its CSV."""

from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.recording import Kind, record

from . import judge_import, pay_report, recruitment
from .exports import iter_csv
from .models import Experiment, Invite, Seat


class InviteForm(forms.ModelForm):
    completion_url = forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text=Invite._meta.get_field("completion_url").help_text,
    )

    class Meta:
        model = Invite
        fields = ["experiment", "kind", "label", "max_uses", "expires_at", "completion_code", "completion_url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "experiment" in self.fields:  # adding: only drafts take new judges
            self.fields["experiment"].queryset = Experiment.objects.filter(status=Experiment.Status.DRAFT)
            self.fields["experiment"].help_text = "A draft: the launch plans the seats' trials."
            self.fields["experiment"].error_messages["invalid_choice"] = (
                "Choose a draft experiment: a launched one's trials were planned for the judges it had then."
            )

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not self.errors:
            refusal = recruitment.invite_refusal(data["experiment"], data["max_uses"], data["expires_at"])
            if refusal:
                raise forms.ValidationError(refusal)
        return data


class SeatInline(admin.TabularInline):
    model = Seat
    fields = ["number", "judge", "participant_id", "study_id", "session_id", "taken_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    form = InviteForm
    inlines = [SeatInline]
    list_display = ["__str__", "experiment", "kind", "places_taken", "expires_at"]
    list_filter = ["kind"]
    change_form_template = "admin/judging/invite/change_form.html"
    change_list_template = "admin/judging/invite/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("experiment")

    @admin.display(description="places taken")
    def places_taken(self, obj):
        return f"{obj.seats.filter(taken_at__isnull=False).count()} of {obj.max_uses}"

    def get_readonly_fields(self, request, obj=None):
        # The experiment and the seats are fixed once made; the expiry (set it past to close the link), the label
        # and the completion code and link may change.
        return ["experiment", "kind", "max_uses", "created_at"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False  # its seats are judges with planned trials: close the link by its expiry instead

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = recruitment.invite_create(**{name: form.cleaned_data[name] for name in InviteForm.Meta.fields})
        obj.pk, obj.token, obj.created_at = created.pk, created.token, created.created_at
        obj._state.adding = False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["join_link"] = request.build_absolute_uri(reverse("join", args=[obj.token]))
            context["crowd"] = obj.kind == Invite.Kind.CROWD
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("import-judges/", view(self.import_judges), name="judging_judges_import"),
            path(
                "import-judges/passwords.csv", view(require_POST(self.passwords_csv)), name="judging_judges_passwords"
            ),
            path("pay-report/", view(self.pay_report), name="judging_pay_report"),
        ] + super().get_urls()

    def _page(self, request, template: str, status: int = 200, **context):
        return render(request, template, self.admin_site.each_context(request) | context, status=status)

    # Judges from a CSV

    def import_judges(self, request):
        if not request.user.has_perm("auth.add_user"):
            raise PermissionDenied
        form = JudgesImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload, experiment = form.cleaned_data["file"], form.cleaned_data["experiment"]
            try:
                created = judge_import.judges_create(
                    judge_import.parse_judges_csv(upload.read()), experiment=experiment
                )
            except judge_import.JudgeImportError as refusal:
                form.add_error("file", f"Nothing was created. {refusal}")
            else:
                record(
                    Kind.USER,
                    f"Created {len(created)} judges from {upload.name}"
                    + (f", judges of “{experiment.name}” (experiment {experiment.pk})" if experiment else ""),
                    judges=[c.username for c in created],
                    experiment=experiment.pk if experiment else None,
                    passwords_generated=sum(bool(c.generated_password) for c in created),
                )
                generated = [[c.username, c.generated_password] for c in created if c.generated_password]
                return self._page(
                    request,
                    "admin/judging/invite/import_done.html",
                    created=created,
                    experiment=experiment,
                    generated=generated,
                    generated_json=json.dumps(generated),
                    title="Judges created",
                )
        return self._page(
            request,
            "admin/judging/invite/import_judges.html",
            status=400 if form.errors else 200,
            form=form,
            title="Create judges from a CSV",
        )

    def passwords_csv(self, request):
        """The generated passwords the import page shows, as a CSV: posted back from that page (they are stored
        nowhere but in the accounts' hashes)."""
        if not request.user.has_perm("auth.add_user"):
            raise PermissionDenied
        try:
            pairs = [(str(name), str(password)) for name, password in json.loads(request.POST.get("generated", ""))]
        except (ValueError, TypeError):
            pairs = []
        rows = ({"username": name, "password": password} for name, password in pairs)
        response = StreamingHttpResponse(
            iter_csv(rows, {"username": "str", "password": "str"}), content_type="text/csv"
        )
        response["Content-Disposition"] = 'attachment; filename="judges-passwords.csv"'
        return response

    # Time and pay

    def pay_report(self, request):
        if not request.user.has_perm("judging.view_experiment"):
            raise PermissionDenied
        # Opened with only an experiment (the experiment list's action): the form, its rates to fill in.
        asked = "per_active_hour" in request.GET
        form = PayReportForm(request.GET if asked else None, initial=request.GET.dict())
        if not form.is_valid():
            return self._page(request, "admin/judging/invite/pay_report.html", form=form, title="Time and pay report")
        experiment = form.cleaned_data["experiment"]
        rates = pay_report.Rates(form.cleaned_data["per_active_hour"], form.cleaned_data["per_point"])
        rows = pay_report.pay_rows(experiment, rates)
        if request.GET.get("format") == "csv":
            record(
                Kind.EXPORT,
                f"Exported the time and pay report of experiment {experiment.pk}",
                table="pay",
                format="csv",
                experiments=[experiment.pk],
                per_active_hour=str(rates.per_active_hour),
                per_point=str(rates.per_point),
            )
            response = StreamingHttpResponse(iter_csv(iter(rows), pay_report.COLUMNS), content_type="text/csv")
            stamp = timezone.now().strftime("%Y%m%d-%H%M")
            response["Content-Disposition"] = f'attachment; filename="experiment-{experiment.pk}-pay-{stamp}.csv"'
            return response
        query = request.GET.copy()
        query["format"] = "csv"
        return self._page(
            request,
            "admin/judging/invite/pay_report.html",
            form=form,
            experiment=experiment,
            rows=rows,
            columns=list(pay_report.COLUMNS),
            chance=pay_report.chance_score(experiment),
            totals={name: sum(row[name] for row in rows) for name in ("base_pay", "bonus", "total_pay")},
            csv_query=query.urlencode(),
            title=f"Time and pay: {experiment.name}",
        )


class JudgesImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8: a header username,email,password (email and password optional).")
    experiment = forms.ModelChoiceField(
        queryset=Experiment.objects.filter(status=Experiment.Status.DRAFT),
        required=False,
        help_text="Optional: make them judges of this draft experiment.",
    )


class PayReportForm(forms.Form):
    experiment = forms.ModelChoiceField(queryset=Experiment.objects.all())
    per_active_hour = forms.DecimalField(
        min_value=Decimal(0), max_value=Decimal(10000), decimal_places=2, help_text="Base pay per hour of active time."
    )
    per_point = forms.DecimalField(
        min_value=Decimal(0),
        max_value=Decimal(10000),
        decimal_places=2,
        help_text="Bonus per point of score above the score of answering at 50% (docs/recruitment.md).",
    )
