"""Every write the judging domain makes goes through a function here."""
from __future__ import annotations

import math

from django.db import IntegrityError, transaction
from django.utils import timezone

from .assignment import QuestionInfo, plan_trials
from .models import Experiment, Trial, Turn, Verdict
from .protocols import debate


class LaunchError(ValueError):
    pass


class VerdictRefused(ValueError):
    """A verdict that is not accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def debate_rules(experiment: Experiment, trial: Trial) -> debate.DebateRules:
    return debate.DebateRules(
        rounds=experiment.rounds, turn_style=experiment.turn_style, first_speaker=trial.first_speaker
    )


def transcript_speeches(turns) -> list[debate.Speech]:
    return [
        debate.Speech(speaker=t.speaker, round=t.round, text=t.text, addressed_to=tuple(t.addressed_to))
        for t in turns
    ]


def debate_state(trial: Trial) -> debate.DebateState:
    """The protocol state of a trial, from its finished turns."""
    done = [t for t in trial.turns.all() if t.status == Turn.Status.DONE]
    return debate.replay(debate_rules(trial.experiment, trial), transcript_speeches(sorted(done, key=lambda t: t.index)))


def _debater_turn_slots(experiment: Experiment, trial: Trial) -> list[tuple[int, str]]:
    """(round, speaker) for every debater speech, in transcript order."""
    rules = debate_rules(experiment, trial)
    order = rules.speaking_order if rules.turn_style == debate.SEQUENTIAL else debate.DEBATERS
    return [(r, s) for r in range(1, experiment.rounds + 1) for s in order]


def experiment_launch(*, experiment: Experiment) -> int:
    """Create the trials and their pending turns, then queue generation.

    Returns the number of trials created. A launched experiment cannot be
    launched again (checked under a row lock, so a double click is harmless).
    """
    from models_runner.tasks import enqueue_generation

    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != Experiment.Status.DRAFT:
            raise LaunchError(f"experiment {experiment.name!r} has already been launched")
        questions = [
            QuestionInfo(id=q.id, n_choices=len(q.choices), correct_index=q.correct_index)
            for q in experiment.question_set.questions.all()
        ]
        judge_ids = sorted(experiment.judges.values_list("id", flat=True))
        try:
            plans = plan_trials(
                questions, judge_ids, num_questions=experiment.num_questions,
                judgments_per_question=experiment.judgments_per_question, seed=experiment.seed,
            )
        except ValueError as exc:
            raise LaunchError(str(exc)) from exc
        for plan in plans:
            trial = Trial.objects.create(
                experiment=experiment, question_id=plan.question_id, judge_id=plan.judge_id,
                honest_side=plan.honest_side, answer_a_index=plan.answer_a_index,
                answer_b_index=plan.answer_b_index, first_speaker=plan.first_speaker,
                queue_position=plan.queue_position,
            )
            Turn.objects.bulk_create(
                Turn(trial=trial, index=i, round=r, speaker=s, model_config=experiment.debater_model)
                for i, (r, s) in enumerate(_debater_turn_slots(experiment, trial))
            )
        experiment.status = Experiment.Status.LAUNCHED
        experiment.launched_at = timezone.now()
        experiment.save(update_fields=["status", "launched_at"])
        transaction.on_commit(lambda: enqueue_generation(experiment.pk))
    return len(plans)


def trial_open(*, trial: Trial) -> None:
    """Record when the judge first opened a trial (for time on the page)."""
    if trial.opened_at is None:
        Trial.objects.filter(pk=trial.pk, opened_at__isnull=True).update(opened_at=timezone.now())
        trial.refresh_from_db(fields=["opened_at"])


def _parse_probability(raw) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise VerdictRefused("the probability must be a number between 0 and 1") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise VerdictRefused("the probability must be between 0 and 1")
    return value


def verdict_submit(*, trial_id: int, judge, chosen: str, probability, rationale: str, active_seconds=None) -> Verdict:
    """Record a judge's verdict, or raise VerdictRefused and change nothing."""
    if chosen not in ("A", "B"):
        raise VerdictRefused("choose answer A or answer B")
    p = _parse_probability(probability)
    if p < 0.5:
        raise VerdictRefused("your probability for the answer you chose must be at least 0.5; choose the other answer instead")
    rationale = (rationale or "").strip()
    if not rationale:
        raise VerdictRefused("write a short rationale for your verdict")
    if len(rationale) > 5000:
        raise VerdictRefused("the rationale is limited to 5000 characters")
    try:
        active = None if active_seconds in (None, "") else max(0.0, float(active_seconds))
    except (TypeError, ValueError):
        active = None
    if active is not None and not math.isfinite(active):
        active = None
    with transaction.atomic():
        trial = (
            Trial.objects.select_for_update().select_related("experiment").filter(pk=trial_id, judge=judge).first()
        )
        if trial is None:  # unknown, or someone else's: the same answer, so ids leak nothing
            raise VerdictRefused("no such trial in your queue", status=404)
        if Verdict.objects.filter(trial=trial).exists():
            raise VerdictRefused("you have already given a verdict on this trial", status=409)
        state = debate_state(trial)
        try:
            state.apply_verdict(chosen, p)
        except debate.IllegalMove as exc:
            raise VerdictRefused(str(exc), status=409) from exc
        now = timezone.now()
        opened = trial.opened_at or now
        try:
            verdict = Verdict.objects.create(
                trial=trial, judge=judge, chosen=chosen, probability=p, rationale=rationale,
                seconds_on_page=(now - opened).total_seconds(), active_seconds=active,
            )
        except IntegrityError:
            raise VerdictRefused("you have already given a verdict on this trial", status=409) from None
        Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.JUDGED)
    return verdict
