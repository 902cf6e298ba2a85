"""Every write the judging domain makes goes through a function here."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import lineups, scoring, trial_read
from .assignment import QuestionInfo, answer_indices, plan_onboarding_trials, plan_trials
from .models import (
    SKIP_REASON_MAX,
    ActiveTime,
    ActiveTimeSource,
    Experiment,
    ModelConfig,
    Onboarding,
    Question,
    Trial,
    Turn,
    Verdict,
)
from .protocols import debate, registry
from .signals import model_alone_requested, turns_pending

log = logging.getLogger(__name__)


class LaunchError(ValueError):
    pass


class VerdictRefused(ValueError):
    """A verdict that is not accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class TrialRefused(VerdictRefused):
    """Opening or skipping a trial that the judge may not open or skip now."""


# What a judge is told when they act on a trial of a closed experiment (services.experiment_close).
CLOSED = (
    "this experiment has been closed by the researchers: it takes no more verdicts, moves or skips. "
    "Thank you for your work; your judged trials and, where shown, their answers are in your history."
)


class CloseError(ValueError):
    pass


NOT_NEXT = (
    "this is not your next trial: trials are judged one at a time, in the order planned for you. "
    "Open your next trial from your queue, or skip it there with a reason."
)


@dataclass
class Delivery:
    """Whether the work a service announced reached the workers' broker. The announcement is sent after
    the transaction commits, so ``failed`` is known once it has (at once, outside an outer transaction)."""

    sent: int = 0
    failed: int = 0


def _announce_after_commit(signal, experiment_id: int, delivery: Delivery | None = None) -> None:
    def announce():
        responses = signal.send(sender=Experiment, experiment_id=experiment_id)
        if delivery is not None:  # a receiver answers False when it could not send
            failed = any(response is False for _, response in responses)
            delivery.failed += failed
            delivery.sent += not failed

    transaction.on_commit(announce)


def trials_settle(trial_ids) -> None:
    """A pre-generated trial whose turns are all done becomes ready; one with a failed turn, failed."""
    for trial_id in trial_ids:
        remaining = Turn.objects.filter(trial_id=trial_id).exclude(status=Turn.Status.DONE)
        if not remaining.exists():
            Trial.objects.filter(pk=trial_id, status=Trial.Status.GENERATING).update(status=Trial.Status.READY)
        elif remaining.filter(status=Turn.Status.FAILED).exists():
            Trial.objects.filter(pk=trial_id, status=Trial.Status.GENERATING).update(status=Trial.Status.FAILED)


def stale_claims_release(older_than_seconds: int | None = None) -> int:
    """Release turns claimed too long ago (their worker presumably died); returns how many.

    Live trials have a judge waiting, so their turns are released once their worker's heartbeat has stopped
    for LIVE_DEAD_CLAIM_SECONDS (``live_dead_claim_cutoff``); other turns after STALE_CLAIM_SECONDS.
    An explicit ``older_than_seconds`` applies to all turns.
    """
    now = timezone.now()
    if older_than_seconds is not None:
        stale = Turn.objects.filter(claimed_at__lt=now - timedelta(seconds=older_than_seconds))
    else:
        live = Q(trial__live=True, claimed_at__lt=live_dead_claim_cutoff(now))
        other = Q(trial__live=False, claimed_at__lt=now - timedelta(seconds=settings.STALE_CLAIM_SECONDS))
        stale = Turn.objects.filter(live | other)
    return claims_release_dead_worker(stale)


def live_dead_claim_cutoff(now):
    """A live turn claimed (or last refreshed by its worker's heartbeat, generation/heartbeat.py) before this
    belongs to a dead worker: a living one refreshes its claims every CLAIM_HEARTBEAT_SECONDS, far more often."""
    return now - timedelta(seconds=settings.LIVE_DEAD_CLAIM_SECONDS)


def dead_live_claims_release(trial: Trial) -> int:
    """Release a live trial's turns whose worker died (its heartbeat stopped, ``live_dead_claim_cutoff``) and
    ask again for their generation, so the judge waits seconds instead of the reconciler's minutes; returns
    the turns released.

    Called by every poll of the judge's page, so it must stay cheap: it decides on the turns already loaded
    (``trial.turns.all()``, prefetched by the view) and writes only when one is dead. The write is
    conditional on the claim it saw (its token, still running, still old): of two polls at once, one releases.
    The released turn shows nothing of the lost attempt (``CLEARED_CLAIM``) and counts it (``attempts``), which
    the judge's page reads as the speaker being restarted (``selectors._round_progress``).
    """
    if not trial.live:
        return 0
    cutoff = live_dead_claim_cutoff(timezone.now())
    dead = [
        t
        for t in trial.turns.all()
        if t.status == Turn.Status.RUNNING and t.claimed_at is not None and t.claimed_at < cutoff
    ]
    if not dead:
        return 0
    with transaction.atomic():
        released = claims_release_dead_worker(
            Turn.objects.filter(trial=trial, claim_token__in={t.claim_token for t in dead}, claimed_at__lt=cutoff)
        )
        if released:
            _announce_after_commit(turns_pending, trial.experiment_id)
    if released:
        workers = sorted({t.claimed_by for t in dead})
        log.warning("live trial %s: released %d turn(s) of a dead worker (%s)", trial.pk, released, ", ".join(workers))
    return released


def claims_release_dead_worker(turns) -> int:
    """Release the running ``turns`` of a worker that died (``TurnQuerySet.release_dead_workers``) and
    settle their trials."""
    trial_ids = set(turns.filter(status=Turn.Status.RUNNING).values_list("trial_id", flat=True))
    released = turns.release_dead_workers()
    trials_settle(trial_ids)
    return released


def failed_turns_retry(*, experiment_id: int, delivery: Delivery | None = None) -> int:
    """Give failed turns of an experiment a fresh set of attempts and ask for their generation.

    A failed trial that has been replaced (``failed_trials_replace``) stays failed: its design cell
    is served by the replacement, and the failure stays in the data as attrition.
    """
    with transaction.atomic():
        if not Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.LAUNCHED).exists():
            return 0  # a closed experiment takes no new work (nor does a draft have any)
        count = Turn.objects.filter(
            trial__experiment_id=experiment_id, trial__replacement__isnull=True, status=Turn.Status.FAILED
        ).release(to=Turn.Status.PENDING, attempts=0, error="")
        Trial.objects.filter(experiment_id=experiment_id, status=Trial.Status.FAILED, replacement__isnull=True).update(
            status=Trial.Status.GENERATING
        )
        _announce_after_commit(turns_pending, experiment_id, delivery)
    return count


