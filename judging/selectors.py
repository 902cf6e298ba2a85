"""Reads for the judging domain. Judge-facing reads return only what a judge may see."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, Q
from django.utils import timezone

from . import balance, feedback, quotes, scoring
from .models import Experiment, Onboarding, Trial, Turn
from .protocols import debate
from .protocols.registry import ARM_OF_CONDITION, PROTOCOLS
from .services import debate_rules, debate_state


def judge_queue(judge):
    """Trials assigned to ``judge`` that are ready and not yet judged, in the order they are to be judged
    (``Trial.objects.queue_of``): the first is the only one the judge may open."""
    return Trial.objects.queue_of(judge).select_related("question", "experiment")


def judge_progress(judge) -> dict:
    # Trials withdrawn when the judge did not qualify (docs/onboarding.md) are no longer theirs to judge, nor are
    # the unfinished trials of a closed experiment (services.experiment_close): nothing there is prepared any more.
    closed_unfinished = Q(experiment__status=Experiment.Status.CLOSED) & ~Q(
        status__in=[Trial.Status.JUDGED, Trial.Status.SKIPPED]
    )
    counts = (
        Trial.objects.filter(judge=judge)
        .exclude(status=Trial.Status.WITHDRAWN)
        .exclude(closed_unfinished)
        .aggregate(
            total=Count("id"),
            judged=Count("id", filter=Q(status=Trial.Status.JUDGED)),
            ready=Count("id", filter=Q(status=Trial.Status.READY)),
            preparing=Count("id", filter=Q(status=Trial.Status.GENERATING)),
            skipped=Count("id", filter=Q(status=Trial.Status.SKIPPED)),
        )
    )
    return counts


def _debater_turns_by_round(turns) -> dict[int, list[Turn]]:
    rounds = defaultdict(list)
    for t in turns:
        if t.speaker != debate.JUDGE:
            rounds[t.round].append(t)
    return rounds


def round_visible_at(round_turns: list[Turn], simultaneous: bool):
    """When the judge could first read anything of a round (None: not yet).

    Simultaneous speeches are shown only once both are complete, so that the
    timing of one side cannot reveal anything; a sequential round is visible as
    soon as its first speaker's first words are written.
    """
    if simultaneous:
        if round_turns and all(t.status == Turn.Status.DONE for t in round_turns):
            return max(t.finished_at for t in round_turns)
        return None
    first = min(round_turns, key=lambda t: t.index, default=None)
    if first is None:
        return None
    return first.first_text_at or (first.finished_at if first.status == Turn.Status.DONE else None)


# Which letter each answer is shown under: as laid out, or swapped (the model baselines' second order).
AS_LAID_OUT = {"A": "A", "B": "B"}
SWAPPED = {"A": "B", "B": "A"}


def judge_visible_speeches(trial: Trial, turns, *, answers_swapped: bool = False) -> list[dict]:
    """The transcript as the judge may see it now, including text still being written.

    Debater speeches carry ``segments``: plain text and quotes marked verified or
    unverified (over budget shown as unverified: judging.quotes). Only the verdict on
    each quote reaches the judge, never the passage. ``answers_swapped``: each speaker is
    named by the letter its answer is shown under when the answers are swapped
    (Debater A becomes Debater B); the speeches' own words are left as written.
    """
    protocol = trial.protocol_spec
    shown = SWAPPED if answers_swapped else AS_LAID_OUT
    turns = sorted(turns, key=lambda t: t.index)
    simultaneous = trial.simultaneous
    rounds = _debater_turns_by_round(turns)
    speeches = []
    for t in turns:
        entry = {"speaker": shown.get(t.speaker, t.speaker), "round": t.round, "in_progress": False}
        if t.speaker == debate.JUDGE:
            label = f"You asked {protocol.addressee(tuple(shown[side] for side in t.addressed_to))}"
            speeches.append(entry | {"label": label, "text": t.text})
            continue
        label = protocol.speaker_label(shown[t.speaker])
        if protocol.hides_speaker_side:
            entry["speaker"] = "assistant"  # its internal side would reveal the condition
        if t.status == Turn.Status.DONE and (
            not simultaneous or all(x.status == Turn.Status.DONE for x in rounds[t.round])
        ):
            speeches.append(entry | {"label": label, "text": t.text})
        elif not simultaneous and t.status == Turn.Status.RUNNING and t.partial_text and not trial.has_person:
            # Where a person debates, no speech is shown while it is written: a person's speech appears
            # whole, so a model's that streamed in would tell the judge which side is which.
            # Its position in the transcript: live polls append its next characters there (judging.live_tag).
            speeches.append(entry | {"label": label, "text": t.partial_text, "in_progress": True, "index": t.index})
    already_quoted: set[int] = set()  # positions in the passage (judging.quotes)
    for speech in speeches:
        if speech["speaker"] == debate.JUDGE:
            segments = [quotes.Segment(quotes.TEXT, speech["text"])]
        else:
            segments = quotes.check_speech(
                speech["text"], trial.question.passage, budget=trial.speech_quote_limit, already_quoted=already_quoted
            )
        speech["segments"] = quotes.shown(segments)
    return speeches


def record_response_delays(trial_ids) -> None:
    """For judge questions not yet timed: seconds until the answer's first words were visible."""
    questions = Turn.objects.filter(trial_id__in=list(trial_ids), speaker=debate.JUDGE, response_delay_seconds=None)
    for question in questions.select_related("trial__experiment"):
        answer_round = [
            t for t in question.trial.turns.all() if t.speaker != debate.JUDGE and t.round == question.round + 1
        ]
        visible = round_visible_at(answer_round, question.trial.simultaneous)
        if visible is not None and question.created_at is not None:
            Turn.objects.filter(pk=question.pk, response_delay_seconds=None).update(
                response_delay_seconds=max(0.0, (visible - question.created_at).total_seconds())
            )


