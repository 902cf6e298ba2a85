from django.core.exceptions import ValidationError
from django.db import models

from .prompts import (
    DEFAULT_CONSULTANT_SYSTEM_PROMPT, DEFAULT_CONSULTANT_TEMPLATE, DEFAULT_DEBATER_TEMPLATE, DEFAULT_SYSTEM_PROMPT,
    TemplateError, check_template,
)


class ModelConfig(models.Model):
    """A configured model: which weights, how to sample, and how it is prompted."""

    class Backend(models.TextChoices):
        TRANSFORMERS = "transformers", "transformers (local weights)"
        OPENAI = "openai", "OpenAI-compatible server (vLLM, TGI, transformers serve)"

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=30, choices=Backend.choices, default=Backend.TRANSFORMERS)
    model_name = models.CharField(
        max_length=500,
        help_text="A Hugging Face model id, a local model folder, or a bundled short name "
        "(smollm2-135m-instruct).",
    )
    api_base = models.CharField(
        max_length=500, blank=True,
        help_text="OpenAI-compatible backend: the server's base URL, e.g. http://gpu-host:8000/v1 "
        "(API key from DEBATE_OPENAI_API_KEY).",
    )
    adapter_path = models.CharField(
        max_length=500, blank=True,
        help_text="transformers backend: a LoRA adapter folder (peft) loaded on the model, e.g. one made by "
        "manage.py train_adversary.",
    )
    temperature = models.FloatField(default=0.7, help_text="0 means greedy decoding.")
    top_p = models.FloatField(default=0.95)
    repetition_penalty = models.FloatField(
        default=1.0, help_text="Above 1 discourages repetition (1.1-1.2 helps small models that loop); 1 = off."
    )
    max_new_tokens = models.PositiveIntegerField(default=256)
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
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Scoring model for best-of-N: its probability for the debater's answer after reading the "
        "transcript with the candidate (default: this model).",
    )
    queue = models.CharField(
        max_length=100, default="generation",
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
        if self.best_of_n is not None and self.best_of_n > 1 and not self.temperature:
            errors["best_of_n"] = "best-of-N needs a temperature above 0, or every candidate is the same"
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            errors["repetition_penalty"] = "must be above 0"
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            errors["max_new_tokens"] = "must be at least 1"
        if errors:
            raise ValidationError(errors)

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
