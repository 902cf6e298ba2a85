"""Generating pending turns: claim them as the worker's batch has room, prompt, generate, record each
as it finishes (``GenerationSession``; ``generate_ready_turns`` is a worker's loop).

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
import time
import uuid
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from judging.models import Experiment, ModelAnswer, ModelVerdict, Trial, Turn
from judging.protocols import debate, sandwich
from judging.selectors import record_response_delays
from judging.services import debate_state

from .backends import GenerationRequest, GenerationResult, backend_for
from .prompts import (
    build_assistant_messages, build_debater_messages, build_model_alone_messages, build_model_judge_messages,
    clip_to_limit,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# How often a session refreshes the claims of the turns it is writing (seconds); far below the
# stale-claim timeouts after which the reconciler releases a claim.
HEARTBEAT_SECONDS = 30
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


def ready_turns(experiment_id: int | None = None, limit: int = 8, queue: str | None = None) -> list[Turn]:
    """Pending turns whose trial's protocol says they may be spoken now; live trials first.

    With ``queue``, only turns of models served on that queue. Each turn comes with its trial and model
    configuration loaded. Trials are read a few at a time, so finding a handful of turns stays cheap
    however many are pending.
    """
    ready = []
    live_first = Case(When(live=True, then=Value(0)), default=Value(1))
    trials = trials_with_pending_turns(experiment_id)
    if queue is not None:
        trials = trials.filter(turns__status=Turn.Status.PENDING, turns__model_config__queue=queue)
    trial_ids = list(trials.order_by(live_first, "id").values_list("id", flat=True).distinct())
    chunk = max(16, 2 * limit)
    for start in range(0, len(trial_ids), chunk):
        chunk_ids = trial_ids[start:start + chunk]
        loaded = Trial.objects.filter(pk__in=chunk_ids).select_related("experiment").prefetch_related(
            "turns__model_config")
        for trial in sorted(loaded, key=lambda t: chunk_ids.index(t.pk)):
            turns = sorted(trial.turns.all(), key=lambda t: t.index)
            if any(t.status == Turn.Status.FAILED for t in turns):
                continue
            state = debate_state(trial)
            due = set(state.next_speakers())
            for turn in turns:
                if turn.status != Turn.Status.PENDING or turn.speaker not in due or turn.round != state.current_round:
                    continue
                if queue is not None and (turn.model_config is None or turn.model_config.queue != queue):
                    continue
                turn.trial = trial
                ready.append(turn)
                if len(ready) >= limit:
                    return ready
    return ready


def ready_turn_ids(experiment_id: int | None = None, limit: int = 8, queue: str | None = None) -> list[int]:
    """The ids of ``ready_turns``."""
    return [turn.pk for turn in ready_turns(experiment_id, limit=limit, queue=queue)]


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


class GenerationSession:
    """Generates turns of one model configuration as the backend's batch has room for them.

    ``pick(limit)`` names up to ``limit`` turns to claim next. The backend asks for more whenever
    rows of its running batch are free (continuous batching), or once per closed batch; each turn is
    recorded as soon as it finishes. A best-of-N turn takes N rows: its candidates are scored and the
    best kept once all N are done. Rows are keyed by (turn, claim token, candidate), so a row of a
    claim that was released and claimed again meanwhile is recognised as stale and ignored.
    """

    def __init__(self, config, pick, claimed_by: str = "", turns_at_once: int | None = None):
        self.config, self.pick, self.claimed_by = config, pick, claimed_by
        self.backend = backend_for(config)
        self.rows_per_turn = max(1, config.best_of_n)
        self.turns_at_once = turns_at_once or settings.GENERATION_BATCH_SIZE
        self.running: dict[int, dict] = {}  # turn id -> turn, claim token, request, N, finished samples
        self.partial_started: set[int] = set()
        self.claimed = self.written = 0
        self.failed = False
        self.worker = socket.gethostname()
        self.heartbeat_at = time.monotonic()

    def run(self) -> int:
        """Generate until ``pick`` names no more turns and none are running; returns turns written."""
        try:
            self.backend.generate_continuously(self.take, self.on_done, self.on_text,
                                               capacity=self.turns_at_once * self.rows_per_turn,
                                               on_error=self.on_error)
        except Exception as exc:  # the model failed: no turn may stay claimed forever
            log.exception("generation failed for %d running turn(s) of %s", len(self.running), self.config)
            self.failed = True
            for entry in self.running.values():
                _record_failure([entry["turn"]], entry["token"], f"{type(exc).__name__}: {exc}")
            self.running.clear()
        return self.written

    def _entry(self, key: tuple[int, str, int]) -> dict | None:
        """The running turn a row belongs to, or None if that claim is no longer this session's."""
        entry = self.running.get(key[0])
        return entry if entry is not None and entry["token"] == key[1] else None

    def _heartbeat(self) -> None:
        """Refresh the claims of running turns now and then, so a long session (a slow model load, long
        turns) is not mistaken for a dead worker and its turns released under it."""
        if time.monotonic() - self.heartbeat_at < HEARTBEAT_SECONDS or not self.running:
            return
        self.heartbeat_at = time.monotonic()
        for entry in self.running.values():
            Turn.objects.filter(pk=entry["turn"].pk, claim_token=entry["token"], status=Turn.Status.RUNNING).update(
                claimed_at=timezone.now())

    def take(self, free_rows: int) -> list[tuple[tuple[int, str, int], GenerationRequest]]:
        self._heartbeat()
        limit = free_rows // self.rows_per_turn
        ids = self.pick(limit) if limit else []
        if not ids:
            return []
        token, turns = claim_turns(ids, claimed_by=self.claimed_by)
        self.claimed += len(turns)
        rows = []
        for turn in turns:
            try:
                request = _request_for(turn)
            except Exception as exc:  # one turn whose prompt cannot be built fails alone
                log.exception("could not build the prompt of turn %s", turn.pk)
                _record_failure([turn], token, f"{type(exc).__name__}: {exc}")
                continue
            n = _best_of(self.config, turn)
            self.running[turn.pk] = {"turn": turn, "token": token, "request": request, "n": n, "samples": {}}
            # Candidates of one turn get distinct seeds, or per-request seeding would make them identical.
            rows += [((turn.pk, token, j), replace(request, seed=request.seed + j) if n > 1 else request)
                     for j in range(n)]
        return rows

    def on_text(self, key: tuple[int, str, int], text: str) -> None:
        """Partial text of a live turn, for the judge's page (best-of-N turns show only the kept one)."""
        self._heartbeat()
        entry = self._entry(key)
        if entry is None or entry["n"] > 1 or not entry["turn"].trial.live:
            return
        turn = entry["turn"]
        fields = {"partial_text": clip_to_limit(text, turn.trial.speech_char_limit)}
        first = turn.pk not in self.partial_started
        if first:
            self.partial_started.add(turn.pk)
            fields["first_text_at"] = timezone.now()
        Turn.objects.filter(pk=turn.pk, claim_token=entry["token"], status=Turn.Status.RUNNING).update(**fields)
        if first:
            record_response_delays({turn.trial_id})

    def on_error(self, key: tuple[int, str, int], error: Exception) -> None:
        """One request failed (not the model): its turn alone gets a failed attempt."""
        entry = self._entry(key)
        if entry is None:
            return
        del self.running[key[0]]
        log.error("generation of turn %s failed: %s", key[0], error)
        _record_failure([entry["turn"]], entry["token"], f"{type(error).__name__}: {error}")

    def on_done(self, key: tuple[int, str, int], result: GenerationResult) -> None:
        entry = self._entry(key)
        if entry is None:  # a stale claim, or a candidate of a turn that already failed
            return
        entry["samples"][key[2]] = result
        if len(entry["samples"]) < entry["n"]:
            return
        del self.running[key[0]]
        turn, n = entry["turn"], entry["n"]
        try:
            candidates = []
            if n > 1:
                result, candidates = _pick_best(self.config, turn, [entry["samples"][j] for j in range(n)])
            self.written += self._record(turn, entry["token"], entry["request"], result, candidates, n)
        except Exception as exc:  # e.g. the scoring model failed: this turn fails, the others go on
            log.exception("could not record turn %s", turn.pk)
            _record_failure([turn], entry["token"], f"{type(exc).__name__}: {exc}")
        _finish_trials({turn.trial_id})
        if turn.trial.live:
            record_response_delays({turn.trial_id})

    def _record(self, turn: Turn, token: str, request: GenerationRequest, result: GenerationResult,
                candidates: list[dict], n: int) -> int:
        model_settings = self.config.settings_snapshot() | {
            "seed": request.seed, "seed_used": result.seed_used, "max_new_tokens_used": request.max_new_tokens,
            "device": self.backend.device_name, "worker": self.worker, "best_of_n": n,
            "batch_size": result.batch_size, "mean_batch_size": result.mean_batch_size,
        }
        return Turn.objects.filter(pk=turn.pk, claim_token=token, status=Turn.Status.RUNNING).update(
            status=Turn.Status.DONE, prompt=result.prompt_text, ttft_seconds=result.ttft_seconds,
            queue_wait_seconds=_queue_wait(turn),
            text=clip_to_limit(result.text, turn.trial.speech_char_limit) or "(no argument)",
            tokens_in=result.tokens_in, tokens_out=result.tokens_out, wall_seconds=result.seconds,
            model_settings=model_settings, finished_at=timezone.now(), attempts=turn.attempts + 1, error="",
            candidates=candidates,
        )


