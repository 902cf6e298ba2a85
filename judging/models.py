import hashlib
import random
import secrets
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from . import analysis_plan, baseline_verdicts, lineups
from .protocols import registry
from .protocols.prompts import (
    DEFAULT_CONSULTANT_SYSTEM_PROMPT,
    DEFAULT_CONSULTANT_TEMPLATE,
    DEFAULT_DEBATER_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    TemplateError,
    check_template,
)


def new_seed() -> int:
    return random.SystemRandom().randrange(2**31)


def default_conditions() -> list[str]:
    return [Arm.DEBATE]


def _choices(name: str, entries) -> type[models.TextChoices]:
    """TextChoices made from the protocol registry, the one definition of protocols, arms and conditions."""
    return models.TextChoices(
        name, [(value.upper().replace("-", "_").replace(" ", "_"), (value, label)) for value, label in entries]
    )


# What an experiment mixes, each balanced per judge (Latin square).
Arm = _choices("Arm", [(arm.value, arm.label) for arm in registry.ARMS.values()])
# What a trial is in: its arm made concrete (a consultancy trial has an honest or a dishonest consultant).
Condition = _choices("Condition", [(condition, condition) for condition in registry.CONDITIONS])
Protocol = _choices("Protocol", [(p.name, p.label) for p in registry.PROTOCOLS.values()])
SIDES = [("A", "A"), ("B", "B")]
SPEAKERS = [("A", "Debater A"), ("B", "Debater B"), ("judge", "Judge")]


def _in(field: str, choices) -> models.Q:
    return models.Q(**{f"{field}__in": [value for value, _ in choices]})


def _probability_or_null(field: str) -> models.Q:
    """A probability, or empty (a baseline row scored in one answer order only)."""
    return models.Q(**{f"{field}__isnull": True}) | models.Q(**{f"{field}__gte": 0, f"{field}__lte": 1})


def adapter_digest(path: str) -> str | None:
    """sha256 over an adapter folder's files (names and contents, in name order); None where this
    machine cannot read it (an adapter kept on the workers only)."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class Backend(models.TextChoices):
    TRANSFORMERS = "transformers", "transformers (local weights)"
    OPENAI = "openai", "OpenAI-compatible server (vLLM, TGI, transformers serve)"


class ModelConfig(models.Model):
    """A configured model: which weights, how to sample, and how it is prompted."""

    Backend = Backend

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=30, choices=Backend.choices, default=Backend.TRANSFORMERS)
    model_name = models.CharField(
        max_length=500,
        help_text="A Hugging Face model id, a local model folder, or a bundled short name (smollm2-135m-instruct).",
    )
    api_base = models.CharField(
        max_length=500,
        blank=True,
        help_text="OpenAI-compatible backend: the server's base URL, e.g. http://gpu-host:8000/v1 "
        "(API key from DEBATE_OPENAI_API_KEY).",
    )
    adapter_path = models.CharField(
        max_length=500,
        blank=True,
        help_text="transformers backend: a LoRA adapter folder (peft) loaded on the model, e.g. one made by "
        "manage.py train_adversary.",
    )
    temperature = models.FloatField(default=0.7, help_text="0 means greedy decoding.")
    top_p = models.FloatField(default=0.95)
    repetition_penalty = models.FloatField(
        default=1.0, help_text="Above 1 discourages repetition (1.1-1.2 helps small models that loop); 1 = off."
    )
    max_new_tokens = models.PositiveIntegerField(default=256)
    context_window = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens the model reads, prompt and speech together. Blank: the model's own (transformers: its "
        "config and tokenizer; a server: the max_model_len its /models lists). Prompts are fitted to it by "
        "truncating the passage (docs/limits.md).",
    )
    system_prompt = models.TextField(
        blank=True, default=DEFAULT_SYSTEM_PROMPT, help_text="May use the same placeholders as the prompt template."
    )
    prompt_template = models.TextField(
        default=DEFAULT_DEBATER_TEMPLATE,
        help_text="Placeholders: {name} {opponent_name} {question} {my_answer} {opponent_answer} "
        "{passage} {transcript} {round} {rounds} {char_limit}",
    )
    best_of_n = models.PositiveIntegerField(
        default=1, help_text="Sample N candidate turns and keep the one the scoring model rates most convincing."
    )
    best_of_n_judge = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Scoring model for best-of-N: its probability for the debater's answer after reading the "
        "transcript with the candidate (default: this model).",
    )
    queue = models.CharField(
        max_length=100,
        default="generation",
        help_text="Celery queue for this model's work. Start its workers with -Q this-name, so a worker only "
        "ever loads the models it was started for (one worker per GPU; see README).",
    )
    consultant_system_prompt = models.TextField(blank=True, default=DEFAULT_CONSULTANT_SYSTEM_PROMPT)
    consultant_prompt_template = models.TextField(
        default=DEFAULT_CONSULTANT_TEMPLATE, help_text="Used in consultancy trials; same placeholders."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model configuration"
        # The rules clean() explains to a person, kept by the database for every other writer.
        constraints = [
            models.CheckConstraint(condition=_in("backend", Backend.choices), name="modelconfig_backend_known"),
            models.CheckConstraint(condition=models.Q(temperature__gte=0), name="modelconfig_temperature_not_negative"),
            models.CheckConstraint(condition=models.Q(top_p__gt=0, top_p__lte=1), name="modelconfig_top_p_in_0_1"),
            models.CheckConstraint(condition=models.Q(repetition_penalty__gt=0), name="modelconfig_penalty_positive"),
            models.CheckConstraint(condition=models.Q(max_new_tokens__gte=1), name="modelconfig_max_new_tokens"),
            models.CheckConstraint(condition=models.Q(best_of_n__gte=1), name="modelconfig_best_of_n"),
            models.CheckConstraint(
                condition=models.Q(best_of_n=1) | models.Q(temperature__gt=0), name="modelconfig_best_of_n_samples"
            ),
            models.CheckConstraint(
                condition=~models.Q(backend="openai") | ~models.Q(api_base=""), name="modelconfig_openai_has_api_base"
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        for field in ("system_prompt", "prompt_template", "consultant_system_prompt", "consultant_prompt_template"):
            try:
                check_template(getattr(self, field))
            except TemplateError as exc:
                errors[field] = str(exc)
        if self.temperature is not None and self.temperature < 0:
            errors["temperature"] = "must be 0 or more"
        if self.top_p is not None and not 0 < self.top_p <= 1:
            errors["top_p"] = "must be in (0, 1]"
        if self.queue and not all(c.isalnum() or c in "-_." for c in self.queue):
            errors["queue"] = "letters, digits, '-', '_' and '.' only"
        if self.backend == self.Backend.OPENAI and not self.api_base:
            errors["api_base"] = "an OpenAI-compatible model needs the server's base URL"
        if self.best_of_n is not None and self.best_of_n < 1:
            errors["best_of_n"] = "at least 1 (1: no best-of-N)"
        elif self.best_of_n is not None and self.best_of_n > 1 and not self.temperature:
            errors["best_of_n"] = "best-of-N needs a temperature above 0, or every candidate is the same"
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            errors["repetition_penalty"] = "must be above 0"
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            errors["max_new_tokens"] = "must be at least 1"
        if errors:
            raise ValidationError(errors)

    def provenance(self) -> dict:
        """Everything that decides what this configuration generates, as it is now: its settings, its
        prompts, and a hash of its adapter's files (experiment_launch freezes this per experiment)."""
        return self.settings_snapshot() | {
            "queue": self.queue,
            "system_prompt": self.system_prompt,
            "prompt_template": self.prompt_template,
            "consultant_system_prompt": self.consultant_system_prompt,
            "consultant_prompt_template": self.consultant_prompt_template,
            "adapter_sha256": adapter_digest(self.adapter_path) if self.adapter_path else None,
            "best_of_n_judge_config": self.best_of_n_judge.provenance() if self.best_of_n_judge_id else None,
        }

    def settings_snapshot(self) -> dict:
        """What is recorded on every turn this configuration generates."""
        return {
            "config_id": self.pk,
            "config_name": self.name,
            "backend": self.backend,
            "model_name": self.model_name,
            "api_base": self.api_base or None,
            "adapter_path": self.adapter_path or None,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "max_new_tokens": self.max_new_tokens,
            "best_of_n": self.best_of_n,
            "best_of_n_judge": self.best_of_n_judge.name if self.best_of_n_judge_id else None,
        }