@dataclass
class Replacements:
    """What ``failed_trials_replace`` did: replacements on the same question, on a new one, and why
    any failed trial could not be replaced."""

    same_question: int = 0
    new_question: int = 0
    refused: list[str] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)


def _question_to_blame(trial: Trial) -> bool:
    """A failure is taken as transient (a worker died, a server refused) unless another trial on the
    same question has failed in this experiment too: two failures point at the question (e.g. a
    passage longer than the model's context), and a third try on it would fail again."""
    same_question = Trial.objects.filter(experiment_id=trial.experiment_id, question_id=trial.question_id)
    return same_question.filter(status=Trial.Status.FAILED).exclude(pk=trial.pk).exists()


def _replacement_question(experiment: Experiment, trial: Trial) -> Question | None:
    """A question this judge has not had in this experiment, must not judge (``questions_to_avoid``) and on
    which nothing has failed: one of the experiment's sampled questions if any is left (the question pool
    every arm shares), else another of its set; drawn at random, seeded by the experiment's seed and the
    failed trial."""
    trials = Trial.objects.filter(experiment=experiment)
    had = set(trials.filter(judge_id=trial.judge_id).values_list("question_id", flat=True))
    had |= questions_to_avoid(experiment, [trial.judge_id]).get(trial.judge_id, set())
    failed = set(trials.filter(status=Trial.Status.FAILED).values_list("question_id", flat=True))
    sampled = set(trials.study().values_list("question_id", flat=True))
    # Practice and attention checks take their questions where the launch did (docs/onboarding.md), never
    # the study's; a study trial never takes one of theirs.
    other_roles = set(trials.exclude(role=Trial.Role.STUDY).values_list("question_id", flat=True))
    question_set = {
        Trial.Role.PRACTICE: experiment.practice_question_set_id or experiment.question_set_id,
        Trial.Role.ATTENTION: experiment.attention_question_set_id,
    }.get(trial.role, experiment.question_set_id)
    candidates = sorted(
        Question.objects.filter(question_set_id=question_set).exclude(pk__in=had | failed).values_list("pk", flat=True)
    )
    if trial.role == Trial.Role.STUDY:
        pool = [pk for pk in candidates if pk in sampled] or [pk for pk in candidates if pk not in other_roles]
    else:
        pool = [pk for pk in candidates if pk not in sampled]
    if not pool:
        return None
    rng = random.Random(f"{experiment.seed}-replace-{trial.pk}")
    return Question.objects.get(pk=rng.choice(pool))


def failed_trials_replace(*, experiment_id: int) -> Replacements:
    """Replace each failed trial of an experiment, not yet replaced, by a new trial in its design cell.

    The replacement keeps the failed trial's judge, arm and condition, honest side, first speaker,
    speaker's side and queue position, so the per-judge balance of arms and sides is as planned. It keeps
    the question too (so an arm does not lose its hardest questions), unless the question is to blame
    (``_question_to_blame``); then it takes a question the judge has not had (``_replacement_question``),
    with the correct answer on the same side. The failed trial stays, failed, in the data, and the
    replacement records it in ``replaces``.
    """
    done = Replacements()
    with transaction.atomic():
        # One replacement at a time per experiment (a double click on the admin action).
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
        if experiment.status != Experiment.Status.LAUNCHED:
            done.refused.append(f"the experiment is {experiment.get_status_display().lower()}: it takes no new trials")
            return done
        failed = Trial.objects.filter(
            experiment=experiment, status=Trial.Status.FAILED, replacement__isnull=True
        ).select_related("question", "judge")
        any_pregenerated = baseline = False
        for trial in failed.order_by("id"):
            question = trial.question
            answers = (trial.answer_a_index, trial.answer_b_index)
            if _question_to_blame(trial):
                question = _replacement_question(experiment, trial)
                if question is None:
                    done.refused.append(
                        f"trial {trial.pk}: {trial.judge} has had every question of the set that has not failed"
                    )
                    continue
                answers = answer_indices(
                    QuestionInfo(id=question.pk, n_choices=len(question.choices), correct_index=question.correct_index),
                    trial.honest_side,
                    random.Random(f"{experiment.seed}-answers-{trial.pk}"),
                )
            replacement = _trial_create(
                experiment,
                replaces=trial,
                question=question,
                judge_id=trial.judge_id,
                honest_side=trial.honest_side,
                answer_a_index=answers[0],
                answer_b_index=answers[1],
                first_speaker=trial.first_speaker,
                consultant_side=trial.consultant_side,
                assistant_side=trial.assistant_side,
                queue_position=trial.queue_position,
                condition=trial.condition,
                protocol=trial.protocol,
                honest_config_id=trial.honest_config_id,
                adversary_config_id=trial.adversary_config_id,
                honest_person_id=trial.honest_person_id,
                adversary_person_id=trial.adversary_person_id,
                role=trial.role,
            )
            if question.pk == trial.question_id:
                done.same_question += 1
            else:
                done.new_question += 1
                baseline |= replacement.protocol_spec.model_alone_baseline
            any_pregenerated |= not replacement.live
        if any_pregenerated:
            _announce_after_commit(turns_pending, experiment.pk, done.delivery)
        if baseline:  # the model alone answers the new question too
            _announce_after_commit(model_alone_requested, experiment.pk, done.delivery)
    return done


def generation_requeue(*, experiment_ids, delivery: Delivery | None = None) -> int:
    """After a broker restart or a dead worker: release stale claims and ask again for the experiments'
    generation. Returns the stale claims released."""
    stale = stale_claims_release()
    for experiment_id in experiment_ids:
        _announce_after_commit(turns_pending, experiment_id, delivery)
    return stale


def debate_rules(experiment: Experiment, trial: Trial) -> debate.DebateRules:
    """The rules a trial runs under, from its protocol's declaration (judging.protocols.registry)."""
    return trial.protocol_spec.rules(
        registry.TrialSetup(
            rounds=experiment.rounds,
            turn_style=experiment.turn_style,
            first_speaker=trial.first_speaker,
            speaker_side=trial.speaker_side,
            condition=trial.condition,
            live=trial.live,
            min_rounds=experiment.min_rounds,
            extra_round_after_flip=experiment.extra_round_after_flip,
        )
    )


def transcript_speeches(turns) -> list[debate.Speech]:
    return [
        debate.Speech(speaker=t.speaker, round=t.round, text=t.text, addressed_to=tuple(t.addressed_to)) for t in turns
    ]