def generate_batch(experiment_id: int | None = None, batch_size: int | None = None, queue: str | None = None,
                   claimed_by: str = "") -> int:
    """Claim up to ``batch_size`` ready turns once, generate them, record them; returns turns written.

    One step at a time, for commands and tests; workers run ``generate_ready_turns``.
    """
    batch_size = batch_size or settings.GENERATION_BATCH_SIZE
    configs, by_config = {}, {}
    for turn in ready_turns(experiment_id, limit=batch_size, queue=queue):
        configs[turn.model_config_id] = turn.model_config
        by_config.setdefault(turn.model_config_id, []).append(turn.pk)
    written = 0
    for config_id, group in by_config.items():
        config = configs[config_id]

        def pick(limit, group=group):
            taken = group[:limit]
            del group[:limit]
            return taken

        written += GenerationSession(config, pick, claimed_by, turns_at_once=len(group)).run()
    return written


def generate_ready_turns(queue: str | None = None, claimed_by: str = "", max_seconds: float | None = None,
                         on_backlog=None, should_stop=None) -> int:
    """A worker's generation loop: generate every ready turn on ``queue``, continuously, until none
    are ready or ``max_seconds`` (default GENERATION_SESSION_SECONDS) have passed; returns turns written.

    It serves every experiment on the queue, live trials first, so a judge's question joins the
    batch being written whatever experiment that batch is for. One model configuration at a time:
    that of the first ready turn; a live turn of another model on the same queue ends the current
    session as soon as its running turns are done (one queue per model avoids that wait). ``on_backlog()`` is called once if more turns are ready than this
    worker has room for, so that another worker can be asked to help. Once ``should_stop()`` is true
    (the worker is shutting down) no new turns are taken; those being written are finished.
    """
    deadline = time.monotonic() + (max_seconds or settings.GENERATION_SESSION_SECONDS)

    def over() -> bool:
        return time.monotonic() >= deadline or (should_stop is not None and should_stop())

    written = 0
    backlog_reported = False
    while not over():
        first = ready_turns(limit=1, queue=queue)
        if not first:
            break
        config = first[0].model_config

        def pick(limit, config=config):
            nonlocal backlog_reported
            if over():
                return []
            turns = ready_turns(limit=limit + 1, queue=queue)  # every model's, live trials first
            if len(turns) > limit and on_backlog is not None and not backlog_reported:
                backlog_reported = True
                on_backlog()
            if turns and turns[0].trial.live and turns[0].model_config_id != config.pk:
                return []  # a judge waits on another model of this queue: finish this batch, then serve it
            return [turn.pk for turn in turns if turn.model_config_id == config.pk][:limit]

        session = GenerationSession(config, pick, claimed_by)
        written += session.run()
        # Nothing claimed: another worker took what was ready. Failed: the caller retries after a pause.
        if not session.claimed or session.failed:
            break
    return written


