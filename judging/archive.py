"""Per-experiment archives: everything needed to re-run an experiment's analysis, in one file that
imports back into another installation (an empty one, or one that holds none of its rows).

An archive is gzipped JSON: a header (format, version, platform, what it holds), the usernames it
refers to, and the rows in Django's serialization format (``django.core.serializers``), with their
primary keys, so the analysis of the restored experiment is the same, ids and links included. Users
are referred to by username and never carried (no password hashes leave the installation): a user
missing where the archive is restored is created inactive, with no usable password.

Held: the experiment (design, frozen analysis plan, provenance), its line-up, the model
configurations it used (its debater model, line-ups, every turn's, the model judges', best-of-N
judges'), its question sets (the study's, and the practice and attention-check sets where it has them) with
the questions it used (text exactly as imported), its judges' onboardings (docs/onboarding.md), its trials
(practice and attention checks included), turns, verdicts, active times, model answers and model verdicts.
"""

from __future__ import annotations

import gzip
import json
from typing import IO

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management.color import no_style
from django.db import DatabaseError, connection, transaction
from django.db.models import Q

from .models import (
    ActiveTime,
    Experiment,
    ModelConfig,
    ModelVerdict,
    Question,
    QuestionSet,
    Turn,
    Verdict,
)

FORMAT = "debate-platform-experiment-archive"
VERSION = 1


class ArchiveError(ValueError):
    """An archive that cannot be written or restored; nothing was changed."""


def _configs_used(experiment: Experiment) -> list[ModelConfig]:
    """Every configuration the experiment's rows refer to, each after the best-of-N judge it uses."""
    ids = {experiment.debater_model_id}
    ids |= set(experiment.lineup.exclude(model_config=None).values_list("model_config_id", flat=True))
    turns = Turn.objects.filter(trial__experiment=experiment)
    ids |= set(turns.exclude(model_config=None).values_list("model_config_id", flat=True))
    for side in ("honest_config_id", "adversary_config_id"):
        ids |= set(experiment.trials.exclude(**{side: None}).values_list(side, flat=True))
    ids |= set(ModelVerdict.objects.filter(trial__experiment=experiment).values_list("judge_model_id", flat=True))
    ids |= set(experiment.model_answers.values_list("model_config_id", flat=True))
    ordered: list[ModelConfig] = []

    def add(config: ModelConfig) -> None:
        if config in ordered:
            return
        if config.best_of_n_judge_id:
            add(config.best_of_n_judge)
        ordered.append(config)

    for config in ModelConfig.objects.filter(pk__in=ids).order_by("pk"):
        add(config)
    return ordered


def _rows(experiment: Experiment) -> list:
    """The experiment's rows, each after the rows it refers to."""
    trials = experiment.trials.order_by("pk")  # a replacement comes after the trial it replaces
    used = Q(trials__experiment=experiment) | Q(model_answers__experiment=experiment)
    # Practice and attention checks may take their questions from sets of their own (docs/onboarding.md).
    sets = {experiment.question_set_id, experiment.practice_question_set_id, experiment.attention_question_set_id}
    return [
        *_configs_used(experiment),
        *QuestionSet.objects.filter(pk__in=sets - {None}).order_by("pk"),
        *Question.objects.filter(used).distinct().order_by("pk"),
        experiment,
        *experiment.lineup.order_by("pk"),
        *experiment.onboardings.order_by("pk"),
        *trials,
        *Turn.objects.filter(trial__experiment=experiment).order_by("pk"),
        *Verdict.objects.filter(trial__experiment=experiment).order_by("pk"),
        *ActiveTime.objects.filter(trial__experiment=experiment).order_by("pk"),
        *experiment.model_answers.order_by("pk"),
        *ModelVerdict.objects.filter(trial__experiment=experiment).order_by("pk"),
    ]