class QuestionSet(models.Model):
    name = models.CharField(max_length=200, unique=True)
    source = models.CharField(max_length=500, blank=True, help_text="Where the questions came from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Question(models.Model):
    question_set = models.ForeignKey(QuestionSet, on_delete=models.CASCADE, related_name="questions")
    external_id = models.CharField(max_length=200, help_text="The id given in the imported file.")
    text = models.TextField()
    choices = models.JSONField(help_text="List of answer strings.")
    correct_index = models.PositiveIntegerField()
    passage = models.TextField(blank=True, help_text="Hidden from judges; debaters may read it.")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["question_set", "id"]
        constraints = [
            models.UniqueConstraint(fields=["question_set", "external_id"], name="unique_question_id_per_set"),
        ]

    def __str__(self):
        return f"{self.external_id}: {self.text[:60]}"


class TurnStyle(models.TextChoices):
    SIMULTANEOUS = "simultaneous", "Simultaneous (debaters do not see each other's speech of the same round)"
    SEQUENTIAL = "sequential", "Sequential (the second speaker sees the first)"


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    LAUNCHED = "launched", "Launched"
    # No more trials are opened or judged; judges may see their results (feedback after close).
    CLOSED = "closed", "Closed"


class Feedback(models.TextChoices):
    AFTER_CLOSE = "after_close", "After the experiment is closed"
    IMMEDIATE = "immediate", "Right after each verdict"


class TrialRole(models.TextChoices):
    STUDY = "study", "Study trial"
    # Practice and attention checks are judged like any trial but never analysed (exported separately).
    PRACTICE = "practice", "Practice (the truth and score shown after the verdict)"
    ATTENTION = "attention", "Attention check (an easy question with a known answer, looks like any trial)"


class Mode(models.TextChoices):
    PREGENERATED = "pregenerated", "Pre-generated (all rounds generated before judging)"
    LIVE = "live", "Live (generated while the judge watches; the judge may ask questions)"


class Pairing(models.TextChoices):
    SELF_PLAY = lineups.SELF_PLAY, "Self-play (each debater argues against itself)"
    ROUND_ROBIN = lineups.ROUND_ROBIN, "Round-robin (every honest debater against every adversary, itself included)"
    CROSS_PLAY = lineups.CROSS_PLAY, "Cross-play (every honest debater against every other adversary)"


class Experiment(models.Model):
    TurnStyle = TurnStyle
    Status = ExperimentStatus
    Mode = Mode
    Arm = Arm

    name = models.CharField(max_length=200, unique=True)
    conditions = models.JSONField(
        default=default_conditions,
        help_text="Arms to mix, balanced per judge: debate, consultancy, naive, assisted-honest, assisted-misleading.",
    )
    question_set = models.ForeignKey(QuestionSet, on_delete=models.PROTECT, related_name="experiments")
    num_questions = models.PositiveIntegerField(default=10, help_text="Questions sampled from the set.")
    judgments_per_question = models.PositiveIntegerField(
        default=1, help_text="Each question is judged by this many different judges (one trial each)."
    )
    mode = models.CharField(
        max_length=20,
        choices=Mode.choices,
        default=Mode.PREGENERATED,
        help_text="For debate and consultancy; sandwiching trials are always live.",
    )
    rounds = models.PositiveIntegerField(default=2, help_text="Maximum rounds (all of them when pre-generated).")
    min_rounds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Live: the judge may end after this many rounds (blank: all rounds)."
    )
    extra_round_after_flip = models.BooleanField(
        default=False, help_text="Live: if the judge's leaning changes side, one more round is required before ending."
    )
    turn_style = models.CharField(max_length=20, choices=TurnStyle.choices, default=TurnStyle.SIMULTANEOUS)
    char_limit = models.PositiveIntegerField(
        default=750, help_text="Per-turn character limit (consultants get twice this, as published)."
    )
    quote_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=250,
        help_text="Characters of new verified quotes a speech may use (blank: no limit). See docs/quotes.md.",
    )
    debater_model = models.ForeignKey(
        ModelConfig,
        on_delete=models.PROTECT,
        related_name="experiments",
        help_text="Speaks in every arm whose line-up names nobody (and is the default scoring model).",
    )
    pairing = models.CharField(
        max_length=20,
        choices=Pairing.choices,
        default=Pairing.SELF_PLAY,
        help_text="How a debate arm's line-up is paired (docs/lineups.md); every pairing gets an equal share.",
    )
    avoid_reexposure = models.BooleanField(
        default=False,
        help_text="Never give a judge a question they were given in another experiment on the same question set.",
    )
    scoring_rule = models.CharField(
        max_length=20,
        default="log",
        choices=[("log", "Log score"), ("quadratic", "Quadratic (Brier) score"), ("spherical", "Spherical score")],
        help_text="Proper scoring rule shown to judges and stored with each verdict (docs/scoring.md).",
    )
    round_penalty = models.FloatField(default=0.0, help_text="Subtracted from the score for each round spoken.")
    judges = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="judged_experiments", blank=True)
    seed = models.BigIntegerField(
        default=new_seed,
        help_text="Seeds question sampling and all per-trial randomisation; recorded for reproducibility.",
    )
    # The analysis plan (judging.analysis_plan): declared before launch, frozen by it.
    primary_comparisons = models.JSONField(
        default=list,
        blank=True,
        help_text="The claims this experiment is run to test; everything else is reported as exploratory.",
    )
    alpha = models.FloatField(
        default=analysis_plan.DEFAULT_ALPHA, help_text="Significance level of each primary test (Holm across them)."
    )
    non_inferiority_margin = models.FloatField(
        default=analysis_plan.DEFAULT_MARGIN,
        help_text="δ: how far (share of accuracy) a misleading assistant may pull judges below the judge alone "
        "and still count as robust.",
    )
    planned_judgments = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Verdicts the primary tests wait for before deciding (blank: every trial). Size it with the "
        "power calculator.",
    )
    # Onboarding and quality control (docs/onboarding.md): judges read the instructions, practise with the
    # truth shown, may have to qualify, and meet attention checks among their study trials.
    instructions = models.TextField(
        blank=True,
        help_text="What every judge reads and confirms before their first trial (blank: the protocol's own "
        "explanation only). Plain text; shown escaped.",
    )
    practice_trials = models.PositiveIntegerField(
        default=0,
        help_text="Practice trials per judge, first in their queue, each followed by the truth and the score. "
        "Not analysed; exported separately.",
    )
    practice_question_set = models.ForeignKey(
        QuestionSet,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Where practice questions come from (blank: the experiment's set, questions not in the study).",
    )
    qualification_accuracy = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of practice trials a judge must answer correctly to go on to the study (blank: no gate). "
        "A judge below it is thanked and their study trials are withdrawn.",
    )
    attention_rate = models.FloatField(
        default=0.0,
        help_text="Share of each judge's study queue given to attention checks (0: none). Not analysed; shown in "
        "the judge quality panel.",
    )
    attention_question_set = models.ForeignKey(
        QuestionSet,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Easy questions with unambiguous answers for attention checks (needed when the rate is above 0).",
    )
    feedback = models.CharField(
        max_length=20,
        choices=Feedback.choices,
        default=Feedback.AFTER_CLOSE,
        help_text="When judges see their verdicts, the truth and their score (practice trials: always at once).",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)

    # What the experiment ran with, frozen at launch (experiment_launch): configurations with their
    # prompts and adapter hashes, the design, the platform's version. Editing a configuration later
    # never changes it; exports read it.
    provenance = models.JSONField(default=dict, blank=True, editable=False)

    PLAN_FIELDS = ("primary_comparisons", "alpha", "non_inferiority_margin", "planned_judgments")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(rounds__gte=1), name="experiment_rounds_at_least_1"),
            models.CheckConstraint(condition=models.Q(num_questions__gte=1), name="experiment_questions_at_least_1"),
            models.CheckConstraint(
                condition=models.Q(judgments_per_question__gte=1), name="experiment_judgments_at_least_1"
            ),
            models.CheckConstraint(condition=models.Q(char_limit__gte=50), name="experiment_char_limit_at_least_50"),
            models.CheckConstraint(condition=models.Q(round_penalty__gte=0), name="experiment_round_penalty"),
            models.CheckConstraint(
                condition=models.Q(min_rounds__isnull=True)
                | models.Q(min_rounds__gte=1, min_rounds__lte=models.F("rounds")),
                name="experiment_min_rounds_within_rounds",
            ),
            models.CheckConstraint(condition=_in("mode", Mode.choices), name="experiment_mode_known"),
            models.CheckConstraint(condition=_in("pairing", Pairing.choices), name="experiment_pairing_known"),
            models.CheckConstraint(condition=_in("status", ExperimentStatus.choices), name="experiment_status_known"),
            models.CheckConstraint(condition=_in("turn_style", TurnStyle.choices), name="experiment_turn_style"),
            models.CheckConstraint(
                condition=models.Q(scoring_rule__in=["log", "quadratic", "spherical"]), name="experiment_scoring_rule"
            ),
            models.CheckConstraint(condition=models.Q(alpha__gt=0, alpha__lte=0.2), name="experiment_alpha"),
            models.CheckConstraint(
                condition=models.Q(non_inferiority_margin__gte=0, non_inferiority_margin__lte=0.5),
                name="experiment_non_inferiority_margin",
            ),
            models.CheckConstraint(
                condition=models.Q(qualification_accuracy__isnull=True)
                | models.Q(qualification_accuracy__gt=0, qualification_accuracy__lte=1, practice_trials__gte=1),
                name="experiment_qualification_needs_practice",
            ),
            models.CheckConstraint(
                condition=models.Q(attention_rate__gte=0, attention_rate__lte=0.5), name="experiment_attention_rate"
            ),
            models.CheckConstraint(condition=_in("feedback", Feedback.choices), name="experiment_feedback_known"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.rounds is not None and self.rounds < 1:
            errors["rounds"] = "at least one round"
        if self.num_questions is not None and self.num_questions < 1:
            errors["num_questions"] = "at least one question"
        if self.char_limit is not None and self.char_limit < 50:
            errors["char_limit"] = "at least 50 characters"
        if self.judgments_per_question is not None and self.judgments_per_question < 1:
            errors["judgments_per_question"] = "at least one"
        arms = self.conditions if isinstance(self.conditions, list) else []
        if not arms or any(a not in Arm.values for a in arms) or len(set(arms)) != len(arms):
            errors["conditions"] = f"choose one or more distinct arms from: {', '.join(Arm.values)}"
        if self.round_penalty is not None and self.round_penalty < 0:
            errors["round_penalty"] = "0 or more"
        if self.min_rounds is not None and self.rounds is not None and not 1 <= self.min_rounds <= self.rounds:
            errors["min_rounds"] = "between 1 and the number of rounds"
        if self.question_set_id and self.num_questions:
            available = self.question_set.questions.count()
            if self.num_questions > available:
                errors["num_questions"] = f"the question set has only {available} questions"
        errors |= self._onboarding_errors()
        trials = (self.num_questions or 0) * (self.judgments_per_question or 0)
        errors |= analysis_plan.plan_errors(
            arms=arms,
            primary=self.primary_comparisons,
            alpha=self.alpha,
            margin=self.non_inferiority_margin,
            planned_judgments=self.planned_judgments,
            trials=trials,
        )
        if changed := self.changed_plan_fields():
            errors |= {name: self.plan_frozen_reason() for name in changed}
        if errors:
            raise ValidationError(errors)

    def _onboarding_errors(self) -> dict[str, str]:
        """Practice, qualification and attention checks that cannot work as set (docs/onboarding.md)."""
        errors = {}
        if self.qualification_accuracy is not None:
            if not 0 < self.qualification_accuracy <= 1:
                errors["qualification_accuracy"] = "a share above 0 and at most 1 (e.g. 0.75), or blank for no gate"
            elif not self.practice_trials:
                errors["qualification_accuracy"] = "a qualification needs at least one practice trial to decide on"
        if self.attention_rate is not None:
            if not 0 <= self.attention_rate <= 0.5:
                errors["attention_rate"] = "a share from 0 to 0.5 of each judge's study trials"
            elif self.attention_rate > 0 and self.attention_question_set_id is None:
                errors["attention_question_set"] = "attention checks need a set of easy questions with known answers"
        practice_set = self.practice_question_set_id or self.question_set_id
        if self.practice_trials and practice_set:
            available = Question.objects.filter(question_set_id=practice_set).count()
            if practice_set == self.question_set_id:
                available -= self.num_questions or 0  # the study's questions are never practised on
            if available < self.practice_trials:
                errors["practice_trials"] = (
                    f"the practice question set has {max(available, 0)} question(s) to practise on; "
                    f"each judge needs {self.practice_trials}"
                )
        return errors

    def plan_frozen_reason(self) -> str:
        return (
            f"the analysis plan was frozen when the experiment was launched ({self.launched_at:%Y-%m-%d %H:%M} UTC): "
            "a plan changed after seeing data is no longer a plan"
        )

    def changed_plan_fields(self) -> list[str]:
        """Plan fields that differ from the stored ones of a launched experiment (may not be saved)."""
        if self.pk is None:
            return []
        stored = Experiment.objects.filter(pk=self.pk).exclude(status=ExperimentStatus.DRAFT).values(*self.PLAN_FIELDS)
        stored = stored.first()
        if stored is None:
            return []
        return [name for name in self.PLAN_FIELDS if getattr(self, name) != stored[name]]

    def save(self, *args, **kwargs):
        # Any path (admin, shell, a script) is refused, not only the form: pre-registration is the point.
        if changed := self.changed_plan_fields():
            raise ValidationError({name: self.plan_frozen_reason() for name in changed})
        super().save(*args, **kwargs)

    @property
    def judgments_planned(self) -> int:
        """The verdicts the primary tests wait for: as declared, or every trial."""
        return self.planned_judgments or self.num_questions * self.judgments_per_question

    def verdict_collection_over(self) -> str:
        """Why no more study verdicts can come, or "" while some may (the primary tests then decide on the
        verdicts there are: skipped and withdrawn trials are never judged, so the planned size may never come)."""
        if self.status == ExperimentStatus.DRAFT:
            return ""
        if self.status == ExperimentStatus.CLOSED:
            # Said, so that closing early, when the results looked good, shows on the page.
            unjudged = self.trials.study().may_still_be_judged().count()
            return (
                f"the experiment was closed with {unjudged} study trial(s) unjudged"
                if unjudged
                else "the experiment is closed"
            )
        if not self.trials.study().may_still_be_judged().exists():
            return "every study trial has ended (judged, skipped, withdrawn, or failed and replaced)"
        return ""


class LineupRole(models.TextChoices):
    BOTH = lineups.BOTH, "Either side"
    HONEST = lineups.HONEST, "Honest side only"
    ADVERSARY = lineups.ADVERSARY, "Wrong answer's side only"


# The group whose members may be named in line-ups and write speeches (judging/debater_views.py).
DEBATERS_GROUP = "debaters"


class LineupMember(models.Model):
    """A configuration, or a person, that speaks in one arm of an experiment (its line-up; judging.lineups)."""

    Role = LineupRole

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="lineup")
    arm = models.CharField(max_length=40, choices=Arm.choices)
    model_config = models.ForeignKey(
        ModelConfig, null=True, blank=True, on_delete=models.PROTECT, related_name="lineup_memberships"
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lineup_memberships",
        limit_choices_to={"groups__name": DEBATERS_GROUP},
        help_text="A human debater (a user in the 'debaters' group) instead of a configuration: debate and "
        "consultancy arms only. Never shown to judges.",
    )
    role = models.CharField(
        max_length=20,
        choices=LineupRole.choices,
        default=LineupRole.BOTH,
        help_text="Debate arms: which side this configuration may argue (single speakers take either).",
    )

    class Meta:
        ordering = ["experiment", "arm", "id"]
        verbose_name = "line-up member"
        constraints = [
            models.UniqueConstraint(fields=["experiment", "arm", "model_config"], name="one_lineup_entry_per_config"),
            models.UniqueConstraint(fields=["experiment", "arm", "person"], name="one_lineup_entry_per_person"),
            models.CheckConstraint(
                condition=models.Q(model_config__isnull=True, person__isnull=False)
                | models.Q(model_config__isnull=False, person__isnull=True),
                name="lineup_member_config_or_person",
            ),
            models.CheckConstraint(condition=_in("arm", Arm.choices), name="lineup_arm_known"),
            models.CheckConstraint(condition=_in("role", LineupRole.choices), name="lineup_role_known"),
        ]

    def __str__(self):
        return f"{self.model_config or self.person} in {self.arm} ({self.role})"

    def clean(self):
        if (self.model_config_id is None) == (self.person_id is None):
            raise ValidationError("choose a configuration or a person (not both)")

    def as_member(self) -> lineups.Member:
        return lineups.Member(self.model_config_id, self.role, person=self.person_id)