def _best_of(config, turn: Turn) -> int:
    """N for best-of-N: debaters and consultants only (an assistant has no side to be judged on)."""
    if config.best_of_n > 1 and turn.trial.protocol != Trial.Protocol.SANDWICH:
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


def _pick_best(config, turn: Turn, samples: list[GenerationResult]) -> tuple[GenerationResult, list[dict]]:
    """The candidate the scoring model rates most convincing, and a record of them all."""
    scorer = backend_for(config.best_of_n_judge or config)
    texts = [clip_to_limit(s.text, turn.trial.speech_char_limit) for s in samples]
    view = _scorer_view(turn)  # the same for every candidate of this turn
    scores = [_candidate_score(scorer, turn, text, view) for text in texts]
    best = max(range(len(samples)), key=scores.__getitem__)
    return samples[best], [{"text": text, "score": round(score, 6), "kept": j == best, "tokens_out": s.tokens_out}
                           for j, (text, score, s) in enumerate(zip(texts, scores, samples))]


def _queue_wait(turn: Turn) -> float | None:
    """Seconds from the turn becoming ready (created, and its trial's earlier turns done) to its claim."""
    ready_since = max([turn.created_at] + [t.finished_at for t in turn.trial.turns.all()
                                           if t.index < turn.index and t.finished_at], default=None)
    if ready_since is None or turn.claimed_at is None:
        return None
    return max(0.0, (turn.claimed_at - ready_since).total_seconds())


def _record_failure(turns: list[Turn], token: str, error: str) -> None:
    for turn in turns:
        attempts = turn.attempts + 1
        status = Turn.Status.FAILED if attempts >= MAX_ATTEMPTS else Turn.Status.PENDING
        Turn.objects.filter(pk=turn.pk, claim_token=token, status=Turn.Status.RUNNING).update(
            status=status, attempts=attempts, error=error[:2000], claim_token="", claimed_at=None,
            partial_text="", first_text_at=None,  # a judge must not see, nor a delay count, an abandoned attempt
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