def debate_state(trial: Trial) -> debate.DebateState:
    """The protocol state of a trial, from its finished turns and the judge's recorded moves."""
    done = [t for t in trial.turns.all() if t.status == Turn.Status.DONE]
    return debate.replay(
        debate_rules(trial.experiment, trial),
        transcript_speeches(sorted(done, key=lambda t: t.index)),
        leanings=tuple((int(r), float(p)) for r, p in trial.leanings),
        ended_by_judge=trial.ended_by_judge,
    )


def turns_due(trial: Trial) -> list[Turn]:
    """The pending turns of a trial that its protocol says may be spoken now (the next speaker of a
    sequential round, both of a simultaneous one), in transcript order; none once a turn has failed.
    Generation takes the models' (generation.selection); human debaters write the rest."""
    turns = sorted(trial.turns.all(), key=lambda t: t.index)
    if any(t.status == Turn.Status.FAILED for t in turns):
        return []
    state = debate_state(trial)
    due = set(state.next_speakers())
    return [t for t in turns if t.status == Turn.Status.PENDING and t.speaker in due and t.round == state.current_round]


def _round_speakers(experiment: Experiment, trial: Trial) -> tuple[str, ...]:
    """Speakers of one round in transcript order."""
    rules = debate_rules(experiment, trial)
    return rules.speaking_order if rules.turn_style == debate.SEQUENTIAL else rules.speakers


def _create_round_turns(experiment: Experiment, trial: Trial, round_number: int, first_index: int) -> None:
    """One pending turn per speaker of the round, each for the configuration on that speaker's side, or
    for the person there (a human debater writes it: ``speech_submit``; it is never generated)."""
    Turn.objects.bulk_create(
        Turn(
            trial=trial,
            index=first_index + i,
            round=round_number,
            speaker=s,
            model_config=None if trial.person_for(s) else trial.config_for(s),
            author=trial.person_for(s),
        )
        for i, s in enumerate(_round_speakers(experiment, trial))
    )


def next_round_turns(trial: Trial) -> list[Turn]:
    """The model turns of a live trial's next round, unsaved: none exist until the judge continues or asks. A
    worker prefills their prompts while the judge reads the round just spoken; the real prompts share all but
    what comes after the round just spoken (the judge's question, an earlier speaker's speech of the same round
    in sequential rounds, the closing line), so only that is left to prefill then (docs/limits.md)."""
    if not trial.live:
        return []
    state = debate_state(trial)
    if not state.between_rounds():
        return []
    next_index = max((t.index for t in trial.turns.all()), default=-1) + 1
    return [
        Turn(trial=trial, index=next_index + i, round=state.current_round, speaker=s, model_config=trial.config_for(s))
        for i, s in enumerate(_round_speakers(trial.experiment, trial))
        if trial.person_for(s) is None
    ]


def _trial_create(experiment: Experiment, **fields) -> Trial:
    """A trial of a launched experiment, with its debater turns pending when it is pre-generated."""
    protocol = registry.PROTOCOLS[fields["protocol"]]
    # Some protocols are live whatever the mode (sandwiching: the judge talks to the assistant).
    live = experiment.mode == Experiment.Mode.LIVE or protocol.always_live
    trial = Trial.objects.create(
        experiment=experiment,
        live=live,
        # A live trial is judgeable at once: its rounds are generated while the judge watches.
        status=Trial.Status.READY if live else Trial.Status.GENERATING,
        **fields,
    )
    if not live:
        per_round = len(_round_speakers(experiment, trial))
        for r in range(1, experiment.rounds + 1):
            _create_round_turns(experiment, trial, r, first_index=(r - 1) * per_round)
    return trial


def launch_provenance(experiment: Experiment, judge_ids: list[int]) -> dict:
    """What the experiment runs with, frozen now: exports read this, never the configurations as they
    are later (a configuration edited or renamed after launch changes no experiment's record)."""
    question_set = experiment.question_set
    return {
        "captured_at": experiment.launched_at.isoformat(),
        "platform": {"version": settings.PLATFORM_VERSION, "commit": settings.PLATFORM_COMMIT or None},
        "configs": {"debater": experiment.debater_model.provenance()},
        # Every configuration that speaks (the debater model and the line-ups'), by id: trials name theirs.
        "speakers": {str(config.pk): config.provenance() for config in experiment_configs(experiment)},
        "lineup": [
            {"arm": m.arm, "config_id": m.model_config_id, "role": m.role}
            # A human debater: who (researchers only; judges never see provenance).
            | ({"person": m.person.get_username()} if m.person_id else {})
            for m in experiment.lineup.select_related("person").order_by("id")
        ],
        "question_set": {
            "id": question_set.pk,
            "name": question_set.name,
            "source": question_set.source,
            "questions": question_set.questions.count(),
        },
        "design": {
            name: getattr(experiment, name)
            for name in (
                "conditions",
                "num_questions",
                "judgments_per_question",
                "mode",
                "rounds",
                "min_rounds",
                "extra_round_after_flip",
                "turn_style",
                "char_limit",
                "quote_limit",
                "scoring_rule",
                "round_penalty",
                "seed",
                "pairing",
                "avoid_reexposure",
                # Onboarding and quality control (docs/onboarding.md): what judges read, practised and met.
                "instructions",
                "practice_trials",
                "practice_question_set_id",
                "qualification_accuracy",
                "attention_rate",
                "attention_question_set_id",
                "feedback",
            )
        }
        | {"judges": list(get_user_model().objects.filter(pk__in=judge_ids).values_list("username", flat=True))},
        "plan": {name: getattr(experiment, name) for name in Experiment.PLAN_FIELDS},
    }


def experiment_configs(experiment: Experiment) -> list[ModelConfig]:
    """Every configuration that speaks in the experiment: the debater model and its line-up."""
    members = experiment.lineup.filter(model_config__isnull=False)  # people are not configurations
    ids = {experiment.debater_model_id, *members.values_list("model_config_id", flat=True)}
    return list(ModelConfig.objects.filter(pk__in=ids).order_by("pk"))


def design_cells(experiment: Experiment) -> list[lineups.Cell]:
    """The experiment's design cells: its arms split by their line-ups' pairings (judging.lineups)."""
    members: dict[str, list[lineups.Member]] = {}
    for member in experiment.lineup.order_by("id"):
        members.setdefault(member.arm, []).append(member.as_member())
    return lineups.design_cells(experiment.conditions, members, experiment.pairing, experiment.debater_model_id)


