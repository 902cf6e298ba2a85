"""A generation session: claim turns of one model configuration as the backend's batch has room, build
their requests, and record each turn the moment it finishes.

Every write to a claimed turn goes through ``Turn.objects.filter(pk=...).held(token)``, so a turn whose
claim was released meanwhile (its worker was thought dead) is never written by this session.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.utils import timezone

from inference import GenerationRequest, GenerationResult
from judging.models import MAX_ATTEMPTS, Turn
from judging.protocols.prompts import clip_to_limit, end_at_limit
from judging.selectors import record_response_delays
from judging.services import next_round_turns, trials_settle

from .backends import backend_for
from .best_of_n import candidates_per_turn, pick_best
from .heartbeat import ClaimHeartbeat
from .requests import Fit, TurnDoesNotFit, fitted_request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowKey:
    """One row of the backend's batch: a candidate of a claimed turn. The claim token tells a row of
    this session's claim from one of an earlier claim on the same turn."""

    turn_id: int
    token: str
    candidate: int = 0


@dataclass
class RunningTurn:
    """A claimed turn being written: its request, how many candidates it needs, those finished so far."""

    turn: Turn
    token: str
    request: GenerationRequest
    candidates: int
    fit: Fit | None = None
    finished: dict[int, GenerationResult] = field(default_factory=dict)

    def rows(self) -> list[tuple[RowKey, GenerationRequest]]:
        # Candidates of one turn get distinct seeds, or per-request seeding would make them identical.
        return [
            (
                RowKey(self.turn.pk, self.token, j),
                replace(self.request, seed=self.request.seed + j) if self.candidates > 1 else self.request,
            )
            for j in range(self.candidates)
        ]