def _person_on_side(answer: str) -> models.ForeignKey:
    """A trial's human debater on one side (empty: a configuration speaks there, or nobody)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=f"The person arguing for {answer} (a human debater). Never shown to the judge.",
    )


class TrialStatus(models.TextChoices):
    GENERATING = "generating", "Generating"
    READY = "ready", "Ready to judge"
    JUDGED = "judged", "Judged"
    FAILED = "failed", "Generation failed"
    SKIPPED = "skipped", "Skipped by the judge"
    # The judge did not qualify on the practice trials: their study trials are never shown (attrition).
    WITHDRAWN = "withdrawn", "Withdrawn (the judge did not qualify)"


# A judge's reason for skipping a trial: a short sentence, not an essay.
SKIP_REASON_MAX = 500


class TrialQuerySet(models.QuerySet):
    def study(self):
        """The trials the analysis reads: neither practice nor attention checks."""
        return self.filter(role=TrialRole.STUDY)

    def may_still_be_judged(self):
        """Trials that may yet get a verdict: being prepared or ready; failed and not replaced (the researcher
        may still replace them)."""
        return self.filter(
            models.Q(status__in=[TrialStatus.READY, TrialStatus.GENERATING])
            | models.Q(status=TrialStatus.FAILED, replacement__isnull=True)
        )

    def practice_to_answer(self):
        """Practice trials still to be answered: being prepared or ready; and, where the experiment decides a
        qualification on them, failed and not replaced yet (the decision waits for the replacement, so it is
        never made on fewer practice trials than planned, nor after a study trial was judged)."""
        unreplaced_failure = models.Q(
            status=TrialStatus.FAILED, replacement__isnull=True, experiment__qualification_accuracy__isnull=False
        )
        return self.filter(
            models.Q(status__in=[TrialStatus.READY, TrialStatus.GENERATING]) | unreplaced_failure,
            role=TrialRole.PRACTICE,
        )

    def queue_of(self, judge):
        """The judge's queue in the order its trials are judged; only the first may be opened.

        Ready trials of launched experiments, experiments in launch order, each by its planned
        (shuffled) ``queue_position``, so judges cannot choose what to judge. A trial the judge has
        already opened comes first: one planned earlier that became ready later (its generation was
        slow, or it replaces a failed trial) waits until the judge finishes the one in progress.
        """
        ready = self.filter(judge=judge, status=TrialStatus.READY, experiment__status=ExperimentStatus.LAUNCHED)
        # Practice comes first (docs/onboarding.md): while one of the judge's practice trials in an experiment is
        # left to answer, none of their other trials there is offered, so their qualification is decided before
        # any study trial.
        practice_left = Trial.objects.filter(experiment=models.OuterRef("experiment"), judge=judge).practice_to_answer()
        ready = ready.exclude(~models.Q(role=TrialRole.PRACTICE) & models.Exists(practice_left))
        opened_first = models.F("opened_at").asc(nulls_last=True)
        return ready.order_by(opened_first, "experiment__launched_at", "experiment_id", "queue_position", "id")


class Trial(models.Model):
    """One debate on one question for one judge, with its randomisation recorded."""

    Status = TrialStatus
    Role = TrialRole
    SIDES = SIDES
    Protocol = Protocol
    Condition = Condition

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="trials")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="trials")
    judge = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="trials")
    honest_side = models.CharField(max_length=1, choices=SIDES, help_text="Which debater defends the correct answer.")
    answer_a_index = models.PositiveIntegerField(help_text="Index into question.choices shown as answer A.")
    answer_b_index = models.PositiveIntegerField(help_text="Index into question.choices shown as answer B.")
    first_speaker = models.CharField(max_length=1, choices=SIDES, help_text="Who speaks first in sequential rounds.")
    consultant_side = models.CharField(
        max_length=1, choices=SIDES, blank=True, help_text="Consultancy: the answer the consultant argues for."
    )
    assistant_side = models.CharField(
        max_length=1,
        choices=SIDES,
        blank=True,
        help_text="Sandwiching with an assistant: the answer it is steered toward (misleading) or the correct one "
        "(honest). Never shown to the judge.",
    )
    protocol = models.CharField(max_length=20, choices=Protocol.choices, default=Protocol.DEBATE)
    condition = models.CharField(max_length=40, choices=Condition.choices, default=Condition.DEBATE)
    honest_config = models.ForeignKey(
        ModelConfig,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The configuration arguing for the correct answer (empty: nobody does). Never shown to the judge.",
    )
    adversary_config = models.ForeignKey(
        ModelConfig,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The configuration arguing for the wrong answer (empty: nobody does). Never shown to the judge.",
    )
    honest_person = _person_on_side("the correct answer")
    adversary_person = _person_on_side("the wrong answer")
    live = models.BooleanField(default=False, help_text="Generated while the judge watches; questions allowed.")
    role = models.CharField(
        max_length=10,
        choices=TrialRole.choices,
        default=TrialRole.STUDY,
        db_index=True,
        help_text="Study trials are analysed; practice and attention checks are not (never shown to the judge).",
    )
    queue_position = models.PositiveIntegerField(help_text="Shuffled order in the judge's queue.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.GENERATING)
    opened_at = models.DateTimeField(null=True, blank=True, help_text="When the judge first opened the trial.")
    ended_by_judge = models.BooleanField(default=False, help_text="Live: the judge ended the debate.")
    leanings = models.JSONField(
        default=list, blank=True, help_text="Live: [after round, probability A is correct] the judge gave."
    )
    skipped_at = models.DateTimeField(null=True, blank=True, help_text="When the judge skipped the trial.")
    skip_reason = models.TextField(blank=True, help_text="The judge's reason for skipping it (required to skip).")
    replaces = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="replacement",
        help_text="The failed trial this one replaces (same judge, arm, sides and queue position).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TrialQuerySet.as_manager()

    class Meta:
        ordering = ["experiment", "queue_position"]
        constraints = [
            # One trial per judge and question, failed ones aside: a failed trial may be replaced on its question.
            models.UniqueConstraint(
                fields=["experiment", "question", "judge"],
                condition=~models.Q(status="failed"),
                name="one_trial_per_judge_question",
            ),
            # A skipped trial always says when and why; no other trial has a skip recorded.
            models.CheckConstraint(
                condition=(models.Q(status="skipped", skipped_at__isnull=False) & ~models.Q(skip_reason=""))
                | (~models.Q(status="skipped") & models.Q(skipped_at__isnull=True, skip_reason="")),
                name="trial_skip_has_time_and_reason",
            ),
            models.CheckConstraint(condition=_in("status", TrialStatus.choices), name="trial_status_known"),
            models.CheckConstraint(condition=_in("protocol", Protocol.choices), name="trial_protocol_known"),
            models.CheckConstraint(condition=_in("condition", Condition.choices), name="trial_condition_known"),
            models.CheckConstraint(condition=_in("role", TrialRole.choices), name="trial_role_known"),
            models.CheckConstraint(condition=_in("honest_side", SIDES), name="trial_honest_side_a_or_b"),
            models.CheckConstraint(condition=_in("first_speaker", SIDES), name="trial_first_speaker_a_or_b"),
            models.CheckConstraint(
                condition=_in("consultant_side", SIDES) | models.Q(consultant_side=""), name="trial_consultant_side"
            ),
            models.CheckConstraint(
                condition=_in("assistant_side", SIDES) | models.Q(assistant_side=""), name="trial_assistant_side"
            ),
            # Each side field belongs to one protocol: the judge is shown the consultant's side, so an
            # assistant's side stored there would reveal its condition.
            models.CheckConstraint(
                condition=models.Q(protocol="consultancy") | models.Q(consultant_side=""),
                name="trial_consultant_side_only_in_consultancy",
            ),
            models.CheckConstraint(
                condition=models.Q(protocol="sandwich") | models.Q(assistant_side=""),
                name="trial_assistant_side_only_in_sandwiching",
            ),
            models.CheckConstraint(
                condition=~models.Q(answer_a_index=models.F("answer_b_index")), name="trial_two_different_answers"
            ),
        ]

    def __str__(self):
        return f"Trial {self.pk} ({self.experiment})"

    @property
    def protocol_spec(self) -> registry.Protocol:
        """The protocol's declaration: rules, labels, budgets, prompts (judging.protocols.registry)."""
        return registry.PROTOCOLS[self.protocol]

    @property
    def speaker_side(self) -> str:
        """The side the single speaker argues for (consultant or assistant); empty in debates."""
        return self.consultant_side or self.assistant_side

    @property
    def simultaneous(self) -> bool:
        """Both speakers write each round without seeing each other (debates only: one speaker otherwise)."""
        return registry.simultaneous(self.protocol, self.experiment.turn_style)

    @property
    def speech_char_limit(self) -> int:
        """Per-speech character limit; consultants get the published double budget."""
        return self.experiment.char_limit * self.protocol_spec.budget_multiplier

    @property
    def speech_quote_limit(self) -> int | None:
        return self.protocol_spec.quote_budget(self.experiment.quote_limit)

    def config_for(self, side: str):
        """The configuration speaking for answer ``side``."""
        return self.honest_config if side == self.honest_side else self.adversary_config

    def person_for(self, side: str):
        """The person (a human debater) speaking for answer ``side``, or None."""
        return self.honest_person if side == self.honest_side else self.adversary_person

    @property
    def has_person(self) -> bool:
        """A person speaks in this trial (the judge is never told)."""
        return self.honest_person_id is not None or self.adversary_person_id is not None

    def answer_text(self, side: str) -> str:
        index = self.answer_a_index if side == "A" else self.answer_b_index
        return self.question.choices[index]