def questions_seen(experiment: Experiment, judge_ids: list[int]) -> dict[int, set[int]]:
    """For each judge, the questions of this experiment's set they were given in any other experiment
    (any trial, judged or not: a question shown once is no longer new to them)."""
    seen: dict[int, set[int]] = {}
    trials = Trial.objects.filter(judge_id__in=judge_ids, question__question_set_id=experiment.question_set_id)
    for judge_id, question_id in trials.exclude(experiment=experiment).values_list("judge_id", "question_id"):
        seen.setdefault(judge_id, set()).add(question_id)
    return seen


def questions_debated(judge_ids: list[int]) -> dict[int, set[int]]:
    """For each judge, the questions they argued as a human debater, in any experiment and of any set (a
    practice or attention-check set is another experiment's study set): they read the passage, so they never
    judge those questions."""
    seen: dict[int, set[int]] = {}
    trials = Trial.objects.all()
    for side in ("honest_person_id", "adversary_person_id"):
        for person_id, question_id in trials.filter(**{f"{side}__in": judge_ids}).values_list(side, "question_id"):
            seen.setdefault(person_id, set()).add(question_id)
    return seen


def questions_to_avoid(experiment: Experiment, judge_ids: list[int]) -> dict[int, set[int]]:
    """For each judge, the questions of the set they must not judge in this experiment: those they argued
    as a human debater (always), and with the exposure registry on, those they were given elsewhere. The
    launch plans around them, and a replacement never takes one."""
    avoid = questions_debated(judge_ids)
    if experiment.avoid_reexposure:
        for judge_id, given in questions_seen(experiment, judge_ids).items():
            avoid.setdefault(judge_id, set()).update(given)
    return avoid


def _refuse_debating_what_they_judge(plans) -> None:
    """A person may not argue a question they still have to judge in another experiment (launched earlier):
    arguing it, they read its passage. Their judged trials are past help, and later ones plan around what
    they argued (``questions_debated``)."""
    arguing = {(person, p.question_id) for p in plans for person in (p.honest_person, p.adversary_person) if person}
    if not arguing:
        return
    persons, questions = {person for person, _ in arguing}, {question for _, question in arguing}
    to_judge = (
        Trial.objects.filter(judge_id__in=persons, question_id__in=questions)
        .exclude(experiment__status=Experiment.Status.CLOSED)  # a closed experiment's trials are never judged
        .may_still_be_judged()
        .values_list("judge_id", "question_id", "judge__username", "experiment__name")
    )
    clashes = [
        (name, question, experiment) for judge, question, name, experiment in to_judge if (judge, question) in arguing
    ]
    if clashes:
        names = ", ".join(sorted({name for name, _, _ in clashes}))
        count = len({(name, question) for name, question, _ in clashes})
        where = ", ".join(sorted({repr(experiment) for _, _, experiment in clashes}))
        raise LaunchError(
            f"{names} would argue {count} question(s) they still have to judge (in {where}): a debater reads "
            "the passage. Launch once they have judged those trials, or take them out of the line-up."
        )


def _refuse_judging_debaters(experiment: Experiment, judge_ids: list[int]) -> None:
    """A human debater reads the passages of the questions they argue, so may not judge in the same experiment."""
    both = experiment.lineup.filter(person_id__in=judge_ids).select_related("person").order_by("person_id")
    if both.exists():
        names = ", ".join(sorted({m.person.get_username() for m in both}))
        raise LaunchError(
            f"{names} would both judge and debate in this experiment: a debater reads the passages, so cannot judge "
            "them. Take them out of the judges or out of the line-up."
        )


def _question_infos(question_set_id: int) -> list[QuestionInfo]:
    return [
        QuestionInfo(id=pk, n_choices=len(choices), correct_index=correct)
        for pk, choices, correct in Question.objects.filter(question_set_id=question_set_id)
        .order_by("pk")
        .values_list("pk", "choices", "correct_index")
    ]


def _with_onboarding_trials(experiment: Experiment, plans, judge_ids, questions, seen) -> list:
    """The study's plans with each judge's practice trials and attention checks (docs/onboarding.md)."""
    if experiment.attention_rate > 0 and experiment.attention_question_set_id is None:
        raise LaunchError(
            "attention checks need their own question set (easy questions with unambiguous answers): choose one, "
            "or set the attention-check rate to 0"
        )
    practice_set = experiment.practice_question_set_id
    return plan_onboarding_trials(
        plans,
        judge_ids,
        practice_per_judge=experiment.practice_trials,
        # Blank: the experiment's own set, without the questions sampled for the study.
        practice_questions=_question_infos(practice_set) if practice_set else questions,
        attention_rate=experiment.attention_rate,
        attention_questions=_question_infos(experiment.attention_question_set_id)
        if experiment.attention_rate > 0
        else [],
        seed=experiment.seed,
        seen=seen,
    )


def experiment_launch(*, experiment: Experiment, delivery: Delivery | None = None) -> int:
    """Create the trials and their pending turns, then queue generation.

    Returns the number of trials created; ``delivery`` learns whether the work reached the broker. A
    launched experiment cannot be launched again (checked under a row lock, so a double click is harmless).
    """
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status != Experiment.Status.DRAFT:
            raise LaunchError(f"experiment {experiment.name!r} has already been launched")
        questions = _question_infos(experiment.question_set_id)
        judge_ids = sorted(experiment.judges.values_list("id", flat=True))
        _refuse_judging_debaters(experiment, judge_ids)
        seen = questions_to_avoid(experiment, judge_ids)
        try:
            plans = plan_trials(
                questions,
                judge_ids,
                num_questions=experiment.num_questions,
                judgments_per_question=experiment.judgments_per_question,
                seed=experiment.seed,
                arms=experiment.conditions,
                cells=design_cells(experiment),
                seen=seen or None,
            )
            plans = _with_onboarding_trials(experiment, plans, judge_ids, questions, seen)
        except ValueError as exc:
            raise LaunchError(str(exc)) from exc
        _refuse_debating_what_they_judge(plans)
        any_pregenerated = False
        for plan in plans:
            protocol = registry.PROTOCOLS[plan.protocol]
            trial = _trial_create(
                experiment,
                question_id=plan.question_id,
                judge_id=plan.judge_id,
                honest_side=plan.honest_side,
                answer_a_index=plan.answer_a_index,
                answer_b_index=plan.answer_b_index,
                first_speaker=plan.first_speaker,
                queue_position=plan.queue_position,
                **({protocol.speaker_side_field: plan.speaker_side} if protocol.speaker_side_field else {}),
                condition=plan.condition,
                protocol=plan.protocol,
                honest_config_id=plan.honest_config,
                adversary_config_id=plan.adversary_config,
                honest_person_id=plan.honest_person,
                adversary_person_id=plan.adversary_person,
                role=plan.role,
            )
            any_pregenerated |= not trial.live
        experiment.status = Experiment.Status.LAUNCHED
        experiment.launched_at = timezone.now()
        experiment.provenance = launch_provenance(experiment, judge_ids)
        experiment.save(update_fields=["status", "launched_at", "provenance"])
        if any_pregenerated:
            _announce_after_commit(turns_pending, experiment.pk, delivery)
        if any(registry.PROTOCOLS[plan.protocol].model_alone_baseline for plan in plans):
            _announce_after_commit(model_alone_requested, experiment.pk, delivery)
    return len(plans)