def _round_progress(trial: Trial, debater_turns, round_number: int) -> dict:
    """How the round being spoken is going, without its content: seconds since it began, and each speaker
    writing, waiting, restarting (an attempt stopped) or done with how many characters so far. Where a person
    debates, the seconds only: a model's turn runs and its text grows (or restarts) while a person's turn waits
    and arrives whole, which would tell the judge which side is the person."""
    current = sorted((t for t in debater_turns if t.round == round_number), key=lambda t: t.index)
    started = min((t.created_at for t in current if t.created_at), default=None)
    label = trial.protocol_spec.speaker_label
    speakers = []
    for t in [] if trial.has_person else current:
        if t.status == Turn.Status.DONE:
            status, chars = "done", len(t.text)
        elif t.status == Turn.Status.RUNNING and t.partial_text:
            status, chars = "writing", len(t.partial_text)
        elif t.attempts:
            # An earlier attempt stopped (its worker died, or the model failed) and its text was withdrawn: the
            # speech is being written again from the start, until its first words arrive.
            status, chars = "restarting", 0
        else:
            status, chars = "waiting", 0
        speakers.append({"label": label(t.speaker), "status": status, "chars": chars, "index": t.index})
    return {
        "seconds": max(0, int((timezone.now() - started).total_seconds())) if started else 0,
        "speakers": speakers,
    }


def _last_leaning(trial: Trial) -> dict | None:
    """The judge's latest recorded leaning as they gave it (an answer and its probability), for the page to say back;
    stored as the probability that A is correct (docs/scoring.md)."""
    if not trial.leanings:
        return None
    round_number, p_a = trial.leanings[-1]
    p_a = float(p_a)
    chosen = "A" if p_a >= 0.5 else "B"
    return {"round": int(round_number), "chosen": chosen, "probability": p_a if chosen == "A" else round(1 - p_a, 10)}


