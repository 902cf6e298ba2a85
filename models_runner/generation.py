"""Generating pending turns: claim, prompt, generate as one batch, record.

The database is the source of truth for what is still to do. A turn moves
pending -> running (claimed with a conditional UPDATE carrying a fresh claim
token) -> done or failed (written only if the claim token still matches). So a
redelivered Celery task, or two workers racing, can never write a turn twice;
a worker killed mid-batch leaves turns "running" until ``requeue_stale_turns``
puts them back to pending.
"""
from __future__ import annotations

import logging
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from judging.models import Experiment, ModelAnswer, ModelVerdict, Trial, Turn
from judging.protocols import debate, sandwich
from judging.selectors import record_response_delays
from judging.services import debate_state

from .backends import GenerationRequest, backend_for
from .prompts import (
    build_assistant_messages, build_debater_messages, build_model_alone_messages, build_model_judge_messages,
    clip_to_limit,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Roughly 3-4 characters per token in English; leave room so the model can
# finish a sentence inside the character limit.
CHARS_PER_TOKEN = 3


def trials_with_pending_turns(experiment_id: int | None = None):
    """Trials with turns still to generate: pre-generated ones being prepared, and live ones being judged."""
    live = Q(status=Trial.Status.READY, live=True)
    trials = Trial.objects.filter(Q(status=Trial.Status.GENERATING) | live, turns__status=Turn.Status.PENDING)
    if experiment_id is not None:
        trials = trials.filter(experiment_id=experiment_id)
    return trials.distinct()


def ready_turn_ids(experiment_id: int | None = None, limit: int = 8, queue: str | None = None) -> list[int]:
    """Pending turns whose trial's protocol says they may be spoken now; live trials first.

    With ``queue``, only turns of models served on that queue.
    """
    ready = []
    live_first = Case(When(live=True, then=Value(0)), default=Value(1))
    trials = trials_with_pending_turns(experiment_id).select_related("experiment").prefetch_related(
        "turns__model_config"
    )
    for trial in trials.order_by(live_first, "id"):
        turns = sorted(trial.turns.all(), key=lambda t: t.index)
        if any(t.status == Turn.Status.FAILED for t in turns):
            continue
        state = debate_state(trial)
        due = set(state.next_speakers())
        for turn in turns:
            if turn.status != Turn.Status.PENDING or turn.speaker not in due or turn.round != state.current_round:
                continue
            if queue is None or (turn.model_config is not None and turn.model_config.queue == queue):
                ready.append(turn.id)
                if len(ready) >= limit:
                    return ready
    return ready


def claim_turns(turn_ids: list[int], claimed_by: str = "") -> tuple[str, list[Turn]]:
    """Claim those of ``turn_ids`` that are still pending; returns (token, claimed turns).

    ``claimed_by`` names the worker (its Celery node name), so a restarted worker can
    release what its previous process left claimed. Text left by an abandoned attempt
    is cleared, so a judge never sees it.
    """
    token = uuid.uuid4().hex
    Turn.objects.filter(id__in=turn_ids, status=Turn.Status.PENDING).update(
        status=Turn.Status.RUNNING, claim_token=token, claimed_at=timezone.now(), claimed_by=claimed_by,
        partial_text="", first_text_at=None,
    )
    claimed = list(
        Turn.objects.filter(claim_token=token, status=Turn.Status.RUNNING)
        .select_related("trial__experiment", "trial__question", "model_config")
        .order_by("trial_id", "index")
    )
    return token, claimed


def _request_for(turn: Turn) -> GenerationRequest:
    trial, experiment, config = turn.trial, turn.trial.experiment, turn.model_config
    state = debate_state(trial)
    me = turn.speaker
    other = "B" if me == "A" else "A"
    consultant = trial.protocol == Trial.Protocol.CONSULTANCY
    if trial.protocol == Trial.Protocol.SANDWICH:
        messages = build_assistant_messages(
            misleading=trial.condition == sandwich.MISLEADING, question=trial.question.text,
            answer_a=trial.answer_text("A"), answer_b=trial.answer_text("B"), target_answer=trial.answer_text(me),
            passage=trial.question.passage, visible_speeches=state.visible_to(me),
            char_limit=trial.speech_char_limit,
        )
    else:
        messages = build_debater_messages(
            system_prompt=config.consultant_system_prompt if consultant else config.system_prompt,
            template=config.consultant_prompt_template if consultant else config.prompt_template, me=me,
            consultant=consultant,
            question=trial.question.text, my_answer=trial.answer_text(me), opponent_answer=trial.answer_text(other),
            passage=trial.question.passage, visible_speeches=state.visible_to(me), round_number=turn.round,
            rounds=experiment.rounds, char_limit=trial.speech_char_limit,
        )
    max_tokens = min(config.max_new_tokens, max(16, trial.speech_char_limit // CHARS_PER_TOKEN))
    return GenerationRequest(
        messages=messages, max_new_tokens=max_tokens, temperature=config.temperature, top_p=config.top_p,
        repetition_penalty=config.repetition_penalty,
        seed=(experiment.seed * 1000003 + trial.pk * 101 + turn.index) % (2**31),
    )


def _finish_trials(trial_ids: set[int]) -> None:
    for trial_id in trial_ids:
        remaining = Turn.objects.filter(trial_id=trial_id).exclude(status=Turn.Status.DONE)
        if not remaining.exists():
            Trial.objects.filter(pk=trial_id, status=Trial.Status.GENERATING).update(status=Trial.Status.READY)
        elif remaining.filter(status=Turn.Status.FAILED).exists():
            Trial.objects.filter(pk=trial_id, status=Trial.Status.GENERATING).update(status=Trial.Status.FAILED)


def generate_batch(experiment_id: int | None = None, batch_size: int | None = None, queue: str | None = None,
                   claimed_by: str = "") -> int:
    """Claim up to ``batch_size`` ready turns, generate them together, record them.

    Returns how many turns this call wrote.
    """
    batch_size = batch_size or settings.GENERATION_BATCH_SIZE
    token, turns = claim_turns(ready_turn_ids(experiment_id, limit=batch_size, queue=queue), claimed_by=claimed_by)
    if not turns:
        return 0
    worker = socket.gethostname()
    written = 0
    by_config: dict[int, list[Turn]] = {}
    for turn in turns:
        by_config.setdefault(turn.model_config_id, []).append(turn)
    for group in by_config.values():
        config = group[0].model_config
        backend = backend_for(config)
        n = _best_of(config, group)
        try:
            requests = [_request_for(t) for t in group]
            if n == 1:
                results = backend.generate(requests, on_text=_live_progress_writer(group, token))
                candidates = [[] for _ in group]
            else:  # N samples per turn in the same batch; no streaming, the kept one is not known yet
                samples = backend.generate([r for r in requests for _ in range(n)])
                results, candidates = _pick_best(config, group, samples, n)
        except Exception as exc:  # a model that fails must not leave turns claimed forever
            log.exception("generation failed for %d turn(s) of %s", len(group), config)
            _record_failure(group, token, f"{type(exc).__name__}: {exc}")
            continue
        for turn, request, result, turn_candidates in zip(group, requests, results, candidates):
            model_settings = config.settings_snapshot() | {
                # torch is seeded once per batch, with the batch's first request's seed.
                "batch_seed": requests[0].seed, "max_new_tokens_used": request.max_new_tokens,
                "device": backend.device_name, "worker": worker, "batch_size": len(group) * n,
                "batch_tokens_out": sum(r.tokens_out for r in results), "best_of_n": n,
            }
            written += Turn.objects.filter(pk=turn.pk, claim_token=token, status=Turn.Status.RUNNING).update(
                status=Turn.Status.DONE, prompt=result.prompt_text, ttft_seconds=result.ttft_seconds,
                queue_wait_seconds=_queue_wait(turn),
                text=clip_to_limit(result.text, turn.trial.speech_char_limit) or "(no argument)",
                tokens_in=result.tokens_in, tokens_out=result.tokens_out, wall_seconds=result.seconds,
                model_settings=model_settings, finished_at=timezone.now(), attempts=turn.attempts + 1, error="",
                candidates=turn_candidates,
            )
    _finish_trials({t.trial_id for t in turns})
    record_response_delays({t.trial_id for t in turns if t.trial.live})
    return written


def _best_of(config, group: list[Turn]) -> int:
    """N for best-of-N: debaters and consultants only (an assistant has no side to be judged on)."""
    if config.best_of_n > 1 and all(t.trial.protocol != Trial.Protocol.SANDWICH for t in group):
        return config.best_of_n
    return 1


def _scorer_view(turn: Turn) -> list[dict]:
    """What the scoring model reads before a candidate: what this speaker could see (in a
    simultaneous round, not the opponent's same-round speech), labelled as a judge sees it."""
    from judging.selectors import speaker_label

    trial = turn.trial
    return [{"label": "Judge's question" if s.speaker == debate.JUDGE else speaker_label(trial, s.speaker),
             "text": s.text} for s in debate_state(trial).visible_to(turn.speaker)]


def _candidate_score(scorer, turn: Turn, text: str, view: list[dict] | None = None) -> float:
    """The scoring model's probability for this speaker's answer after reading ``view``
    (default: ``_scorer_view(turn)``) followed by the candidate."""
    from judging.selectors import speaker_label

    trial = turn.trial
    speeches = (view if view is not None else _scorer_view(turn)) + [
        {"label": speaker_label(trial, turn.speaker), "text": text}]
    messages = build_model_judge_messages(question=trial.question.text, answer_a=trial.answer_text("A"),
                                          answer_b=trial.answer_text("B"), speeches=speeches)
    p_a, p_b = scorer.choice_probabilities(messages, ["A", "B"])
    return p_a if turn.speaker == "A" else p_b


def _pick_best(config, group: list[Turn], samples, n: int):
    """Keep, per turn, the candidate the scoring model rates most convincing; record them all."""
    judge = config.best_of_n_judge or config
    scorer = backend_for(judge)
    kept, records = [], []
    for i, turn in enumerate(group):
        options = samples[i * n:(i + 1) * n]
        texts = [clip_to_limit(o.text, turn.trial.speech_char_limit) for o in options]
        view = _scorer_view(turn)  # the same for every candidate of this turn
        scores = [_candidate_score(scorer, turn, text, view) for text in texts]
        best = max(range(n), key=scores.__getitem__)
        kept.append(options[best])
        records.append([{"text": text, "score": round(score, 6), "kept": j == best, "tokens_out": o.tokens_out}
                        for j, (text, score, o) in enumerate(zip(texts, scores, options))])
    return kept, records


def _queue_wait(turn: Turn) -> float | None:
    """Seconds from the turn becoming ready (created, and its trial's earlier turns done) to its claim."""
    ready_since = max([turn.created_at] + [t.finished_at for t in turn.trial.turns.all()
                                           if t.index < turn.index and t.finished_at], default=None)
    if ready_since is None or turn.claimed_at is None:
        return None
    return max(0.0, (turn.claimed_at - ready_since).total_seconds())


def _live_progress_writer(group: list[Turn], token: str):
    """A callback that writes the partial text of live turns as the model writes it."""
    live = {i for i, t in enumerate(group) if t.trial.live}
    if not live:
        return None
    started: set[int] = set()

    def write(index: int, text: str) -> None:
        if index not in live:
            return
        turn = group[index]
        clipped = clip_to_limit(text, turn.trial.speech_char_limit)
        fields = {"partial_text": clipped}
        if index not in started:
            started.add(index)
            fields["first_text_at"] = timezone.now()
        Turn.objects.filter(pk=turn.pk, claim_token=token, status=Turn.Status.RUNNING).update(**fields)
        if "first_text_at" in fields:
            record_response_delays({turn.trial_id})

    return write


def _record_failure(turns: list[Turn], token: str, error: str) -> None:
    for turn in turns:
        attempts = turn.attempts + 1
        status = Turn.Status.FAILED if attempts >= MAX_ATTEMPTS else Turn.Status.PENDING
        Turn.objects.filter(pk=turn.pk, claim_token=token, status=Turn.Status.RUNNING).update(
            status=status, attempts=attempts, error=error[:2000], claim_token="", claimed_at=None
        )
    _finish_trials({t.trial_id for t in turns})


def release_claims(turns) -> int:
    """Put claimed turns whose worker died back to pending, counting the lost attempt.

    A turn that has used up its attempts (it may be what kills its worker, e.g. by
    running out of memory) fails instead of looping forever.
    """
    turns = turns.filter(status=Turn.Status.RUNNING)
    trial_ids = set(turns.values_list("trial_id", flat=True))
    failed = turns.filter(attempts__gte=MAX_ATTEMPTS - 1).update(
        status=Turn.Status.FAILED, attempts=F("attempts") + 1, claim_token="", claimed_at=None, partial_text="",
        error="its worker stopped while generating it, too many times",
    )
    released = turns.update(status=Turn.Status.PENDING, attempts=F("attempts") + 1, claim_token="",
                            claimed_at=None, partial_text="", first_text_at=None)
    _finish_trials(trial_ids)
    return failed + released


def requeue_stale_turns(older_than_seconds: int | None = None) -> int:
    """Release turns claimed too long ago (their worker presumably died).

    Live trials have a judge waiting, so their turns use the shorter LIVE_STALE_CLAIM_SECONDS.
    An explicit ``older_than_seconds`` applies to all turns.
    """
    now = timezone.now()
    if older_than_seconds is not None:
        return release_claims(Turn.objects.filter(claimed_at__lt=now - timedelta(seconds=older_than_seconds)))
    live = Q(trial__live=True, claimed_at__lt=now - timedelta(seconds=settings.LIVE_STALE_CLAIM_SECONDS))
    other = Q(trial__live=False, claimed_at__lt=now - timedelta(seconds=settings.STALE_CLAIM_SECONDS))
    return release_claims(Turn.objects.filter(live | other))


def retry_failed_turns(experiment_id: int) -> int:
    """Give failed turns of an experiment a fresh set of attempts."""
    with transaction.atomic():
        count = Turn.objects.filter(trial__experiment_id=experiment_id, status=Turn.Status.FAILED).update(
            status=Turn.Status.PENDING, attempts=0, error="", claim_token="", claimed_at=None
        )
        Trial.objects.filter(experiment_id=experiment_id, status=Trial.Status.FAILED).update(
            status=Trial.Status.GENERATING
        )
    return count


def pending_turn_count(experiment_id: int | None = None) -> int:
    trials = trials_with_pending_turns(experiment_id)
    return Turn.objects.filter(status=Turn.Status.PENDING, trial__in=trials).count()


def score_model_alone(experiment_id: int) -> int:
    """The model-alone baseline: for each question of the experiment, the model's own probability
    for answer A versus B (same layout as the question's first trial). Idempotent."""
    experiment = Experiment.objects.select_related("debater_model").get(pk=experiment_id)
    config = experiment.debater_model
    backend = backend_for(config)
    done = set(ModelAnswer.objects.filter(experiment=experiment).values_list("question_id", flat=True))
    created = 0
    for trial in experiment.trials.filter(protocol=Trial.Protocol.SANDWICH).select_related("question").order_by(
        "question_id", "id"
    ):
        if trial.question_id in done:
            continue
        done.add(trial.question_id)
        messages = build_model_alone_messages(question=trial.question.text, answer_a=trial.answer_text("A"),
                                              answer_b=trial.answer_text("B"), passage=trial.question.passage)
        p_a, _ = backend.choice_probabilities(messages, ["A", "B"])
        _, new = ModelAnswer.objects.get_or_create(
            experiment=experiment, question=trial.question,
            defaults={"answer_a_index": trial.answer_a_index, "answer_b_index": trial.answer_b_index,
                      "honest_side": trial.honest_side, "probability_a": p_a,
                      "model_settings": config.settings_snapshot() | {"device": backend.device_name}},
        )
        created += new
    return created


def judge_with_model(experiment_id: int, judge_config) -> int:
    """A model judges every finished pre-generated trial of the experiment, from exactly the
    judge's view (judging.selectors.judge_view_of_trial). Idempotent; returns verdicts created."""
    from judging.selectors import judge_view_of_trial

    backend = backend_for(judge_config)
    done = set(ModelVerdict.objects.filter(trial__experiment_id=experiment_id, judge_model=judge_config)
               .values_list("trial_id", flat=True))
    trials = Trial.objects.filter(experiment_id=experiment_id, live=False,
                                  status__in=[Trial.Status.READY, Trial.Status.JUDGED]).exclude(pk__in=done)
    created = 0
    for trial in trials.select_related("experiment", "question"):
        view = judge_view_of_trial(trial)
        messages = build_model_judge_messages(question=view["question"], answer_a=view["answers"]["A"],
                                              answer_b=view["answers"]["B"], speeches=view["transcript"])
        p_a, _ = backend.choice_probabilities(messages, ["A", "B"])
        _, new = ModelVerdict.objects.get_or_create(
            trial=trial, judge_model=judge_config,
            defaults={"probability_a": p_a, "prompt": messages[0]["content"],
                      "model_settings": judge_config.settings_snapshot() | {"device": backend.device_name}},
        )
        created += new
    return created