def experiment_close(*, experiment: Experiment) -> int:
    """Close a launched experiment: no trial of it is opened, judged, skipped or generated any more, and its
    judges may see their results (judging.feedback). Returns the trials left unjudged (ready, in progress or
    being prepared), which stay in the data as they are.

    Under the experiment's row lock, for update: opening a trial, verdicts, moves, beats, skips and a person's speech
    lock it for share (``_lock_trial``), so none is recorded after the close; closing twice is refused (a double
    click is harmless).
    """
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status == Experiment.Status.DRAFT:
            raise CloseError(f"experiment {experiment.name!r} has not been launched: there is nothing to close")
        if experiment.status == Experiment.Status.CLOSED:
            raise CloseError(f"experiment {experiment.name!r} was closed on {experiment.closed_at:%Y-%m-%d %H:%M} UTC")
        experiment.status = Experiment.Status.CLOSED
        experiment.closed_at = timezone.now()
        experiment.save(update_fields=["status", "closed_at"])
        return experiment.trials.filter(status__in=[Trial.Status.GENERATING, Trial.Status.READY]).count()


def _refuse_if_closed(experiment: Experiment, refusal: type[VerdictRefused]) -> None:
    if experiment.status == Experiment.Status.CLOSED:
        raise refusal(CLOSED, status=409)


# The configurations a trial's debaters speak with (Trial.config_for), read with the trial where turns are made.
TRIAL_CONFIGS = ("honest_config", "adversary_config")


def _lock_trial(trial_id: int, judge=None, related: tuple[str, ...] = ()) -> Trial | None:
    """The trial (``judge``'s, where given), locked for update, with its experiment (and ``related``) read; or None.

    Its experiment's row is locked *for share* first: so the moves, beats, verdicts and skips of the different
    trials of one experiment go on side by side (a lock for update taken with the trial's would queue every judge
    of the experiment behind each other), while a close, which locks the experiment for update, waits for those in
    flight and they for it: none is recorded after the close (``experiment_close``). Lock order: the judge's queue
    where it is locked (``_lock_queue``: opening and skipping), then the experiment, then the trial; a transaction
    that locks an experiment for update (launch, close, replacements) must never then lock a ready trial. Where
    there is no select ... for update (SQLite), a write transaction locks the whole database instead."""
    if connection.features.has_select_for_update_of:
        q = connection.ops.quote_name
        trial, experiment = q(Trial._meta.db_table), q(Experiment._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {experiment} WHERE {q('id')} IN "
                f"(SELECT {q('experiment_id')} FROM {trial} WHERE {q('id')} = %s) FOR SHARE",
                [trial_id],
            )
    if judge is not None and judge.pk is None:  # no such person (anonymous): nobody's trial, never any trial
        return None
    # select_for_update(of=("self",)).select_related("experiment", *related), by a statement made once per process.
    return trial_read.locked_trial(trial_id, None if judge is None else judge.pk, related)


def _lock_queue(judge_id: int) -> None:
    """Lock the judge's ready trials, so that two tabs cannot open or skip two trials at once."""
    # Only the trials' rows (of "self"), in one order: the default ordering joins their experiments, whose rows a
    # plain FOR UPDATE would lock too, breaking the lock order (``_lock_trial``: a beat holds its experiment for
    # share, then waits for its trial) and making every start wait for the whole experiment's beats and moves.
    trials = Trial.objects.select_for_update(of=("self",)).filter(judge_id=judge_id, status=Trial.Status.READY)
    list(trials.order_by("pk").values_list("pk"))


def trial_check_next(trial: Trial) -> None:
    """TrialRefused unless the trial is one the judge may start now (their next, or one they opened);
    changes nothing. The trial page asks before it offers *Start*."""
    _refuse_unless_next(trial)


class InstructionsFirst(TrialRefused):
    """A trial of an experiment whose instructions the judge has not confirmed yet: the page sends them there."""

    def __init__(self, experiment_id: int):
        super().__init__("read the instructions of this study and confirm them before your first trial", status=409)
        self.experiment_id = experiment_id


def instructions_pending(experiment: Experiment, judge_id: int) -> bool:
    """Whether the judge must still read and confirm the experiment's instructions (docs/onboarding.md)."""
    if not experiment.instructions.strip():
        return False
    read = Onboarding.objects.filter(experiment=experiment, judge_id=judge_id, instructions_read_at__isnull=False)
    return not read.exists()


def instructions_confirm(*, experiment_id: int, judge) -> Onboarding:
    """The judge confirms they have read the experiment's instructions (server clock); confirming again changes
    nothing. TrialRefused (404) for an experiment that gave them no trials."""
    experiment = Experiment.objects.filter(pk=experiment_id, trials__judge=judge).exclude(
        status=Experiment.Status.DRAFT
    )
    if not experiment.exists():
        raise TrialRefused("no such study in your queue", status=404)
    with transaction.atomic():
        onboarding = _onboarding_locked(experiment_id, judge.pk)
        if onboarding.instructions_read_at is None:
            onboarding.instructions_read_at = timezone.now()
            onboarding.save(update_fields=["instructions_read_at"])
    return onboarding


def _onboarding_locked(experiment_id: int, judge_id: int) -> Onboarding:
    """The judge's onboarding in the experiment, made if missing, locked until the transaction ends."""
    try:
        with transaction.atomic():
            Onboarding.objects.get_or_create(experiment_id=experiment_id, judge_id=judge_id)
    except IntegrityError:  # made at the same moment by another request: it exists now
        pass
    return Onboarding.objects.select_for_update().get(experiment_id=experiment_id, judge_id=judge_id)