def _usernames(rows: list) -> list[str]:
    """The users the rows refer to (judges, verdicts' judges, human debaters)."""
    user_model = get_user_model()
    ids = set()
    for row in rows:
        for field in row._meta.get_fields():
            if field.is_relation and field.related_model is user_model and field.concrete:
                if field.many_to_many:
                    ids |= set(getattr(row, field.name).values_list("pk", flat=True))
                elif getattr(row, field.attname) is not None:
                    ids.add(getattr(row, field.attname))
    # By id, then their names in one query (not one per row).
    return sorted(user_model._default_manager.filter(pk__in=ids).values_list(user_model.USERNAME_FIELD, flat=True))


def write_archive(experiment: Experiment, target: IO[bytes]) -> dict:
    """Write the experiment's archive (gzipped JSON) to ``target``; returns its header."""
    experiment = Experiment.objects.get(pk=experiment.pk)  # as stored, not as a caller's copy has it
    rows = _rows(experiment)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row._meta.label] = counts.get(row._meta.label, 0) + 1
    header = {
        "format": FORMAT,
        "version": VERSION,
        "platform": {"version": settings.PLATFORM_VERSION, "commit": settings.PLATFORM_COMMIT or None},
        "experiment": experiment.name,
        "rows": counts,
    }
    body = serializers.serialize("python", rows, use_natural_foreign_keys=True)
    document = header | {"users": _usernames(rows), "objects": body}
    with gzip.GzipFile(fileobj=target, mode="wb") as out:
        out.write(json.dumps(document, cls=serializers.json.DjangoJSONEncoder).encode())
    return header


def _read(source: IO[bytes]) -> dict:
    try:
        with gzip.GzipFile(fileobj=source, mode="rb") as data:
            document = json.loads(data.read())
    except (OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"not an experiment archive (gzipped JSON): {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArchiveError("not an experiment archive of this platform")
    if document.get("version") != VERSION:
        raise ArchiveError(f"archive version {document.get('version')!r}; this platform reads version {VERSION}")
    return document


def _clashes(objects: list[dict]) -> list[str]:
    """Rows of the archive whose primary key is already taken here."""
    clashes = []
    by_model: dict[str, list] = {}
    for obj in objects:
        by_model.setdefault(obj["model"], []).append(obj["pk"])
    for label, pks in by_model.items():
        model = apps.get_model(label)
        taken = model._base_manager.filter(pk__in=pks).count()
        if taken:
            clashes.append(f"{taken} {model._meta.verbose_name_plural}")
    return clashes


def restore_archive(source: IO[bytes]) -> Experiment:
    """Import an archive; every row keeps its primary key, so the installation must not hold any of them
    (an empty installation never does). All or nothing: on any error nothing is changed."""
    document = _read(source)
    objects = document.get("objects")
    if not isinstance(objects, list) or not objects:
        raise ArchiveError("the archive holds no rows")
    user_model = get_user_model()
    with transaction.atomic():
        clashes = _clashes(objects)
        if clashes:
            raise ArchiveError(
                "this installation already holds rows with the archive's ids (" + ", ".join(clashes) + "): restore "
                "into an empty installation (nothing was imported)"
            )
        for username in document.get("users", []):
            if not user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
                user = user_model(**{user_model.USERNAME_FIELD: username}, is_active=False)
                user.set_unusable_password()
                user.save()
        try:
            restored = list(serializers.deserialize("python", objects, handle_forward_references=False))
            for row in restored:
                # Rows as they were: no save() logic (Experiment.save refuses changed plans) and no signals.
                row.save()
        except (DatabaseError, serializers.base.DeserializationError) as exc:
            raise ArchiveError(f"the archive could not be restored: {exc}") from None
        # New rows made after a restore must not take the restored ids (PostgreSQL's sequences).
        models = sorted({type(row.object) for row in restored}, key=lambda m: m._meta.label)
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(statement)
        experiments = [row.object for row in restored if isinstance(row.object, Experiment)]
        if len(experiments) != 1:
            raise ArchiveError(f"an archive holds one experiment; this one holds {len(experiments)}")
    return experiments[0]
