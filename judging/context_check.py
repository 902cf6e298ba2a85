"""Warnings for the researcher when passages exceed a model's context window (docs/limits.md).

Run in the web process, so nothing is loaded: a model's window is its configuration's
``context_window``, else what its files declare (``inference.limits.context_window_from_files``:
config.json and tokenizer_config.json of a local or bundled model, or one in the local Hugging Face
cache); a server's model without a configured window is not checked. A passage's tokens are
estimated as its characters / CHARS_PER_TOKEN (English prose runs 4-5 characters a token with
current tokenizers, so the estimate errs towards warning). The worker counts exactly when it builds
the prompt and truncates the passage then.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Max
from django.db.models.functions import Length

from inference.limits import context_window_from_files

from .models import ModelConfig, Question

CHARS_PER_TOKEN = 4


def model_window(config: ModelConfig) -> int | None:
    """The context window of a model configuration, as far as the web process can tell without loading it."""
    if config.context_window:
        return config.context_window
    if config.backend == ModelConfig.Backend.TRANSFORMERS:
        return context_window_from_files(config.model_name, settings.MODEL_CACHE_DIR)
    return None


def passage_warnings(questions, configs) -> list[str]:
    """One line per configuration some of ``questions``' passages are too long for: how many, the longest."""
    questions = questions.annotate(chars=Length("passage"))
    total = questions.count()
    lines = []
    for config in configs:
        window = model_window(config)
        if window is None:
            continue
        room = max(0, window - config.max_new_tokens) * CHARS_PER_TOKEN
        over = questions.filter(chars__gt=room)
        count = over.count()
        if not count:
            continue
        longest = over.aggregate(longest=Max("chars"))["longest"]
        lines.append(
            f"{count} of {total} passages are longer than {config.name}'s context window allows ({window:,} tokens, "
            f"{config.max_new_tokens} of them for the speech; a passage is estimated at {CHARS_PER_TOKEN} "
            f"characters a token, so about {room:,} characters fit). Their prompts will show only the start of the "
            f"passage, marked as truncated (docs/limits.md); the longest has {longest:,} characters."
        )
    return lines


def experiment_passage_warnings(experiment) -> list[str]:
    """Warnings for an experiment's question set against every model that speaks in it."""
    ids = {experiment.debater_model_id} | set(
        experiment.lineup.exclude(model_config=None).values_list("model_config_id", flat=True)
    )
    configs = ModelConfig.objects.filter(pk__in=ids - {None}).order_by("name")
    return passage_warnings(Question.objects.filter(question_set_id=experiment.question_set_id), configs)


def question_set_passage_warnings(question_set, configs=None) -> list[str]:
    """Warnings for a question set against ``configs`` (default: every model configuration)."""
    configs = ModelConfig.objects.order_by("name") if configs is None else configs
    return passage_warnings(Question.objects.filter(question_set=question_set), configs)