def _practice_settle(trial: Trial) -> None:
    """After a practice trial is judged or skipped (in that transaction): count the judge's practice, and once
    none is left to do, decide their qualification where the experiment sets a threshold. Accuracy is the
    share of their practice trials judged correctly among those judged or skipped (a skip counts as not
    correct); a failed one waits for its replacement (``practice_to_answer``). Below the threshold, their study
    trials and attention checks not yet judged are withdrawn, in the same transaction: never shown, counted in
    the attrition as not qualified. Decided once (under the onboarding's row lock)."""
    experiment = trial.experiment
    onboarding = _onboarding_locked(experiment.pk, trial.judge_id)
    practice = Trial.objects.filter(experiment=experiment, judge_id=trial.judge_id, role=Trial.Role.PRACTICE)
    judged = practice.filter(status=Trial.Status.JUDGED)
    onboarding.practice_judged = judged.count()
    onboarding.practice_correct = judged.filter(verdict__chosen=F("honest_side")).count()
    left = practice.practice_to_answer().exists()
    answered = onboarding.practice_judged + practice.filter(status=Trial.Status.SKIPPED).count()
    threshold = experiment.qualification_accuracy
    if threshold is not None and onboarding.decided_at is None and not left and answered:
        # A tolerance, so that 3 of 4 meets a threshold of 0.75 whatever the float rounding.
        onboarding.qualified = onboarding.practice_correct >= threshold * answered - 1e-9
        onboarding.decided_at = timezone.now()
        if not onboarding.qualified:
            Trial.objects.filter(
                experiment=experiment,
                judge_id=trial.judge_id,
                role__in=[Trial.Role.STUDY, Trial.Role.ATTENTION],
                status__in=[Trial.Status.READY, Trial.Status.GENERATING],
            ).update(status=Trial.Status.WITHDRAWN)
    onboarding.save()


def _refuse_unless_next(trial: Trial) -> None:
    """A judge works on their next trial only (``Trial.objects.queue_of``); one they have opened stays theirs
    to finish. Call under ``_lock_queue``."""
    _refuse_if_closed(trial.experiment, TrialRefused)
    if trial.status == Trial.Status.SKIPPED:
        raise TrialRefused("you skipped this trial", status=409)
    if trial.status == Trial.Status.JUDGED:
        raise TrialRefused("you have already given a verdict on this trial", status=409)
    if trial.status != Trial.Status.READY:
        raise TrialRefused("no such trial in your queue", status=404)
    if trial.opened_at is not None:
        return
    if instructions_pending(trial.experiment, trial.judge_id):
        raise InstructionsFirst(trial.experiment_id)
    following = Trial.objects.queue_of(trial.judge_id).values_list("pk", flat=True).first()
    if following != trial.pk:
        raise TrialRefused(NOT_NEXT, status=409)


def _refuse_unless_opened(trial: Trial, refusal: type[VerdictRefused]) -> None:
    """Moves and verdicts are for a trial the judge has opened, which only their next trial can be."""
    if trial.status == Trial.Status.WITHDRAWN:
        # Withdrawn after it was opened (the study is held while practice is left, so only a trial opened
        # before that rule, or by hand, can be): gone.
        raise refusal("no such trial in your queue", status=404)
    if trial.status == Trial.Status.SKIPPED:
        raise refusal("you skipped this trial", status=409)
    if trial.opened_at is None:
        raise refusal(
            "open this trial first: trials are judged one at a time, in the order planned for you", status=409
        )


def trial_open(*, trial: Trial) -> None:
    """Record when the judge first opened a trial (they pressed *Start*: a POST, never a page view); a live
    trial's first round starts then.

    Only the judge's next trial may be opened (TrialRefused otherwise, and nothing changes), so
    judges judge in the planned order and cannot choose among their trials.
    """
    _refuse_if_closed(trial.experiment, TrialRefused)
    starts_debate = trial.live and debate_rules(trial.experiment, trial).rounds > 0
    if trial.opened_at is not None and (not starts_debate or trial.turns.exists()):
        return  # opened before, and its debate begun: a second press of *Start* changes nothing
    with transaction.atomic():
        if trial.opened_at is None:
            _lock_queue(trial.judge_id)
        # Ordered with a close (``_lock_trial``): no trial is opened once its experiment is closed. Its debaters'
        # configurations read with it: the first round's turns are made for them.
        locked = _lock_trial(trial.pk, related=TRIAL_CONFIGS)
        _refuse_if_closed(locked.experiment, TrialRefused)
        if locked.opened_at is None:
            _refuse_unless_next(locked)
            locked.opened_at = timezone.now()
            Trial.objects.filter(pk=trial.pk).update(opened_at=locked.opened_at)
        trial.opened_at = locked.opened_at
        if starts_debate and not locked.turns.exists():  # not started by a concurrent request
            _create_round_turns(locked.experiment, locked, 1, first_index=0)
            _announce_after_commit(turns_pending, trial.experiment_id)


def trial_skip(*, trial_id: int, judge, reason: str) -> Trial:
    """The judge skips their next trial (or the one they have open), giving a reason; or TrialRefused,
    and nothing changes. A skipped trial leaves the queue for good and counts as attrition."""
    reason = (reason or "").replace("\x00", "").strip()
    if not reason:
        raise TrialRefused("say in a few words why you skip this trial")
    if len(reason) > SKIP_REASON_MAX:
        raise TrialRefused(f"the reason is limited to {SKIP_REASON_MAX} characters")
    with transaction.atomic():
        _lock_queue(judge.pk)
        trial = _lock_trial(trial_id, judge)
        if trial is None:  # unknown, or someone else's: the same answer, so ids leak nothing
            raise TrialRefused("no such trial in your queue", status=404)
        if trial.status == Trial.Status.SKIPPED:
            raise TrialRefused("you have already skipped this trial", status=409)
        _refuse_unless_next(trial)
        Trial.objects.filter(pk=trial.pk, status=Trial.Status.READY).update(
            status=Trial.Status.SKIPPED, skipped_at=timezone.now(), skip_reason=reason
        )
        if trial.role == Trial.Role.PRACTICE:
            _practice_settle(trial)
    trial.refresh_from_db()
    return trial


class BeatRefused(VerdictRefused):
    """A heartbeat of the trial page that is not taken (bad fields, someone else's trial, a judged one)."""


class MoveRefused(VerdictRefused):
    """A live-trial move (question, continue, end, leaning) that is not accepted."""