class GenerationSession:
    """Generates turns of one model configuration as the backend's batch has room for them.

    ``pick(limit, urgent, pregenerated)`` names up to ``limit`` turns to claim next, up to ``urgent`` more of live
    trials (they pause pre-generated rows of a full batch), and of all those at most ``pregenerated`` of trials
    that are not live: the batch holds ``turns_at_once`` turns, and live turns have
    GENERATION_LIVE_TURNS_BEYOND_BATCH more rows that pre-generated ones never take. The backend asks for more whenever
    rows of its running batch are free (continuous batching), or once per closed batch; each turn is
    recorded as soon as it finishes. A best-of-N turn takes N rows: its candidates are scored and the
    best kept once all N are done.
    """

    def __init__(self, config, pick, claimed_by: str = "", turns_at_once: int | None = None):
        self.config, self.pick, self.claimed_by = config, pick, claimed_by
        self.backend = backend_for(config)
        self.rows_per_turn = max(1, config.best_of_n)
        self.turns_at_once = turns_at_once or settings.GENERATION_BATCH_SIZE
        self.live_turns_beyond = settings.GENERATION_LIVE_TURNS_BEYOND_BATCH
        self.running: dict[int, RunningTurn] = {}  # by turn id
        self.partial_started: set[int] = set()
        self.claimed = self.written = 0
        # Prompts of live trials' next rounds, prefilled while their judges read (rows of no turn).
        self.ahead: list[tuple[RowKey, GenerationRequest]] = []
        self.failed = False
        self.worker = socket.gethostname()

    def run(self) -> int:
        """Generate until ``pick`` names no more turns and none are running; returns turns written."""
        # Proves this worker alive, even while one long step blocks the loop (dict.copy is atomic across
        # threads): the one refresh of this session's claims.
        heartbeat = ClaimHeartbeat(lambda: [(r.turn.pk, r.token) for r in self.running.copy().values()]).start()
        try:
            self.backend.generate_continuously(
                self.take,
                self.on_done,
                self.on_text,
                capacity=(self.turns_at_once + self.live_turns_beyond) * self.rows_per_turn,
                on_error=self.on_error,
            )
        except Exception as exc:  # the model failed: no turn may stay claimed forever
            log.exception("generation failed for %d running turn(s) of %s", len(self.running), self.config)
            self.failed = True
            for running in self.running.values():
                record_failure(running.turn, running.token, f"{type(exc).__name__}: {exc}")
            self.running.clear()
        finally:
            heartbeat.stop()
        return self.written

    def _running(self, key: RowKey) -> RunningTurn | None:
        """The running turn a row belongs to, or None if that claim is no longer this session's."""
        running = self.running.get(key.turn_id)
        return running if running is not None and running.token == key.token else None

    def take(self, free_rows: int, pausable_rows: int = 0) -> list[tuple[RowKey, GenerationRequest]]:
        """Claim turns for ``free_rows`` rows, and live turns for up to ``pausable_rows`` more (the backend
        pauses pre-generated rows to make room for them: a judge is waiting)."""
        limit, urgent = free_rows // self.rows_per_turn, pausable_rows // self.rows_per_turn
        pregenerated = self.turns_at_once - sum(1 for running in self.running.values() if not running.turn.trial.live)
        ids = self.pick(limit, urgent, max(0, pregenerated)) if limit or urgent else []
        if not ids:
            return self._take_ahead(free_rows + pausable_rows)
        token = Turn.objects.filter(id__in=ids).claim(claimed_by=self.claimed_by)
        turns = list(
            Turn.objects.held(token)
            .select_related("trial__experiment", "trial__question", "model_config")
            .order_by("trial_id", "index")
        )
        self.claimed += len(turns)
        rows = []
        for turn in turns:
            try:
                request, fit = fitted_request(turn, self.backend)
            except TurnDoesNotFit as exc:  # no retry could fit it: the turn fails now, saying why
                log.error("turn %s does not fit its model's context window: %s", turn.pk, exc)
                record_failure(turn, token, str(exc), retry=False)
                continue
            except Exception as exc:  # one turn whose prompt cannot be built fails alone
                log.exception("could not build the prompt of turn %s", turn.pk)
                record_failure(turn, token, f"{type(exc).__name__}: {exc}")
                continue
            if turn.trial.live:  # a judge waits: it goes first, pausing pre-generated rows if none is free
                request = replace(request, priority=1)
            running = RunningTurn(turn, token, request, candidates_per_turn(self.config, turn), fit)
            self.running[turn.pk] = running
            rows += running.rows()
        return rows + self._take_ahead(free_rows + pausable_rows - len(rows))

    def _take_ahead(self, rows: int) -> list[tuple[RowKey, GenerationRequest]]:
        """Prefills ahead for up to ``rows`` rows: free ones, or ones a pre-generated row is paused for (a judge
        will wait on what they prefill; the paused row resumes from its kept cache). Waiting, they hold no row: the
        batcher queues them after every live turn."""
        taken, self.ahead = self.ahead[: max(0, rows)], self.ahead[max(0, rows) :]
        return taken

    def _prefill_next_round(self, trial) -> None:
        """While the judge reads the round just spoken, prefill the prompts its next round will extend, so
        that after the judge's move only the question and the round's closing words remain to be read
        (prefix reuse: docs/limits.md). One token is generated and thrown away; only the cache is kept."""
        if not self.backend.keeps_prompt_caches:
            return
        try:
            for turn in next_round_turns(trial):
                if turn.model_config_id != self.config.pk:
                    continue  # another model's cache: its own worker
                request, _ = fitted_request(turn, self.backend)
                key = RowKey(turn_id=0, token=f"ahead:{trial.pk}:{turn.round}:{turn.speaker}")
                # A live trial's, after every turn of live trials (inference.GenerationRequest.ahead).
                ahead = replace(request, max_new_tokens=1, min_new_tokens=0, priority=1, ahead=True)
                self.ahead.append((key, ahead))
        except Exception:  # an optimisation: the next round is written all the same
            log.exception("could not prefill the next round of trial %s", trial.pk)

    def on_text(self, key: RowKey, text: str) -> None:
        """Partial text of a live turn, for the judge's page (best-of-N turns show only the kept one)."""
        running = self._running(key)
        if running is None or running.candidates > 1 or not running.turn.trial.live:
            return
        turn = running.turn
        fields = {"partial_text": clip_to_limit(text, turn.trial.speech_char_limit)}
        first = turn.pk not in self.partial_started
        if first:
            self.partial_started.add(turn.pk)
            fields["first_text_at"] = timezone.now()
        Turn.objects.filter(pk=turn.pk).held(running.token).update(**fields)
        if first:
            record_response_delays({turn.trial_id})

    def on_error(self, key: RowKey, error: Exception) -> None:
        """One request failed (not the model): its turn alone gets a failed attempt."""
        running = self._running(key)
        if running is None:
            return
        del self.running[key.turn_id]
        log.error("generation of turn %s failed: %s", key.turn_id, error)
        record_failure(running.turn, running.token, f"{type(error).__name__}: {error}")

    def on_done(self, key: RowKey, result: GenerationResult) -> None:
        running = self._running(key)
        if running is None:  # a stale claim, or a candidate of a turn that already failed
            return
        running.finished[key.candidate] = result
        if len(running.finished) < running.candidates:
            return
        del self.running[key.turn_id]
        turn = running.turn
        try:
            candidates = []
            if running.candidates > 1:
                result, candidates = pick_best(
                    self.config, turn, [running.finished[j] for j in range(running.candidates)]
                )
            self.written += self._record(running, result, candidates)
        except Exception as exc:  # e.g. the scoring model failed: this turn fails, the others go on
            log.exception("could not record turn %s", turn.pk)
            record_failure(turn, running.token, f"{type(exc).__name__}: {exc}")
        trials_settle({turn.trial_id})
        if turn.trial.live:
            record_response_delays({turn.trial_id})
            self._prefill_next_round(turn.trial)

    def _record(self, running: RunningTurn, result: GenerationResult, candidates: list[dict]) -> int:
        turn, request = running.turn, running.request
        model_settings = (
            self.config.settings_snapshot()
            | {
                "seed": request.seed,
                "seed_used": result.seed_used,
                "max_new_tokens_used": request.max_new_tokens,
                "device": self.backend.device_name,
                "worker": self.worker,
                "best_of_n": running.candidates,
                "batch_size": result.batch_size,
                "mean_batch_size": result.mean_batch_size,
                "stop_reason": result.stop_reason,
                "pauses": result.pauses,
                "paused_seconds": round(result.paused_seconds, 3),
            }
            | (running.fit.as_settings() if running.fit else {})
        )
        text, ending = end_at_limit(result.text, turn.trial.speech_char_limit, cut=was_cut(result))
        return (
            Turn.objects.filter(pk=turn.pk)
            .held(running.token)
            .update(
                status=Turn.Status.DONE,
                prompt=result.prompt_text,
                ttft_seconds=result.ttft_seconds,
                queue_wait_seconds=queue_wait(turn),
                text=text or "(no argument)",
                speech_end=ending,
                tokens_past_limit=result.tokens_past_limit,
                passage_chars_dropped=running.fit.passage_chars_dropped if running.fit else None,
                tokens_in=result.tokens_in,
                tokens_out=result.tokens_out,
                tokens_prefilled=result.tokens_prefilled,
                wall_seconds=result.seconds,
                model_settings=model_settings,
                finished_at=timezone.now(),
                attempts=turn.attempts + 1,
                error="",
                candidates=candidates,
            )
        )


def queue_wait(turn: Turn) -> float | None:
    """Seconds from the turn becoming ready (created, and its trial's earlier turns done) to its claim."""
    ready_since = max(
        [turn.created_at] + [t.finished_at for t in turn.trial.turns.all() if t.index < turn.index and t.finished_at],
        default=None,
    )
    if ready_since is None or turn.claimed_at is None:
        return None
    return max(0.0, (turn.claimed_at - ready_since).total_seconds())


def was_cut(result: GenerationResult) -> bool:
    """Whether generation stopped the text (at the character or token limit) rather than the model
    ending it; unknown (a server's text) counts as ended."""
    return result.stop_reason in ("char_limit", "max_tokens")


def record_failure(turn: Turn, token: str, error: str, retry: bool = True) -> None:
    """A failed attempt: the turn goes back to pending, or fails once it has used up its attempts
    (at once where ``retry`` is False: nothing another attempt does would differ)."""
    attempts = turn.attempts + 1
    status = Turn.Status.FAILED if attempts >= MAX_ATTEMPTS or not retry else Turn.Status.PENDING
    Turn.objects.filter(pk=turn.pk).held(token).release(to=status, attempts=attempts, error=error[:2000])
    trials_settle({turn.trial_id})
