"""The one small interface every model backend implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Callable, Hashable


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict]  # chat messages: [{"role": ..., "content": ...}]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None = None
    min_new_tokens: int = 0  # > 0 forces at least this many tokens (benchmarks)
    repetition_penalty: float = 1.0  # > 1 discourages repeating tokens (small models loop otherwise)
    # Stop once the text (stripped) has this many characters: nothing past it could be kept.
    char_limit: int | None = None
    # Higher goes first and may pause running rows of lower priority to get a row at once (a judge waits on
    # a live turn: 1; pre-generated work: 0). A paused row resumes later from the text it had written.
    priority: int = 0
    # A prefill ahead of time: a prompt that a later request will extend, prefilled before anyone waits on it (its
    # one token is thrown away). It goes after every other request of its priority and holds no row while it waits,
    # so a judge's question is never queued behind a crowd of them (the continuous batcher).
    ahead: bool = False


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_text: str  # the exact text the model was given (chat template applied)
    tokens_in: int
    tokens_out: int
    seconds: float  # wall time of the batch this request ran in
    ttft_seconds: float | None = None  # from the request's start to its first new token
    batch_size: int | None = None  # the most requests it was generated together with (itself included)
    mean_batch_size: float | None = None  # requests generated together with it, averaged over its decoding steps
    seed_used: int | None = None  # the seed its random sampling was drawn with (a padded batch shares one)
    # Why it stopped: "end" (the model ended it), "char_limit" (its text reached the request's
    # char_limit) or "max_tokens"; None where the backend cannot tell.
    stop_reason: str | None = None
    # Tokens generated after the text had reached char_limit (None: no limit, or not known).
    tokens_past_limit: int | None = None
    # Prompt tokens actually computed (less those reused from a cached earlier prompt, plus any recomputed
    # after a pause); None where the backend cannot tell (a server).
    tokens_prefilled: int | None = None
    pauses: int = 0  # times the request was paused to make room for a request of higher priority
    paused_seconds: float = 0.0  # time spent paused


# How often partial text is reported while requests are generated (seconds).
PROGRESS_INTERVAL = 0.25
# How often a continuous run with room asks for new requests (seconds); it also asks whenever a
# request finished (the next speaker may be due) and whenever it runs empty.
TAKE_INTERVAL = 0.2
# In between, how often it asks for live requests only (those that may pause running rows: a judge waits on each).
# A busy worker would otherwise leave a judge's question waiting 0.1 s on average for the next take; looking for
# live work alone is a cheaper query (the generation app reads live trials only).
LIVE_TAKE_INTERVAL = 0.05
# At most this share of a busy run's time goes to those live-only takes: where one is slow (many live trials with
# turns not yet due, a slow database), the next waits longer, so the rows being written never slow by more.
LIVE_TAKE_SHARE = 0.1

# Called with (request index, text generated so far) while a batch is generated.
ProgressCallback = Callable[[int, str], None]
# Continuous generation: take(free slots, pausable slots) (both arguments: continuous backends pass both) hands
# out (key, request) pairs to start, [] when there are none; requests beyond the free slots (up to the pausable
# ones) must have priority > 0: they pause running requests of priority 0, so take(0, n) means "live requests
# only, up to n" (``Taker`` asks that between full takes; a backend that cannot pause offers only free slots so);
# on_done(key, result) receives each finished request; on_text(key, text so far) follows running ones.
TakeRequests = Callable[..., list[tuple[Hashable, GenerationRequest]]]
OnDone = Callable[[Hashable, GenerationResult], None]
OnKeyText = Callable[[Hashable, str], None]
# on_error(key, exception): this request failed alone; the others go on.
OnError = Callable[[Hashable, Exception], None]


class Taker:
    """When a continuous run asks ``take`` for new requests: for any, when the run went idle or a request finished
    (``due``) and every TAKE_INTERVAL; in between, every LIVE_TAKE_INTERVAL (longer where one takes more than
    LIVE_TAKE_SHARE of that), for live requests only (``take(0, rows)``: requests that may take any of the rows,
    since each may pause a running one)."""

    def __init__(self, take: TakeRequests, clock: Callable[[], float] = time.perf_counter):
        self.take, self.clock = take, clock
        self.last_take = clock()
        self.next_live_take = self.last_take + LIVE_TAKE_INTERVAL

    def __call__(self, free: int, pausable: int = 0, *, due: bool = False) -> list[tuple[Hashable, GenerationRequest]]:
        if not (free or pausable):
            return []
        now = self.clock()
        if due or now - self.last_take >= TAKE_INTERVAL:
            # A full take also looks for live requests, but keeps a slow live take's spacing: else one such take
            # would come after every full take, whatever its cost.
            self.last_take, self.next_live_take = now, max(self.next_live_take, now + LIVE_TAKE_INTERVAL)
            return self.take(free, pausable)
        if now >= self.next_live_take:
            taken = self.take(0, free + pausable)
            self.next_live_take = now + max(LIVE_TAKE_INTERVAL, (self.clock() - now) / LIVE_TAKE_SHARE)
            return taken
        return []


# Characters per token assumed where no tokenizer is at hand (a server's model): an estimate on the
# long side for English (3-4 characters a token), so prompts fitted with it fit.
ESTIMATED_CHARS_PER_TOKEN = 3


class GenerationBackend(ABC):
    """Generates completions for a batch of chat prompts."""

    @abstractmethod
    def generate(
        self, requests: list[GenerationRequest], on_text: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        """Return one result per request, in order; report partial text to ``on_text`` if given."""

    def generate_continuously(
        self,
        take: TakeRequests,
        on_done: OnDone,
        on_text: OnKeyText | None = None,
        capacity: int = 8,
        on_error: OnError | None = None,
    ) -> None:
        """Generate requests as ``take`` hands them out, until it hands out none and none are running.

        A failure that concerns some requests only goes to ``on_error`` for each of them (raised if
        it is not given); a failure of the whole backend is raised. This default runs one closed batch at a
        time: take up to ``capacity``, generate them together, report, take again. Backends that
        can let requests join a running batch override it.
        """
        while batch := take(capacity):
            keys = [key for key, _ in batch]
            on_row_text = (lambda row, text: on_text(keys[row], text)) if on_text else None
            results = self.generate([request for _, request in batch], on_text=on_row_text)
            for key, result in zip(keys, results):
                on_done(
                    key,
                    replace(
                        result,
                        batch_size=result.batch_size or len(batch),
                        mean_batch_size=result.mean_batch_size or float(len(batch)),
                    ),
                )

    def context_window(self) -> int | None:
        """The most tokens the model reads, prompt and new tokens together; None if not known."""
        return None

    @property
    def keeps_prompt_caches(self) -> bool:
        """Whether a prompt's key/value cache outlives its request, so that prefilling a prompt ahead of time
        makes a later prompt that extends it cheaper (prefix reuse). A server may cache prefixes too, but a
        request to it is billed, so no backend is asked to prefill ahead unless it says so."""
        return False

    def prompt_tokens(self, messages: list[dict]) -> int:
        """The tokens ``messages`` take as a prompt. This default estimates from characters
        (ESTIMATED_CHARS_PER_TOKEN); backends with a tokenizer count exactly."""
        return -(-sum(len(m.get("content") or "") + 8 for m in messages) // ESTIMATED_CHARS_PER_TOKEN)

    @abstractmethod
    def choice_probabilities(self, messages: list[dict], labels: list[str]) -> list[float]:
        """Probability of each label as the model's next token after the prompt (renormalised over labels)."""

    @property
    @abstractmethod
    def device_name(self) -> str:
        """Where the model runs, e.g. 'cpu' or 'cuda:0 (NVIDIA H100)'."""