def live_move(
    *, trial_id: int, judge, action: str, text: str = "", addressed_to=("A", "B"), chosen=None, probability=None
) -> None:
    """Apply a judge's move to a live trial, or raise MoveRefused and change nothing.

    Actions: "ask" (a question; the next round answers it), "continue" (next round
    without a question), "end" (stop debating and give a verdict), "lean" (record the
    current leaning, given like a verdict: the answer ``chosen`` and the ``probability``
    that it is correct; stored as the probability that A is correct, docs/scoring.md).
    """
    with transaction.atomic():
        trial = _lock_trial(trial_id, judge, related=TRIAL_CONFIGS)  # a next round's turns are made for them
        if trial is None:
            raise MoveRefused("no such trial in your queue", status=404)
        experiment = trial.experiment
        if not trial.live:
            raise MoveRefused("this trial is not live: its debate was generated in advance", status=409)
        if trial.status == Trial.Status.JUDGED:
            raise MoveRefused("you have already given a verdict on this trial", status=409)
        _refuse_if_closed(experiment, MoveRefused)
        _refuse_unless_opened(trial, MoveRefused)
        # Read once, in transcript order, for the checks below and the protocol's replay (debate_state), by a
        # statement made once per process (their prompts, model settings and candidates are not read: not needed).
        trial_read.prefetch_turns(trial)
        turns = list(trial.turns.all())
        if any(t.status != Turn.Status.DONE for t in turns):
            raise MoveRefused("the debaters are still speaking; wait for this round to finish", status=409)
        state = debate_state(trial)
        next_index = max((t.index for t in turns), default=-1) + 1
        try:
            if action == "ask":
                if not trial.protocol_spec.judge_chooses_addressee:
                    addressed_to = state.rules.speakers  # there is only the consultant or assistant to ask
                text = (text or "").replace("\x00", "").strip()
                if len(text) > 1000:
                    raise debate.IllegalMove("a question is limited to 1000 characters")
                state.apply_judge_question(text, tuple(addressed_to))
                Turn.objects.create(
                    trial=trial,
                    index=next_index,
                    round=state.completed_rounds,
                    speaker=debate.JUDGE,
                    addressed_to=list(addressed_to),
                    status=Turn.Status.DONE,
                    text=text,
                    finished_at=timezone.now(),
                )
                _create_round_turns(experiment, trial, state.current_round, first_index=next_index + 1)
            elif action == "continue":
                if not state.between_rounds():
                    raise debate.IllegalMove("there is no next round to start now")
                _create_round_turns(experiment, trial, state.current_round, first_index=next_index)
            elif action == "end":
                state.apply_end()
                trial.ended_by_judge = True
                trial.save(update_fields=["ended_by_judge"])
            elif action == "lean":
                side, p = _parse_judgement(chosen, probability)
                # Rounded so that B at 0.7 is stored as 0.3 for A, not 0.30000000000000004.
                state = state.apply_leaning(p if side == "A" else round(1.0 - p, 10))
                trial.leanings = [list(entry) for entry in state.leanings]
                trial.save(update_fields=["leanings"])
            else:
                raise MoveRefused(f"unknown action {action!r}")
        except (debate.IllegalMove, VerdictRefused) as exc:
            raise MoveRefused(str(exc), status=409 if isinstance(exc, debate.IllegalMove) else 400) from exc
        if action in ("ask", "continue"):
            _announce_after_commit(turns_pending, experiment.pk)


class SpeechRefused(VerdictRefused):
    """A human debater's speech that is not taken (not theirs, not due, too long, already written)."""


def speech_text(text) -> str:
    """A speech as a person typed it, as it is stored and counted: line ends as one character each."""
    return (text or "").replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").strip()


def speech_submit(*, turn_id: int, person, text: str) -> Turn:
    """Record a human debater's speech for their pending turn, or raise SpeechRefused and change nothing.

    Only the turn's author may write it, only when the protocol says their side speaks now
    (``turns_due``), within the speech's character limit; a second submission is refused (409). Then
    exactly what follows a model's turn: the trial settles (a pre-generated one becomes ready once every
    turn is done) and the turns now due are sent to generation; the caller then records a live judge's
    response delay (``selectors.record_response_delays``, as generation.session does after a model's
    turn). Quotes are not refused: like a model's, they are checked and shown to the judge as verified
    or unverified (over budget shown as unverified: judging.quotes).
    """
    text = speech_text(text)
    with transaction.atomic():
        turn = Turn.objects.filter(pk=turn_id, author=person).exclude(speaker=debate.JUDGE).first()
        if turn is None:  # unknown, or someone else's: the same answer, so ids leak nothing
            raise SpeechRefused("no such speech of yours", status=404)
        # The trial's row lock orders this with the judge's moves and a second submission.
        trial = _lock_trial(turn.trial_id, related=("question",))
        turn.refresh_from_db()
        if turn.status == Turn.Status.DONE:
            raise SpeechRefused("you have already submitted this speech", status=409)
        if trial.status not in (Trial.Status.GENERATING, Trial.Status.READY) or trial.experiment.status != (
            Experiment.Status.LAUNCHED
        ):
            raise SpeechRefused("this debate has ended: the speech is no longer needed", status=409)
        if not text:
            raise SpeechRefused("write your speech before submitting it")
        limit = trial.speech_char_limit
        if len(text) > limit:
            raise SpeechRefused(
                f"your speech has {len(text)} characters; the limit is {limit}. Shorten it and submit again."
            )
        if turn.pk not in {t.pk for t in turns_due(trial)}:
            raise SpeechRefused("it is not your turn to speak yet: wait for the round to reach you", status=409)
        Turn.objects.filter(pk=turn.pk, status=Turn.Status.PENDING).update(
            status=Turn.Status.DONE, text=text, finished_at=timezone.now(), error=""
        )
        trials_settle({trial.pk})
        _announce_after_commit(turns_pending, trial.experiment_id)
    turn.refresh_from_db()
    return turn


def _ascii_number(raw, parse):
    """A number the page sends, parsed with ``parse`` (float or int) only if written in ASCII: Python's
    parsers also read other scripts' digits (a full-width "１" as 1), which no page of ours sends."""
    text = str(raw)
    if not text.isascii():
        raise ValueError(f"not an ASCII number: {text!r}")
    return parse(text)


def _parse_probability(raw) -> float:
    try:
        value = _ascii_number(raw, float)
    except (TypeError, ValueError):
        raise VerdictRefused("the probability must be a number between 0 and 1") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise VerdictRefused("the probability must be between 0 and 1")
    return value