# A turn's generation is tried this many times (a failed request, a worker that died under it) before it fails.
MAX_ATTEMPTS = 3


# A turn holding no claim, and showing nothing of an abandoned attempt (a judge must not see it,
# nor a response delay count from it).
# claimed_by stays: which worker last held a turn tells an operator which node keeps dying (it is only
# looked up together with status "running").
CLEARED_CLAIM = {"claim_token": "", "claimed_at": None, "partial_text": "", "first_text_at": None}


class TurnQuerySet(models.QuerySet):
    """Claims: how a worker takes a pending turn so that no other writes it (the one API for them).

    pending -> running (``claim``: a conditional UPDATE with a fresh token) -> done or failed, written
    only through ``held(token)``, so a redelivered task or a racing worker never writes a turn twice.
    ``release`` ends a claim without a result and clears every claim field (``CLEARED_CLAIM``).
    """

    def claim(self, claimed_by: str = "") -> str:
        """Claim the pending turns among these; returns the token that ``held`` finds them by."""
        token = uuid.uuid4().hex
        self.filter(status=Turn.Status.PENDING).update(
            status=Turn.Status.RUNNING,
            claim_token=token,
            claimed_at=timezone.now(),
            claimed_by=claimed_by,
            partial_text="",
            first_text_at=None,
        )
        return token

    def held(self, token: str):
        """These turns, as long as the claim ``token`` still holds them."""
        return self.filter(claim_token=token, status=Turn.Status.RUNNING)

    def release(self, *, to: str, **fields) -> int:
        """End these turns' claims without a result: back to pending or failed, with ``fields`` set."""
        return self.update(status=to, **CLEARED_CLAIM, **fields)

    def release_dead_workers(self) -> int:
        """Put running turns whose worker died back to pending, counting the lost attempt. A turn that
        has used up its attempts (it may be what kills its worker, e.g. by running out of memory) fails
        instead of looping forever."""
        running = self.filter(status=Turn.Status.RUNNING)
        failed = running.filter(attempts__gte=MAX_ATTEMPTS - 1).release(
            to=Turn.Status.FAILED,
            attempts=models.F("attempts") + 1,
            error="its worker stopped while generating it, too many times",
        )
        return failed + running.release(to=Turn.Status.PENDING, attempts=models.F("attempts") + 1)


class TurnStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Turn(models.Model):
    """One speech in a trial's transcript, with everything about how it was made."""

    Status = TurnStatus
    SPEAKERS = SPEAKERS

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField(help_text="Position in the transcript.")
    round = models.PositiveIntegerField()
    speaker = models.CharField(max_length=10, choices=SPEAKERS)
    addressed_to = models.JSONField(default=list, blank=True, help_text="Judge questions: the debaters asked.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    model_config = models.ForeignKey(ModelConfig, null=True, blank=True, on_delete=models.PROTECT, related_name="turns")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="authored_turns",
        help_text="A human debater's turn: the person who writes it (never generated; never shown to the judge).",
    )
    prompt = models.TextField(blank=True)
    text = models.TextField(blank=True)
    partial_text = models.TextField(blank=True, help_text="Live: text so far while the turn is generated.")
    first_text_at = models.DateTimeField(null=True, blank=True, help_text="When the first words were written.")
    response_delay_seconds = models.FloatField(
        null=True, blank=True, help_text="Judge questions: seconds until the first words of the answer were visible."
    )
    created_at = models.DateTimeField(auto_now_add=True, null=True)
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    tokens_prefilled = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Prompt tokens actually computed: tokens_in less those reused from a cached earlier prompt "
        "(prefix reuse between rounds), plus any recomputed after a pause. Blank: not known (a server).",
    )
    wall_seconds = models.FloatField(null=True, blank=True, help_text="Generation time of the batch it ran in.")
    queue_wait_seconds = models.FloatField(
        null=True, blank=True, help_text="From the turn becoming ready to be generated to a worker claiming it."
    )
    ttft_seconds = models.FloatField(null=True, blank=True, help_text="From the batch's start to its first token.")
    model_settings = models.JSONField(default=dict, blank=True)
    passage_chars_dropped = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Characters of the passage left out of the prompt to fit the model's context window (0: the "
        "whole passage; blank: not recorded). docs/limits.md",
    )
    speech_end = models.CharField(
        max_length=10,
        blank=True,
        help_text="How the speech ends: whole (as the model ended it), sentence (cut at the last sentence end "
        "within the character limit) or marker (cut with '…[cut at the limit]'). docs/limits.md",
    )
    tokens_past_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens generated after the speech had reached its character limit (goal: 0).",
    )
    candidates = models.JSONField(
        default=list,
        blank=True,
        help_text="Best-of-N: every sampled candidate [{'text', 'score'}], the kept one included (empty otherwise).",
    )
    claim_token = models.CharField(max_length=64, blank=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True, help_text="Celery node name of the claiming worker.")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TurnQuerySet.as_manager()

    class Meta:
        ordering = ["trial", "index"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "index"], name="unique_turn_index"),
            models.CheckConstraint(condition=_in("status", TurnStatus.choices), name="turn_status_known"),
            models.CheckConstraint(
                condition=models.Q(speech_end__in=["", "whole", "sentence", "marker"]), name="turn_speech_end_known"
            ),
            models.CheckConstraint(condition=_in("speaker", SPEAKERS), name="turn_speaker_known"),
            # A running turn is always held by a claim; a judge's question is never generated.
            models.CheckConstraint(
                condition=~models.Q(status="running") | ~models.Q(claim_token=""), name="turn_running_is_claimed"
            ),
            models.CheckConstraint(
                condition=~models.Q(speaker="judge") | models.Q(model_config__isnull=True, status="done"),
                name="turn_judge_question_is_not_generated",
            ),
            # A person's speech is written, never generated, and never a judge's question.
            models.CheckConstraint(
                condition=models.Q(author__isnull=True)
                | (models.Q(model_config__isnull=True) & ~models.Q(speaker="judge") & ~models.Q(status="running")),
                name="turn_by_a_person_is_not_generated",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "trial"]),
            # Recovery looks running turns up by worker (a restarted worker) and by claim age (the reconciler).
            models.Index(fields=["claimed_by"], condition=models.Q(status="running"), name="turn_running_by_worker"),
            models.Index(fields=["claimed_at"], condition=models.Q(status="running"), name="turn_running_by_age"),
        ]

    def __str__(self):
        return f"Turn {self.index} ({self.speaker}, round {self.round}) of trial {self.trial_id}"