def judge_live_state(trial: Trial, turns) -> dict:
    """What a live trial's judge may do now; no hidden information."""
    state = debate_state(trial)
    debater_turns = [t for t in turns if t.speaker != debate.JUDGE]
    failed = any(t.status == Turn.Status.FAILED for t in debater_turns)
    speaking = not failed and any(t.status in (Turn.Status.PENDING, Turn.Status.RUNNING) for t in debater_turns)
    idle_between = not speaking and not failed and state.between_rounds()
    reason = blocked = ""
    if state.phase == debate.DEBATING and not state.can_end():
        # The page words it in the protocol's terms (its fragment's "end_blocked" part); the reason stays for JSON.
        if state.flip_pending():
            blocked, reason = "flip", "Your leaning changed side: one more round is needed before you can end."
        elif state.completed_rounds < state.rules.earliest_end:
            blocked, reason = "early", f"You can end the debate after round {state.rules.earliest_end}."
    return {
        "phase": state.phase,
        "speaking": speaking,
        "progress": _round_progress(trial, debater_turns, state.current_round) if speaking else None,
        "failed": failed,
        "completed_rounds": state.completed_rounds,
        "rounds": state.rules.rounds,
        "min_rounds": state.rules.earliest_end,
        "can_ask": idle_between,
        "can_continue": idle_between,
        "can_end": idle_between and state.can_end(),
        "end_blocked_reason": reason,
        "end_blocked": blocked,
        "last_leaning": _last_leaning(trial),
        "can_lean": idle_between,
        "flip_rule": state.rules.extra_round_after_flip,
    }


def judge_view_of_trial(trial: Trial, *, answers_swapped: bool = False) -> dict:
    """Everything the judge page shows, and nothing more.

    Built field by field on purpose: the passage, the correct answer, the
    honest side, model names and prompts never enter this dict, so no template
    or JSON built from it can leak them. ``answers_swapped``: the same view with
    answer B shown first, as A, and the speakers renamed to match, which model
    judges score as their second order (generation.baselines; pre-generated
    trials, so the live state is never swapped); judges always get the layout.
    """
    experiment = trial.experiment
    turns = list(trial.turns.all())
    live = trial.live
    shown = SWAPPED if answers_swapped else AS_LAID_OUT
    view = {
        "id": trial.pk,
        "question": trial.question.text,
        "answers": {"A": trial.answer_text(shown["A"]), "B": trial.answer_text(shown["B"])},
        "rounds": experiment.rounds,
        "char_limit": trial.speech_char_limit,
        "simultaneous": trial.simultaneous,
        "transcript": judge_visible_speeches(trial, turns, answers_swapped=answers_swapped),
        "judged": trial.status == Trial.Status.JUDGED,
        # The researchers closed the experiment: no verdict or move is taken any more (services.CLOSED).
        "closed": experiment.status == Experiment.Status.CLOSED,
        # The judge sees the correct answer and their score right after the verdict (judging.feedback).
        "reveals_at_once": feedback.revealed(trial),
        "live": live,
        "protocol": trial.protocol,
        # Practice trials are labelled; attention checks are not (False, like a study trial's: docs/onboarding.md).
        "practice": trial.role == Trial.Role.PRACTICE,
        # What the judge is told: the consultant's answer, and whether an assistant is present
        # (never whether it is honest, nor which answer it argues for).
        "consultant_side": shown.get(trial.consultant_side, trial.consultant_side),
        "assisted": bool(trial.assistant_side),
        # What the page offers, from the protocol's declaration (judging.protocols.registry).
        "nobody_speaks": debate_rules(experiment, trial).rounds == 0,
        "judge_chooses_addressee": trial.protocol_spec.judge_chooses_addressee,
        "continue_without_question": trial.protocol_spec.continue_without_question,
    }
    if live:
        view["state"] = judge_live_state(trial, turns)
        view["awaiting_verdict"] = view["state"]["phase"] == debate.AWAITING_VERDICT
        rounds = view["state"]["completed_rounds"]
    else:
        view["awaiting_verdict"] = True
        rounds = experiment.rounds
    view["scoring"] = {
        "rule": experiment.scoring_rule,
        "round_penalty": experiment.round_penalty,
        "rounds": rounds,
        "table": scoring.outcome_table(experiment.scoring_rule, rounds=rounds, penalty=experiment.round_penalty),
    }
    return view