def _parse_judgement(chosen, probability) -> tuple[str, float]:
    """An answer and the probability that it is correct, in [0.5, 1]: what the judge gives in a verdict and
    in a leaning (one convention for both, docs/scoring.md). The probability has no default."""
    if chosen not in ("A", "B"):
        raise VerdictRefused("choose answer A or answer B")
    if probability is None or not str(probability).strip():
        raise VerdictRefused("say how likely the answer you chose is to be correct: move the slider to set it")
    p = _parse_probability(probability)
    if p < 0.5:
        raise VerdictRefused(
            "your probability for the answer you chose must be at least 0.5; choose the other answer instead"
        )
    return chosen, p


# Active time is summed on the server from the trial page's heartbeats (trial.js sends one every
# JUDGE_BEAT_SECONDS while the page is visible and the judge active; docs/throughput.md, "What counts as
# active"). A beat adds the time since the previous accepted beat, by the server's clock, only when that gap
# is at most the interval plus this slack (a slow reply, a busy browser): a longer gap means the page stopped
# beating (hidden, idle, closed, asleep), and nothing in it is known to be active.
BEAT_SLACK_SECONDS = 15
# A page load's id: random, from the browser (bounded here, never trusted beyond telling page loads apart).
BEAT_PAGE_ID_MAX = 32


def _active_time_add(clock: ActiveTime, now, round_shown: int) -> None:
    """Add to ``clock`` the time since its last accepted beat if the page has been beating since (not saved)."""
    gap = (now - clock.beat_at).total_seconds()
    if 0 < gap <= settings.JUDGE_BEAT_SECONDS + BEAT_SLACK_SECONDS:
        key = str(round_shown)
        clock.seconds += gap
        clock.seconds_by_round[key] = clock.seconds_by_round.get(key, 0.0) + gap
    clock.beat_at = now


def active_time_beat(*, trial_id: int, judge, page, seq, fresh: bool) -> ActiveTime:
    """One heartbeat of the judge's open trial page; raise BeatRefused and change nothing if it is refused.

    ``page`` tells page loads apart and ``seq`` numbers a load's beats from 1. A beat that is not
    ``fresh`` adds the time since the previous accepted beat, bounded as above, to the round shown now. A
    fresh beat (the page was just loaded or shown, or the judge came back from idling) adds nothing: it
    starts the count again. A beat the server has already taken from this page (a duplicate, or one that
    arrives after a later one) adds nothing and moves nothing. Whatever the page sends, the sum can never
    outgrow the server's own clock: each accepted beat counts only time since the one before.
    """
    page = str(page or "")
    try:
        seq = _ascii_number(seq, int)
    except (TypeError, ValueError):
        raise BeatRefused("a beat needs its number") from None
    if not page or len(page) > BEAT_PAGE_ID_MAX or not page.isascii() or not page.isalnum():
        raise BeatRefused("a beat needs its page's id")
    if not 1 <= seq <= 2**31 - 1:
        raise BeatRefused("a beat's number must be a positive integer")
    with transaction.atomic():
        # The trial's row lock orders beats with each other and with the verdict, so no beat counts twice
        # and none adds time after the verdict.
        trial = _lock_trial(trial_id, judge)
        if trial is None:  # unknown, or someone else's: the same answer, so ids leak nothing
            raise BeatRefused("no such trial in your queue", status=404)
        if trial.status == Trial.Status.JUDGED:
            raise BeatRefused("this trial is judged: its time is no longer counted", status=409)
        _refuse_if_closed(trial.experiment, BeatRefused)
        _refuse_unless_opened(trial, BeatRefused)
        now = timezone.now()
        clock = ActiveTime.objects.filter(trial=trial).first()
        if clock is None:  # the first beat on this trial starts its count
            return ActiveTime.objects.create(trial=trial, beat_at=now, beat_page=page, beat_seq=seq)
        if page == clock.beat_page and seq <= clock.beat_seq:
            return clock
        if fresh:
            clock.beat_at = now
        else:
            trial_read.prefetch_turns(trial)  # by a statement made once: a beat is the commonest request of all
            _active_time_add(clock, now, debate_state(trial).completed_rounds)
        clock.beat_page, clock.beat_seq = page, seq
        clock.save()
    return clock


def verdict_submit(*, trial_id: int, judge, chosen: str, probability, rationale: str) -> Verdict:
    """Record a judge's verdict, or raise VerdictRefused and change nothing.

    Its active time is the trial's, summed from the page's heartbeats over every visit (ActiveTime); the
    submission counts as the page's last beat. Pages from before heartbeats also post their own
    active_seconds and active_by_round: those are never read (the browser's count restarted with every
    reload). A trial whose page never beat (JavaScript off) has no active time (None), not 0."""
    chosen, p = _parse_judgement(chosen, probability)
    rationale = (rationale or "").replace("\x00", "").strip()
    if not rationale:
        raise VerdictRefused("write a short rationale for your verdict")
    if len(rationale) > 5000:
        raise VerdictRefused("the rationale is limited to 5000 characters")
    with transaction.atomic():
        trial = _lock_trial(trial_id, judge)
        if trial is None:  # unknown, or someone else's: the same answer, so ids leak nothing
            raise VerdictRefused("no such trial in your queue", status=404)
        if Verdict.objects.filter(trial=trial).exists():
            raise VerdictRefused("you have already given a verdict on this trial", status=409)
        _refuse_if_closed(trial.experiment, VerdictRefused)
        _refuse_unless_opened(trial, VerdictRefused)
        trial_read.prefetch_turns(trial)  # for the protocol's replay, as a beat reads them
        state = debate_state(trial)
        try:
            state.apply_verdict(chosen, p)
        except debate.IllegalMove as exc:
            raise VerdictRefused(str(exc), status=409) from exc
        now = timezone.now()
        opened = trial.opened_at or now
        experiment = trial.experiment
        verdict_score = scoring.verdict_score(
            experiment.scoring_rule,
            p,
            chosen == trial.honest_side,
            rounds=state.completed_rounds,
            penalty=experiment.round_penalty,
        )
        clock = ActiveTime.objects.filter(trial=trial).first()
        if clock is not None:
            _active_time_add(clock, now, state.completed_rounds)
            clock.save()
        try:
            verdict = Verdict.objects.create(
                trial=trial,
                judge=judge,
                chosen=chosen,
                probability=p,
                rationale=rationale,
                seconds_on_page=(now - opened).total_seconds(),
                active_seconds=clock.seconds if clock else None,
                score=verdict_score,
                active_seconds_by_round=clock.seconds_by_round if clock else {},
                active_time_source=ActiveTimeSource.SERVER,
            )
        except IntegrityError:
            raise VerdictRefused("you have already given a verdict on this trial", status=409) from None
        Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.JUDGED)
        if trial.role == Trial.Role.PRACTICE:
            _practice_settle(trial)
    return verdict