class ActiveTimeSource(models.TextChoices):
    SERVER = "server", "Server clock (heartbeats)"
    BROWSER = "browser", "Browser clock (before heartbeats)"


class Verdict(models.Model):
    trial = models.OneToOneField(Trial, on_delete=models.CASCADE, related_name="verdict")
    judge = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verdicts")
    chosen = models.CharField(max_length=1, choices=Trial.SIDES)
    probability = models.FloatField(help_text="The judge's probability that the chosen answer is correct.")
    rationale = models.TextField()
    seconds_on_page = models.FloatField(help_text="From first opening the trial to submitting (server clock).")
    active_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="Active time (server clock, from the trial page's heartbeats over every visit: ActiveTime); "
        "empty when the page sent none.",
    )
    active_seconds_by_round = models.JSONField(
        default=dict, blank=True, help_text="Active seconds while each round was the latest shown {round: seconds}."
    )
    active_time_source = models.CharField(
        max_length=10,
        choices=ActiveTimeSource.choices,
        default=ActiveTimeSource.SERVER,
        help_text="Who measured the active time: the server (heartbeats), or the browser (verdicts given before "
        "heartbeats, whose time restarted with every reload).",
    )
    score = models.FloatField(
        null=True, blank=True, help_text="Under the experiment's scoring rule, round penalty included."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # The judge's probability for the answer they chose: at least even (verdict_submit's rule).
            models.CheckConstraint(
                condition=models.Q(probability__gte=0.5) & models.Q(probability__lte=1),
                name="verdict_probability_for_chosen_answer",
            ),
            models.CheckConstraint(condition=_in("chosen", SIDES), name="verdict_chosen_a_or_b"),
            models.CheckConstraint(condition=models.Q(seconds_on_page__gte=0), name="verdict_seconds_not_negative"),
            models.CheckConstraint(
                condition=models.Q(active_seconds__isnull=True) | models.Q(active_seconds__gte=0),
                name="verdict_active_seconds_not_negative",
            ),
            models.CheckConstraint(
                condition=_in("active_time_source", ActiveTimeSource.choices), name="verdict_active_time_source_known"
            ),
        ]

    @property
    def correct(self) -> bool:
        return self.chosen == self.trial.honest_side


