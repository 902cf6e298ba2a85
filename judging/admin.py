"""Researcher admin: import questions, configure and launch experiments, watch, export."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from audit.admin import AuditedActions
from audit.recording import Kind, record, record_export

from . import analysis_plan, context_check, dashboard, dashboard_admin, exports, selectors, services
from .exports import export_response
from .importers import QuestionImportError, import_jsonl_file
from .models import Experiment, LineupMember, ModelConfig, Question, QuestionSet, Trial, Turn, Verdict
from .protocols import registry


class QuestionImportForm(forms.Form):
    set_name = forms.CharField(max_length=200, help_text="A new set, or an existing one to add to.")
    file = forms.FileField(help_text="JSONL: one question per line (see docs/question-format.md).")


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model_name", "temperature", "top_p", "max_new_tokens"]
    search_fields = ["name", "model_name"]


@admin.register(QuestionSet)
class QuestionSetAdmin(admin.ModelAdmin):
    list_display = ["name", "question_count", "source", "created_at"]
    search_fields = ["name"]
    change_list_template = "admin/judging/questionset/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_questions=Count("questions"))

    @admin.display(description="questions", ordering="n_questions")
    def question_count(self, obj):
        return obj.n_questions

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="judging_questionset_import"),
        ] + super().get_urls()

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = QuestionImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                question_set = import_jsonl_file(
                    set_name=form.cleaned_data["set_name"], lines=upload, source=f"upload: {upload.name}"
                )
            except QuestionImportError as exc:
                form.add_error("file", f"Nothing was imported. {exc}")
            else:
                count = question_set.questions.count()
                self.message_user(request, f"Imported into {question_set.name!r}; it now has {count} questions.")
                for warning in context_check.question_set_passage_warnings(question_set):
                    self.message_user(request, warning, messages.WARNING)
                return redirect("admin:judging_questionset_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Import questions (JSONL)",
            "opts": self.model._meta,
        }
        return render(request, "admin/judging/questionset/import.html", context)


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ["external_id", "question_set", "short_text", "correct_index"]
    list_filter = ["question_set"]
    search_fields = ["external_id", "text"]

    @admin.display(description="question")
    def short_text(self, obj):
        return obj.text[:80]


def _export_action(table: str, fmt: str):
    def action(modeladmin, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        record_export(table, fmt, ids)
        return export_response(table, fmt, ids)

    action.__name__ = f"export_{table}_{fmt}"
    action.short_description = f"Export {table} as {fmt.upper()}"
    action.audited = True  # records the export itself (audit.admin.AuditedActions)
    return action


class ExperimentForm(forms.ModelForm):
    conditions = forms.MultipleChoiceField(
        choices=Experiment.Arm.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=["debate"],
        help_text="Each trial is in one arm; arms are balanced per judge (Latin square) and shuffled in the queue.",
    )

    primary_comparisons = forms.MultipleChoiceField(
        choices=[(c.key, c.label) for c in analysis_plan.available_comparisons(list(Experiment.Arm.values))],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The claims this experiment is run to test, each one-sided at α (Holm across them); only those "
        "possible with the arms ticked above are accepted. Frozen at launch; everything else is exploratory.",
    )

    class Meta:
        model = Experiment
        fields = "__all__"

    # Left blank, these take their defaults (α 0.05, δ 5 points; no practice, no attention checks, feedback after
    # the experiment closes) rather than failing the form.
    DEFAULTED = ("alpha", "non_inferiority_margin", "practice_trials", "attention_rate", "feedback")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.DEFAULTED:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self):
        data = super().clean()
        for name in self.DEFAULTED:
            if name in self.fields and data.get(name) in (None, ""):
                data[name] = Experiment._meta.get_field(name).default
                setattr(self.instance, name, data[name])
        return data


# What a researcher is told when work could not be sent to the workers, and how to recover.
NOT_SENT = (
    "the work could not be sent to the workers (the message broker is unreachable). Nothing is lost: the "
    "pending turns are in the database. Once the broker is back, select the experiment and run 'Re-queue "
    "unfinished generation' (or manage.py reconcile_generation; celery beat does it every 5 minutes)."
)


# Said when a live experiment's debates are simultaneous (the field's default).
LIVE_SIMULTANEOUS = (
    "Live debates with simultaneous turns: the judge sees nothing of a round until both speeches are finished "
    "(minutes on a busy worker). Sequential turns show each speech as it is written; consider them for live "
    "experiments."
)


class LineupMemberInline(admin.TabularInline):
    """An arm's speakers (docs/lineups.md); an arm with none uses the experiment's debater model."""

    model = LineupMember
    extra = 0
    verbose_name_plural = "line-up (configurations speaking in each arm; none: the debater model)"

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == Experiment.Status.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(Experiment)
class ExperimentAdmin(AuditedActions, admin.ModelAdmin):
    form = ExperimentForm
    inlines = [LineupMemberInline]
    list_display = [
        "id",
        "name",
        "arms",
        "mode_short",
        "status",
        "turn_progress",
        "failures",
        "trial_progress",
        "launched_at",
    ]
    list_filter = ["status", "mode"]
    filter_horizontal = ["judges"]
    readonly_fields = ["status", "launched_at", "created_at"]
    actions = ["launch", "close", "analyse", "requeue", "retry_failed", "replace_failed", "pay"] + [
        _export_action(table, fmt) for table in exports.TABLES for fmt in exports.FORMATS
    ]

    def get_urls(self):
        # The live progress dashboard, beside the experiment list (judging/dashboard_admin.py).
        return dashboard_admin.urls(self) + super().get_urls()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Passages the chosen models cannot read whole are truncated when prompts are built: say so now.
        for warning in context_check.experiment_passage_warnings(form.instance):
            self.message_user(request, warning, messages.WARNING)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                turns_total=Count("trials__turns", distinct=True),
                turns_done=Count("trials__turns", filter=Q(trials__turns__status=Turn.Status.DONE), distinct=True),
                turns_failed=Count("trials__turns", filter=Q(trials__turns__status=Turn.Status.FAILED), distinct=True),
                # The study's trials: practice and attention checks are not part of its progress (docs/onboarding.md).
                trials_total=Count("trials", filter=Q(trials__role=Trial.Role.STUDY), distinct=True),
                trials_judged=Count(
                    "trials", filter=Q(trials__status=Trial.Status.JUDGED, trials__role=Trial.Role.STUDY), distinct=True
                ),
            )
        )

    @admin.display(description="arms")
    def arms(self, obj):
        return ", ".join(obj.conditions)

    @admin.display(description="mode", ordering="mode")
    def mode_short(self, obj):
        return dashboard.mode_label(obj)

    @admin.display(description="turns done")
    def turn_progress(self, obj):
        # Live trials get their turns round by round as judges go, so "0 / 0" would read as nothing to do.
        if self.mode_short(obj) != "pre-generated" and obj.status != Experiment.Status.DRAFT:
            return f"{obj.turns_done} / {obj.turns_total} (live: written as judges go)"
        return f"{obj.turns_done} / {obj.turns_total}"

    @admin.display(description="failed turns")
    def failures(self, obj):
        if obj.turns_failed:
            url = (
                reverse("admin:judging_turn_changelist")
                + f"?trial__experiment__id__exact={obj.pk}&status__exact=failed"
            )
            return format_html('<a href="{}" style="color:#ba2121">{}</a>', url, obj.turns_failed)
        return 0

    @admin.display(description="trials judged")
    def trial_progress(self, obj):
        return f"{obj.trials_judged} / {obj.trials_total}"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        debates = any(registry.PROTOCOLS[registry.ARMS[arm].protocol].two_speakers for arm in obj.conditions)
        if debates and obj.mode == Experiment.Mode.LIVE and obj.turn_style == Experiment.TurnStyle.SIMULTANEOUS:
            self.message_user(request, LIVE_SIMULTANEOUS, messages.WARNING)

    # A launched experiment's page shows these fields as words, not as the JSON they are stored as.
    LAUNCHED_DISPLAY = {
        "conditions": "arms_shown",
        "primary_comparisons": "primary_comparisons_shown",
        "planned_judgments": "planned_judgments_shown",
    }

    def _launched(self, obj) -> bool:
        return obj is not None and obj.status != Experiment.Status.DRAFT

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if self._launched(obj):
            return [self.LAUNCHED_DISPLAY.get(name, name) for name in fields]
        return fields

    ONBOARDING_FIELDS = (
        "instructions",
        "practice_trials",
        "practice_question_set",
        "qualification_accuracy",
        "attention_rate",
        "attention_question_set",
        "feedback",
    )

    def get_fieldsets(self, request, obj=None):
        fields = self.get_fields(request, obj)
        onboarding = [name for name in fields if name in self.ONBOARDING_FIELDS]
        return [
            (None, {"fields": [name for name in fields if name not in self.ONBOARDING_FIELDS]}),
            (
                "Onboarding and quality control",
                {
                    "fields": onboarding,
                    "description": "Instructions judges confirm, practice trials with the truth shown, an optional "
                    "qualification gate, and attention checks hidden among the study trials (docs/onboarding.md). "
                    "Practice trials and attention checks are never analysed; they are exported separately.",
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        # A launched experiment's design is fixed: its trials were built from it.
        if self._launched(obj):
            fields = [f.name for f in self.model._meta.fields] + ["judges", "design_balance"]
            return [self.LAUNCHED_DISPLAY.get(name, name) for name in fields]
        return self.readonly_fields

    @admin.display(description="arms")
    def arms_shown(self, obj):
        return ", ".join(Experiment.Arm(arm).label for arm in obj.conditions)

    @admin.display(description="primary comparisons (frozen at launch)")
    def primary_comparisons_shown(self, obj):
        if not obj.primary_comparisons:
            return "none declared: everything is exploratory"
        return format_html_join(
            "", "<div>{}</div>", ((analysis_plan.comparison(key).label,) for key in obj.primary_comparisons)
        )

    @admin.display(description="planned judgments")
    def planned_judgments_shown(self, obj):
        if obj.planned_judgments:
            return obj.planned_judgments
        return f"{obj.judgments_planned} (every trial: none declared)"

    @admin.display(description="design balance (achieved)")
    def design_balance(self, obj):
        lines = selectors.experiment_balance(obj)
        if not lines:
            return "no trials"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li style="color:{}">{}: {}</li>',
                (("#1d6f42" if line.balanced else "#ba2121", line.what, line.achieved) for line in lines),
            ),
        )

    def _report_delivery(self, request, delivery: services.Delivery, done: str) -> None:
        """Say what was done, and whether its work reached the workers (with the way to recover if not)."""
        if delivery.failed:
            self.message_user(request, f"{done}, but {NOT_SENT}", messages.ERROR)
        else:
            self.message_user(request, f"{done}; the work is queued for the workers." if delivery.sent else f"{done}.")

    @admin.action(description="Launch selected experiments")
    def launch(self, request, queryset):
        for experiment in queryset:
            delivery = services.Delivery()
            try:
                n = services.experiment_launch(experiment=experiment, delivery=delivery)
            except services.LaunchError as exc:
                self.message_user(request, f"{experiment.name}: {exc}", messages.ERROR)
            else:
                self._report_delivery(request, delivery, f"{experiment.name}: launched {n} trials")
                record(
                    Kind.LAUNCH,
                    f"Launched “{experiment.name}” (experiment {experiment.pk}): {n} trials",
                    experiment=experiment.pk,
                    trials=n,
                    work_queued=not delivery.failed,
                )

    @admin.action(description="Close selected experiments (no more verdicts; judges may see their results)")
    def close(self, request, queryset):
        for experiment in queryset.order_by("pk"):
            try:
                unjudged = services.experiment_close(experiment=experiment)
            except services.CloseError as exc:
                self.message_user(request, f"{experiment.name}: {exc}", messages.ERROR)
                continue
            left = f"; {unjudged} trial(s) left unjudged stay in the data as attrition" if unjudged else ""
            self.message_user(request, f"{experiment.name}: closed{left}.")
            record(
                Kind.ADMIN_ACTION,
                f"Closed “{experiment.name}” (experiment {experiment.pk}): {unjudged} trial(s) left unjudged",
                action="close",
                experiment=experiment.pk,
                unjudged=unjudged,
            )

    close.audited = True  # records each experiment it closed (above), not the selection

    @admin.action(description="Analyse selected experiments")
    def analyse(self, request, queryset):
        query = "&".join(f"experiment={pk}" for pk in queryset.values_list("pk", flat=True))
        return redirect(reverse("results:analysis") + "?" + query)

    @admin.action(description="Re-queue unfinished generation (after a broker restart or a dead worker)")
    def requeue(self, request, queryset):
        delivery = services.Delivery()
        stale = services.generation_requeue(
            experiment_ids=list(queryset.values_list("pk", flat=True)), delivery=delivery
        )
        self._report_delivery(request, delivery, f"{queryset.count()} experiment(s): {stale} stale claim(s) released")

    @admin.action(description="Retry failed turns")
    def retry_failed(self, request, queryset):
        delivery = services.Delivery()
        total = sum(services.failed_turns_retry(experiment_id=e.pk, delivery=delivery) for e in queryset)
        self._report_delivery(request, delivery, f"{total} failed turn(s) reset for another try")

    @admin.action(description="Replace failed trials (same judge, arm and sides; the failure stays in the data)")
    def replace_failed(self, request, queryset):
        for experiment in queryset:
            done = services.failed_trials_replace(experiment_id=experiment.pk)
            self._report_delivery(
                request,
                done.delivery,
                f"{experiment.name}: {done.same_question + done.new_question} failed trial(s) replaced "
                f"({done.same_question} on the same question, {done.new_question} on a new one)",
            )
            for refusal in done.refused:
                self.message_user(request, f"{experiment.name}: could not replace {refusal}", messages.WARNING)

    @admin.action(description="Time and pay report (of the first selected experiment)")
    def pay(self, request, queryset):
        return redirect(reverse("admin:judging_pay_report") + f"?experiment={queryset.order_by('pk').first().pk}")


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0
    can_delete = False
    fields = [
        "index",
        "round",
        "speaker",
        "status",
        "text",
        "tokens_in",
        "tokens_prefilled",
        "tokens_out",
        "wall_seconds",
        "passage_chars_dropped",
        "speech_end",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "experiment",
        "judge",
        "protocol",
        "condition",
        "status_shown",
        "honest_side",
        "queue_position",
        "replaces",
    ]
    list_filter = ["experiment", "status", "protocol", "condition", "judge"]
    readonly_fields = [f.name for f in Trial._meta.fields]
    inlines = [TurnInline]

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj):
        """A ready trial its judge has opened is in progress (a live one's debate goes on while they judge)."""
        if obj.status == Trial.Status.READY and obj.opened_at is not None:
            return "In progress (live)" if obj.live else "In progress"
        return obj.get_status_display()

    def has_add_permission(self, request):
        return False


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "trial",
        "index",
        "round",
        "speaker",
        "status",
        "tokens_out",
        "wall_seconds",
        "attempts",
        "passage_cut",
        "speech_end",
        "tokens_past_limit",
    ]
    list_filter = ["status", "speaker", "speech_end", "trial__experiment"]
    readonly_fields = [f.name for f in Turn._meta.fields]

    @admin.display(description="passage cut (chars)", ordering="passage_chars_dropped")
    def passage_cut(self, obj):
        """Characters of the passage left out of the prompt to fit the context window (docs/limits.md)."""
        return obj.passage_chars_dropped or ("" if obj.passage_chars_dropped is None else "none")

    def has_add_permission(self, request):
        return False


@admin.register(Verdict)
class VerdictAdmin(admin.ModelAdmin):
    list_display = ["trial", "judge", "chosen", "probability", "is_correct", "seconds_on_page", "created_at"]
    list_filter = ["trial__experiment", "judge"]
    readonly_fields = [f.name for f in Verdict._meta.fields]

    @admin.display(boolean=True, description="correct")
    def is_correct(self, obj):
        return obj.correct

    def has_add_permission(self, request):
        return False


# Invite links, judges from a CSV, the time and pay report: judging/recruitment_admin.py registers them.
from . import recruitment_admin  # noqa: E402, F401