def experiment_balance(experiment: Experiment) -> list:
    """The achieved balance of a launched experiment's study trials (``judging.balance``), replacements included."""
    trials = [
        {
            "judge": judge,
            "question": question,
            "arm": ARM_OF_CONDITION.get(condition, protocol),
            "honest_side": honest,
            "first_speaker": first,
            "speaker_side": consultant or assistant,
            # A single speaker's configuration, whether it argues honestly or not; a debate's pair.
            "pairing": (honest_config, adversary_config)
            if PROTOCOLS[protocol].two_speakers
            else (honest_config or adversary_config),
        }
        for (
            judge,
            question,
            protocol,
            condition,
            honest,
            first,
            consultant,
            assistant,
            honest_config,
            adversary_config,
        ) in (
            # The study's trials: practice and attention checks are planned apart (docs/onboarding.md).
            experiment.trials.study().values_list(
                "judge_id",
                "question_id",
                "protocol",
                "condition",
                "honest_side",
                "first_speaker",
                "consultant_side",
                "assistant_side",
                "honest_config_id",
                "adversary_config_id",
            )
        )
    ]
    return balance.balance_report(trials, list(experiment.conditions))


def not_qualified(judge) -> list[Onboarding]:
    """The judge's onboardings in launched or closed experiments where they did not qualify."""
    return list(
        Onboarding.objects.filter(judge=judge, qualified=False)
        .exclude(experiment__status=Experiment.Status.DRAFT)
        .select_related("experiment")
        .order_by("decided_at")
    )


def instructions_page(experiment_id: int, judge) -> dict | None:
    """What the instructions page shows a judge of the experiment (None if it gave them no trials): the
    researchers' instructions (plain text, escaped by the template), whether they confirmed them, their practice
    and the qualification threshold, and ``examples``: one of their trials per condition, whose judge's view
    renders its protocol's own explanation (the page keeps each distinct wording once)."""
    experiment = Experiment.objects.filter(pk=experiment_id).exclude(status=Experiment.Status.DRAFT).first()
    trials = Trial.objects.filter(experiment_id=experiment_id, judge=judge).select_related("question", "experiment")
    if experiment is None or not trials.exists():
        return None
    examples = {}
    for trial in trials.order_by("queue_position"):
        examples.setdefault(trial.condition, trial)
    onboarding = Onboarding.objects.filter(experiment=experiment, judge=judge).first()
    return {
        "experiment_id": experiment.pk,
        "instructions": experiment.instructions,
        "read_at": onboarding.instructions_read_at if onboarding else None,
        "practice_trials": experiment.practice_trials,
        "qualification_percent": None
        if experiment.qualification_accuracy is None
        else round(experiment.qualification_accuracy * 100),
        "examples": [(t.protocol_spec.page_template, judge_view_of_trial(t)) for t in examples.values()],
    }


def practice_status(trial: Trial) -> dict | None:
    """For a practice trial's page: the judge's practice so far and, once decided, their qualification
    (None for any other trial: attention checks and study trials show nothing of the kind)."""
    if trial.role != Trial.Role.PRACTICE:
        return None
    experiment = trial.experiment
    onboarding = Onboarding.objects.filter(experiment=experiment, judge_id=trial.judge_id).first()
    return {
        "total": experiment.practice_trials,
        "judged": onboarding.practice_judged if onboarding else 0,
        "correct": onboarding.practice_correct if onboarding else 0,
        "gate_percent": None
        if experiment.qualification_accuracy is None
        else round(experiment.qualification_accuracy * 100),
        "qualified": onboarding.qualified if onboarding else None,
    }