class ActiveTime(models.Model):
    """A judge's active time on a trial, summed on the server from the trial page's heartbeats
    (services.active_time_beat) over every visit and reload; the verdict copies it."""

    trial = models.OneToOneField(Trial, on_delete=models.CASCADE, primary_key=True, related_name="active_time")
    seconds = models.FloatField(default=0.0, help_text="Active seconds so far (server clock).")
    seconds_by_round = models.JSONField(
        default=dict, blank=True, help_text="Active seconds while each round was the latest shown {round: seconds}."
    )
    beat_at = models.DateTimeField(help_text="When the last accepted beat arrived (server clock).")
    beat_page = models.CharField(max_length=32, help_text="The page load that sent it (a random id per load).")
    beat_seq = models.PositiveIntegerField(help_text="Its number among that page load's beats (from 1).")

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(seconds__gte=0), name="active_time_not_negative")]

    def __str__(self):
        return f"Active time of trial {self.trial_id}: {self.seconds:.0f} s"


class ModelAnswer(models.Model):
    """The model-alone baseline: the model's own answer to a question, with no judge."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="model_answers")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="model_answers")
    model_config = models.ForeignKey(
        ModelConfig,
        on_delete=models.PROTECT,
        related_name="model_answers",
        help_text="The configuration that answered (each assistant of the experiment answers alone).",
    )
    answer_a_index = models.PositiveIntegerField()
    answer_b_index = models.PositiveIntegerField()
    honest_side = models.CharField(max_length=1, choices=Trial.SIDES, help_text="Where the correct answer was.")
    probability_a = models.FloatField(
        help_text="Answer A's probability from the labels' log-probabilities, A shown first."
    )
    probability_a_swapped = models.FloatField(
        null=True,
        blank=True,
        help_text="Answer A's probability with the answers swapped (A shown second, as B); empty: scored in one order.",
    )
    model_settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "question", "model_config"], name="one_model_answer_per_question_and_config"
            ),
            models.CheckConstraint(
                condition=models.Q(probability_a__gte=0, probability_a__lte=1), name="model_answer_p"
            ),
            models.CheckConstraint(
                condition=_probability_or_null("probability_a_swapped"), name="model_answer_p_swapped"
            ),
            models.CheckConstraint(condition=_in("honest_side", SIDES), name="model_answer_honest_side_a_or_b"),
        ]

    @property
    def chosen(self) -> str:
        """The verdict: A, B, or empty for a tie (judging.baseline_verdicts)."""
        return baseline_verdicts.verdict(self.probability_a, self.probability_a_swapped)

    @property
    def correct(self) -> bool | None:
        return baseline_verdicts.is_correct(self.chosen, self.honest_side)


class ModelVerdict(models.Model):
    """A model judging a trial from exactly what a human judge sees (never the passage)."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="model_verdicts")
    judge_model = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="model_verdicts")
    probability_a = models.FloatField(
        help_text="Answer A's probability from the labels' log-probabilities, A shown first."
    )
    probability_a_swapped = models.FloatField(
        null=True,
        blank=True,
        help_text="Answer A's probability with the answers swapped (A shown second, as B); empty: scored in one order.",
    )
    prompt = models.TextField()
    prompt_swapped = models.TextField(blank=True, help_text="The prompt of the swapped order; empty: one order.")
    model_settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "judge_model"], name="one_model_verdict_per_judge"),
            models.CheckConstraint(
                condition=models.Q(probability_a__gte=0, probability_a__lte=1), name="model_verdict_p"
            ),
            models.CheckConstraint(
                condition=_probability_or_null("probability_a_swapped"), name="model_verdict_p_swapped"
            ),
        ]

    @property
    def chosen(self) -> str:
        """The verdict: A, B, or empty for a tie (judging.baseline_verdicts)."""
        return baseline_verdicts.verdict(self.probability_a, self.probability_a_swapped)

    @property
    def correct(self) -> bool | None:
        return baseline_verdicts.is_correct(self.chosen, self.trial.honest_side)


# Recruitment (judging/recruitment.py, docs/recruitment.md): invite links and the judge seats they fill.


def new_invite_token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits: the link cannot be guessed


class InviteKind(models.TextChoices):
    ACCOUNT = "account", "Account: the newcomer chooses a username and password"
    CROWD = "crowd", "Crowd platform: the participant id comes from the link (Prolific, MTurk); no password"


class Invite(models.Model):
    """A link by which up to ``max_uses`` newcomers join an experiment as judges. Its seats are judge accounts made
    with the invite, before launch, so the launch plans their trials like any judge's; a newcomer takes the next
    free seat (judging.recruitment)."""

    Kind = InviteKind

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="invites")
    kind = models.CharField(max_length=10, choices=InviteKind.choices, default=InviteKind.CROWD)
    label = models.CharField(max_length=200, blank=True, help_text="For the researchers (e.g. 'Prolific pilot').")
    token = models.CharField(max_length=64, unique=True, default=new_invite_token, editable=False)
    max_uses = models.PositiveIntegerField(
        help_text="The most people who may join by this link: as many judge seats are made now and planned at launch."
    )
    expires_at = models.DateTimeField(help_text="Nobody new may join after this (server time, UTC).")
    completion_code = models.CharField(
        max_length=100, blank=True, help_text="Shown to a participant whose queue is done (the platform's code)."
    )
    completion_url = models.URLField(
        max_length=500, blank=True, help_text="Where a participant whose queue is done is sent back to (optional)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_uses__gte=1), name="invite_max_uses_at_least_1"),
            models.CheckConstraint(condition=_in("kind", InviteKind.choices), name="invite_kind_known"),
        ]

    def __str__(self):
        return self.label or f"Invite {self.pk} to {self.experiment}"


class Seat(models.Model):
    """A judge account made by an invite, taken by the newcomer who joins by it. A crowd participant's id is kept
    here (researchers only; no judge page shows it), unique within the experiment: a returning participant takes
    their own seat again."""

    invite = models.ForeignKey(Invite, on_delete=models.CASCADE, related_name="seats")
    # The invite's experiment, here so that a participant id is unique within the experiment whichever invite.
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    judge = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="seat")
    participant_id = models.CharField(max_length=128, blank=True)
    study_id = models.CharField(max_length=128, blank=True)
    session_id = models.CharField(max_length=128, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["invite", "number"]
        constraints = [
            models.UniqueConstraint(fields=["invite", "number"], name="seat_number_unique_per_invite"),
            models.UniqueConstraint(
                fields=["experiment", "participant_id"],
                condition=~models.Q(participant_id=""),
                name="seat_participant_unique_per_experiment",
            ),
        ]

    def __str__(self):
        return f"Seat {self.number} of {self.invite}"


class Onboarding(models.Model):
    """A judge's start in one experiment: the instructions confirmed and the qualification decided."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="onboardings")
    judge = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="onboardings")
    instructions_read_at = models.DateTimeField(
        null=True, blank=True, help_text="When the judge confirmed reading the instructions (server clock)."
    )
    qualified = models.BooleanField(
        null=True,
        blank=True,
        help_text="Practice accuracy at or above the experiment's threshold (empty: not decided yet, or no gate).",
    )
    practice_correct = models.PositiveIntegerField(default=0, help_text="Practice trials answered correctly.")
    practice_judged = models.PositiveIntegerField(default=0, help_text="Practice trials judged.")
    decided_at = models.DateTimeField(null=True, blank=True, help_text="When the qualification was decided.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "judge"], name="one_onboarding_per_judge_and_experiment"),
            models.CheckConstraint(
                condition=models.Q(practice_correct__lte=models.F("practice_judged")),
                name="onboarding_correct_within_judged",
            ),
            models.CheckConstraint(
                condition=models.Q(qualified__isnull=True, decided_at__isnull=True)
                | models.Q(qualified__isnull=False, decided_at__isnull=False),
                name="onboarding_decision_has_time",
            ),
        ]

    def __str__(self):
        return f"Onboarding of {self.judge} in {self.experiment}"
