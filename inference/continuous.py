"""Continuous batching for transformers models: requests join and leave a running batch between decoding steps.

Why: with one padded ``generate()`` call per batch, a judge's question that arrives while a batch
is being written waits for the whole batch, and rows that finished early keep being computed.
Here every running request is a row of one batch; between two decoding steps new requests are
prefilled and joined, and finished rows leave.

How: all rows share one ``DynamicCache``, left-padded to a common length, with a 2-D attention
mask marking the padding. Positions are counted per row from the mask, so padding never shifts
a row's positions; the model masks padded keys. Joining a row pads the shorter of the two caches
on the left; removing rows selects the remaining ones and drops leading columns that are padding
in every row. Sampling is per row (temperature, top-p, repetition penalty, and a generator seeded
with the request's own seed, so a turn's text does not depend on what it was batched with).

Prefills are bounded: one step prefills waiting requests together up to ``prefill_tokens`` prompt
tokens, and a prompt longer than that is prefilled alone, ``chunk_tokens`` at a time, into a cache
of its own, one chunk per step; while rows are running, every prefill step is followed by a decoding
step, so no prompt, however long, stops the running rows or the requests queued behind it for more
than one chunk. A request with a ``char_limit`` stops at the step its text reaches that many
characters (``stop_reason`` "char_limit"), so no token is generated past the limit. The backend runs long
pre-generated prompts in a second batcher of their own (lanes.py), so that no row is padded to their length.

Priorities (pre-emption): a request of higher ``priority`` (a turn a judge waits on) goes before waiting
requests of lower priority, and when no row is free it pauses a running row of lower priority: that row's
cache is kept in the prefix cache and the row goes back to the queue with the tokens it has written, to
resume when a row frees up (one token to prefill if its cache is still there, else its prompt and text
again). Its claim, generator and text carry on, so nothing is lost or written twice. Within a priority, a prefill
ahead of time (``GenerationRequest.ahead``: a live debate's next round, prefilled while its judge reads) goes after
every other request and holds no row while it waits: when a round ends in many debates at once, their prefills
ahead would otherwise take every row, and a judge's question would not even be taken until they were done.

Prefix reuse: with a ``PrefixCache`` (prefix_cache.py), a finished row's prompt cache is kept, and a new
prompt that extends a cached one starts from it (copied once, by its first prefill step) and prefills only its new
tokens.

Supported for models whose cache is made of plain full-attention ``DynamicLayer`` s (Llama,
Qwen2, SmolLM, OLMo, ...). ``supports(model)`` says; the backend falls back to padded batches
otherwise (sliding-window or linear-attention layers keep other cache state).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from .base import GenerationRequest, GenerationResult
from .kv_cache import left_padded, roomy_cache, spare
from .limits import tokens_past_limit
from .prefix_cache import PrefixCache, common_prefix_length, supersedes

log = logging.getLogger(__name__)

# How many of the most likely tokens are sorted for top-p sampling before falling back to the whole vocabulary.
NUCLEUS_CANDIDATES = 512
# generate()'s top-k when a model's generation config sets none (0 there turns top-k off).
DEFAULT_TOP_K = 50
# Scaled-dot-product attention kernels PyTorch may choose from in generation: all but cuDNN's (without_cudnn_attention).
ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
# How long after a request of priority above 0 (a live debate's turn) more are expected: a judge reads a round
# and asks within minutes. Meanwhile lower-priority long prompts are chunked finer (``live_chunk_tokens``).
LIVE_EXPECTED_SECONDS = 300.0


def rows_to_pause(waiting: int, free: int, ahead: bool) -> int:
    """Running rows to pause for ``waiting`` requests of the top rank that have ``free`` rows: as many as they lack;
    for prefills ahead of time (``ahead``), one at a time and only when no row is free. Nobody waits on those yet, and
    since they hold no row while they wait, a round's are all handed out at once: pausing for each would pause every
    pre-generated row."""
    if ahead:
        return 1 if waiting > 0 and free <= 0 else 0
    return waiting - free


class PrefillFailed(Exception):
    """Prefilling some joining requests failed (e.g. out of memory on a long prompt); the running
    batch is untouched and those requests were dropped."""

    def __init__(self, keys: list, error: Exception):
        super().__init__(f"prefill of {len(keys)} request(s) failed: {error}")
        self.keys, self.error = keys, error


def supports(model) -> bool:
    """Whether ``model``'s cache can be joined and split as this module does."""
    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # a model whose config a DynamicCache cannot be built from
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


@dataclass
class Row:
    key: Hashable
    request: GenerationRequest
    prompt_text: str
    prompt_ids: list[int]
    generator: torch.Generator | None
    submitted_at: float
    tokens: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    reported_tokens: int = 0
    steps: int = 0  # batch steps this row took part in, and the rows running at each (summed, and the most)
    rows_summed: int = 0
    most_rows: int = 0
    done: bool = False
    tokens_out: int = 0  # tokens counted as generated: the text's tokens plus a stop token if one ended it
    stop_reason: str | None = None  # "end", "char_limit" or "max_tokens" once done
    prefilled: int = 0  # a row prefilled on its own (in chunks, or from a cached prefix): tokens in ``cache``
    cache: DynamicCache | None = None
    context_ids: list[int] = field(default_factory=list)  # what a prefill computes: the prompt (and text, once paused)
    looked_up: bool = False  # the prefix cache was asked for this context
    computed: int = 0  # prompt (and resumed text) tokens actually prefilled
    reused: int = 0  # tokens taken from the prefix cache instead
    attached: int = 0  # the cached prefix the current attempt started from (0: none)
    passed_over: int = 0  # steps that prefilled other rows extending cached prefixes before this one
    alone: bool = False  # its group's prefill failed: prefilled on its own from now on
    # The character limit is checked by decoding the whole text only once the characters the tokens since the
    # last check could add (each token's own text plus one, for a space it may carry) reach what was missing.
    chars_bound: int = 0
    chars_missing: int | None = None
    pauses: int = 0
    paused_at: float | None = None
    paused_seconds: float = 0.0

    @property
    def priority(self) -> int:
        return self.request.priority

    @property
    def rank(self) -> tuple[int, bool]:
        """Queue order: by priority, and within one a request before a prefill ahead of time."""
        return self.request.priority, not self.request.ahead


# A row extending a cached prefix that other such rows went before this many times goes first (``_extensions``).
MOST_PASSED_OVER = 8


def without_cudnn_attention():
    """A context in which PyTorch chooses any attention kernel but cuDNN's. cuDNN's builds a new graph for each key
    length, that is at every decoding step: on an H200 it spent 1.5 ms of host time per layer per step (46 of a
    77 ms step for the SmolLM2 shape; benchmarks/continuous_step_profile.py, docs/benchmarks.md)."""
    return sdpa_kernel(ATTENTION_BACKENDS)


class Extensions(list):
    """Waiting rows that extend cached prefixes, prefilled together in one step (``ContinuousBatcher._extensions``)."""


class ContinuousBatcher:
    """A running batch of generation requests. ``submit`` queues a request; each ``step`` either
    prefills the queued requests (up to ``max_rows`` running) or decodes one token for every
    running row, and returns the requests that finished."""

    def __init__(
        self,
        model,
        device: str,
        *,
        stop_ids: set[int],
        pad_token_id: int,
        max_rows: int,
        decode: Callable[[list[int]], str],
        prefill_tokens: int = 2048,
        chunk_tokens: int | None = None,
        prefill_share: float | None = 0.5,
        clock: Callable[[], float] = time.perf_counter,
        prefix_cache: PrefixCache | None = None,
        live_chunk_tokens: int | None = None,
        live_seen_at: float | None = None,
    ):
        self.model, self.device = model, device
        self.prefill_tokens = prefill_tokens
        self.chunk_tokens = min(chunk_tokens or prefill_tokens, prefill_tokens)
        # A judge's request waits for the chunk being run: while live requests are expected (one came within
        # LIVE_EXPECTED_SECONDS, by ``clock``), lower-priority chunks are this size instead.
        self.live_chunk_tokens = min(live_chunk_tokens or self.chunk_tokens, self.chunk_tokens)
        self.live_seen_at = live_seen_at
        if prefill_share is not None and not 0 < prefill_share < 1:
            raise ValueError("prefill_share is a share of the time: between 0 and 1, or None")
        self.prefill_share, self.clock = prefill_share, clock
        self.prefix_cache = prefix_cache
        self.chunk_seconds = self.decode_seconds = 0.0  # while a long prompt waits and rows run
        self.stop_ids = set(stop_ids)
        self.stop_index = sorted(stop_ids)
        self.pad_token_id = pad_token_id
        self.max_rows = max_rows
        # Rows running on the same worker in another batcher (lanes.py), counted in each row's batch figures: a
        # turn's batch_size and mean_batch_size are the rows running on the worker, whichever batch they ran in.
        self.rows_beside = 0
        self.decode = decode
        top_k = getattr(model.generation_config, "top_k", None)
        self.top_k = DEFAULT_TOP_K if top_k is None else int(top_k)
        self.waiting: list[Row] = []
        self.rows: list[Row] = []
        self.prefilled_last = False  # the last step was a prefill: the running rows decode next
        self.prefill_steps = 0  # steps that prefilled (a whole group, or one chunk of a long prompt)
        self.prefix_failures = 0  # prefills from a cached prefix that failed (out of memory, say): started over whole
        self.first_words = False  # a row got its first token since partial_texts() was last called
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, cache length], 1 = a real token
        self.next_input: torch.Tensor | None = None  # [rows], the last sampled token of each row
        self.seen: torch.Tensor | None = None  # [rows, vocab] bool, tokens the repetition penalty applies to

    def _forward(self, **inputs):
        with without_cudnn_attention():
            return self.model(**inputs)

    # ------------------------------------------------------------------ queue --
    def submit(self, key: Hashable, request: GenerationRequest, prompt_ids: list[int], prompt_text: str = "") -> None:
        generator = None
        if request.seed is not None and request.temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(request.seed)
        if request.priority > 0:
            self.live_seen_at = self.clock()
        if request.ahead and self._superseded(prompt_ids):
            return  # a request that will supersede it is already here: it would serve nothing
        if not request.ahead:
            self._drop_superseded_prefills(request, prompt_ids)
        self.waiting.append(
            Row(
                key=key,
                request=request,
                prompt_text=prompt_text,
                prompt_ids=list(prompt_ids),
                context_ids=list(prompt_ids),
                generator=generator,
                submitted_at=time.perf_counter(),
            )
        )

    def _drop_superseded_prefills(self, request: GenerationRequest, prompt_ids: list[int]) -> None:
        """Drop waiting prefills ahead of time of no higher priority, not yet started, whose prompts a new request's
        supersedes (a judge's question in the round they were prefilled for): it goes before them, which would leave
        them nothing to serve."""
        self.waiting = [
            row
            for row in self.waiting
            if not (
                row.request.ahead
                and row.computed == 0
                and row.priority <= request.priority
                and supersedes(common_prefix_length(row.context_ids, prompt_ids), len(row.context_ids))
            )
        ]

    def _superseded(self, prompt_ids: list[int]) -> bool:
        """Whether a request, running or waiting and not a prefill ahead of time, has a prompt that supersedes these."""
        return any(
            not row.request.ahead and supersedes(common_prefix_length(prompt_ids, row.prompt_ids), len(prompt_ids))
            for row in (*self.rows, *self.waiting)
        )

    def top_waiting(self) -> list[Row]:
        """The waiting rows of the highest rank (``Row.rank``), in queue order: the ones the next prefill serves and
        rows are paused for."""
        top = max(row.rank for row in self.waiting)
        return [row for row in self.waiting if row.rank == top]

    @property
    def held_rows(self) -> int:
        """Rows running, or waiting to run but for prefills ahead of time (every other request goes before them)."""
        return len(self.rows) + sum(1 for row in self.waiting if not row.request.ahead)

    @property
    def free_rows(self) -> int:
        return max(0, self.max_rows - self.held_rows)

    @property
    def live_waiting(self) -> int:
        """Waiting requests of priority above 0 that hold a row (not prefills ahead of time)."""
        return sum(1 for row in self.waiting if row.priority > 0 and not row.request.ahead)

    @property
    def pausable_rows(self) -> int:
        """Rows a request of priority above 0 could take at once by pausing running rows of priority 0."""
        return max(0, sum(1 for row in self.rows if row.priority <= 0) - self.live_waiting)

    @property
    def idle(self) -> bool:
        return not self.rows and not self.waiting

    def partial_texts(self) -> list[tuple[Hashable, str]]:
        """(key, text so far) of running rows that wrote something since the last call."""
        self.first_words = False
        updates = []
        for row in self.rows:
            if len(row.tokens) > row.reported_tokens:
                row.reported_tokens = len(row.tokens)
                # A character split across tokens decodes as U+FFFD until its last token arrives.
                updates.append((row.key, self.decode(row.tokens).rstrip("\ufffd")))
        return updates

    # ------------------------------------------------------------------- step --
    @torch.inference_mode()
    def step(self) -> list[tuple[Hashable, GenerationResult]]:
        """Prefill waiting requests if there is room (and the running rows did not wait on the last
        step's prefill), else decode one token for every running row; returns the requests that finished.

        One prefill takes waiting requests in order up to ``prefill_tokens`` prompt tokens together
        (at least one request), so when many arrive at once the first get their first words after a
        short prefill. A prompt longer than ``prefill_tokens`` is prefilled alone, one chunk of
        ``chunk_tokens`` per step. A prompt that fits in one prefill goes before the chunks of a long
        one (a judge's question waits for at most the chunk being run); while rows are running,
        chunks take at most ``prefill_share`` of the time (the rest decodes the running rows, so
        their speeches go on at a steady pace); ``prefill_share`` None: a chunk after every decoding step.
        """
        self._make_room()
        room = self.max_rows - len(self.rows)
        step = self._next_prefill(room) if self.waiting and room > 0 else None
        if step is not None:
            self.prefilled_last = True
            self.prefill_steps += 1
            started = self.clock()
            if isinstance(step, Row):
                self._prefill_single(step)
            else:
                prefill = self._prefill_extensions if isinstance(step, Extensions) else self._prefill
                self.waiting = [row for row in self.waiting if not any(row is r for r in step)]
                try:
                    cache, mask, seen, logits = prefill(step)  # touches nothing shared
                except Exception as error:
                    if len(step) == 1:
                        step[0].cache = None
                        raise PrefillFailed([step[0].key], error) from error
                    self._retry_alone(step, error)
                    return self._remove_finished()
                self._join(cache, mask, seen, step)
                self._take_tokens(logits, first=len(self.rows) - len(step))
            if isinstance(step, Row) and self.rows:
                self.chunk_seconds += self.clock() - started
        elif self.rows:
            self.prefilled_last = False
            started = self.clock()
            self._decode()
            if any(self._single(row) for row in self.waiting):
                self.decode_seconds += self.clock() - started
            else:  # no chunk waits: the time share starts afresh with the next long prompt
                self.chunk_seconds = self.decode_seconds = 0.0
        return self._remove_finished()

    def _retry_alone(self, rows: list[Row], error: Exception) -> None:
        """A prefill of several rows failed (the group too big for the memory left, or one row's fault): each goes
        back to the front of the queue to be prefilled on its own, from the start, so that only a row that fails
        alone fails (``PrefillFailed``) and the others are not charged for it."""
        log.warning("a prefill of %d requests failed (%s): prefilling each on its own", len(rows), error)
        for row in rows:
            self._start_over(row)
        self.waiting = [*rows, *self.waiting]

    @staticmethod
    def _start_over(row: Row) -> None:
        """Drop what a row's failed prefill had, a cached prefix it started from too: it is prefilled again from its
        first token, on its own."""
        row.reused -= row.attached
        row.cache, row.prefilled, row.attached, row.alone = None, 0, 0, True

    def _remaining(self, row: Row) -> int:
        return len(row.context_ids) - row.prefilled

    def _single(self, row: Row) -> bool:
        """Whether a row is prefilled on its own: it starts from a cache (a cached prefix, or its own
        earlier chunks), is too long for one prefill, or failed in a group (``_retry_alone``)."""
        return row.alone or row.cache is not None or self._remaining(row) > self.prefill_tokens

    def _extends_cached(self, row: Row) -> bool:
        """A row started from a cached prefix whose new tokens fit in one chunk: prefilled like a short prompt."""
        return (
            row.cache is not None
            and row.attached > 0
            and row.prefilled == row.attached
            and self._remaining(row) <= self.chunk_tokens
        )

    def _attach_prefix(self, row: Row) -> None:
        """Start a waiting row from the longest cached prefix of its context, if there is one."""
        if self.prefix_cache is None or row.looked_up or row.cache is not None:
            return
        row.looked_up = True
        # A row started from a cache is prefilled on its own: worth it only where most of its prompt is reused
        # (the next round of a debate, a paused row), not for a shared chat-template preamble.
        context = row.context_ids
        length, cache = self.prefix_cache.longest(context, most=len(context) - 1, least=len(context) // 2)
        if cache is not None:
            row.cache, row.prefilled, row.attached = cache, length, length
            row.reused += length

    def _next_prefill(self, room: int):
        """What to prefill now: a list of waiting rows to prefill together, one row to prefill on its own
        (its next chunk, or the new tokens after a cached prefix), or None (decode instead).

        Only the waiting rows of the highest rank (``Row.rank``) are considered. Among them, a row starting from a
        cached prefix whose new tokens fit in one chunk goes at once; otherwise prompts that fit in one
        prefill go together, before long prompts' chunks."""
        if self.rows and self.prefilled_last:
            return None
        candidates = self.top_waiting()
        group, tokens = [], 0
        for row in candidates:
            if len(group) == room:
                break
            self._attach_prefix(row)
            if self._single(row):
                if not group and self._extends_cached(row):
                    return self._extensions(candidates, room)
                continue  # prompts that fit in one prefill go before long prompts' chunks
            if group and tokens + len(row.context_ids) > self.prefill_tokens:
                break
            group.append(row)
            tokens += len(row.context_ids)
        if group:
            return group
        single = next((row for row in candidates if self._single(row)), None)
        if single is None:
            return None
        share = self.prefill_share
        top = candidates[0].priority
        outranks = top > max((row.priority for row in self.rows), default=top - 1)
        if (
            not self.rows
            or outranks
            or share is None
            or self.chunk_seconds <= share / (1 - share) * self.decode_seconds
        ):
            return single
        return None

    def _extensions(self, candidates: list[Row], room: int):
        """Candidates that extend a cached prefix by a chunk at most, to be prefilled now: the one with the fewest new
        tokens, and with it those next in that order while the step computes at most a chunk (``_chunk_size``: the finer
        one for pre-generated rows and prefills ahead beside live debates); a row on its own where no other fits. When
        many judges ask at once, the shortest first gives the most of them their first words soonest; a row passed over
        MOST_PASSED_OVER times goes first, so no wide extension waits for ever behind narrower ones.

        Only the first ``room`` such candidates in queue order are looked at: each holds its cached prefix from the
        lookup on, a view that keeps the whole entry's memory taken should the prefix cache drop it. Each row of a group
        is fed the last ``width`` tokens of its context, ``width`` being the most new tokens of any: a row with fewer
        recomputes that many cached tokens, so that every row's tokens stay contiguous (left padding only)."""
        extending = []
        for row in candidates:
            if len(extending) == room:
                break
            self._attach_prefix(row)
            if self._extends_cached(row):
                extending.append(row)
        extending.sort(key=lambda row: (row.passed_over < MOST_PASSED_OVER, self._remaining(row)))
        budget = self._chunk_size(extending[0])  # the candidates share a priority
        group = extending[:1]
        for row in extending[1:]:
            width = max(self._remaining(r) for r in (*group, row))
            if width * (len(group) + 1) > budget:
                break  # the rest are wider still
            if any(len(r.context_ids) < width for r in (*group, row)):
                continue
            group.append(row)
        for row in extending:
            if not any(row is r for r in group):
                row.passed_over += 1
        return group[0] if len(group) == 1 else Extensions(group)

    def _prefill_extensions(self, rows: list[Row]):
        """Run rows that start from cached prefixes as one batch (see ``_extensions``): their cache, mask, seen
        tokens and next-token logits."""
        width = max(self._remaining(row) for row in rows)
        kept = [len(row.context_ids) - width for row in rows]  # the cached tokens each row keeps
        past = max(kept)
        cache = roomy_cache(self.model.config)
        # The forward pass writes the rows' new tokens into the room; more room only for a batch of these rows alone
        # (joining running rows copies them into the batch's buffers).
        room = width + (0 if self.rows else spare(past + width))
        for index, layer in enumerate(cache.layers):
            prefixes = [row.cache.layers[index] for row in rows]
            layer.hold(
                left_padded([prefix.keys[:, :, :k] for prefix, k in zip(prefixes, kept)], past, room),
                left_padded([prefix.values[:, :, :k] for prefix, k in zip(prefixes, kept)], past, room),
                past,
            )
        ids = torch.tensor([row.context_ids[k:] for row, k in zip(rows, kept)], device=self.device)
        mask = torch.tensor([[0] * (past - k) + [1] * (k + width) for k in kept], device=self.device)
        positions = torch.tensor([list(range(k, k + width)) for k in kept], device=self.device)
        logits = self._forward(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        ).logits[:, -1]
        seen = self._seen(rows, logits.shape[-1])
        for row in rows:
            row.computed += width
            row.prefilled, row.cache = len(row.context_ids), None
        return cache, mask, seen, logits

    def _prefill_single(self, row: Row) -> None:
        """Prefill the next chunk of one row into its own cache (one long prompt is finished before the next
        is started); it joins the batch after its last chunk."""
        try:
            joined = self._prefill_chunk(row)
        except Exception as error:
            if row.attached:  # extending the cached prefix copies it first (out of memory?): once more, from nothing
                log.warning("could not prefill a request from its cached prefix; prefilling it whole", exc_info=True)
                self.prefix_failures += 1
                self._start_over(row)
                return
            row.cache = None
            self.waiting = [r for r in self.waiting if r is not row]
            raise PrefillFailed([row.key], error) from error
        if joined is None:
            return
        self.waiting = [r for r in self.waiting if r is not row]
        cache, mask, seen, logits = joined
        self._join(cache, mask, seen, [row])
        self._take_tokens(logits, first=len(self.rows) - 1)

    def _chunk_size(self, row: Row) -> int:
        """The tokens of ``row``'s next chunk: fewer for pre-generated rows and prefills ahead of time while live
        requests are expected (a judge's question waits for at most the chunk under way)."""
        expected = self.live_seen_at is not None and self.clock() - self.live_seen_at < LIVE_EXPECTED_SECONDS
        background = row.priority <= 0 or row.request.ahead
        return self.live_chunk_tokens if expected and background else self.chunk_tokens

    def _prefill_chunk(self, row: Row):
        """One chunk of a long prompt; after the last: its cache, mask, seen tokens and next-token logits."""
        start = row.prefilled
        end = min(len(row.context_ids), start + self._chunk_size(row))
        if row.cache is None:
            row.cache = roomy_cache(self.model.config)
        ids = torch.tensor([row.context_ids[start:end]], device=self.device)
        mask = torch.ones(1, end, dtype=torch.long, device=self.device)
        positions = torch.arange(start, end, device=self.device)[None]
        output = self._forward(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=row.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = output.logits[:, -1]
        row.prefilled = end
        row.computed += end - start
        if end < len(row.context_ids):
            return None
        cache, row.cache = row.cache, None
        return cache, mask, self._seen([row], logits.shape[-1]), logits

    def _prefill(self, joining: list[Row]):
        """Run the joining prompts as one left-padded batch: their cache, mask, seen tokens and next-token logits."""
        width = max(len(r.context_ids) for r in joining)
        pad = self.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r.context_ids)) + r.context_ids for r in joining], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(r.context_ids)) + [1] * len(r.context_ids) for r in joining], device=self.device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = roomy_cache(self.model.config)
        logits = self._forward(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        ).logits[:, -1]
        for row in joining:
            row.computed += len(row.context_ids)
        return cache, mask, self._seen(joining, logits.shape[-1]), logits

    def _seen(self, rows: list[Row], vocab: int) -> torch.Tensor:
        """[rows, vocab] bool: the tokens of each row's context, which the repetition penalty applies to."""
        seen = torch.zeros(len(rows), vocab, dtype=torch.bool, device=self.device)
        for i, row in enumerate(rows):
            seen[i, torch.tensor(row.context_ids, device=self.device)] = True
        return seen

    def _decode(self) -> None:
        mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        positions = mask.sum(-1, keepdim=True) - 1
        logits = self._forward(
            input_ids=self.next_input[:, None],
            attention_mask=mask,
            position_ids=positions,
            cache=self.cache,
            use_cache=True,
        ).logits[:, -1]
        self.mask = mask
        self._take_tokens(logits, first=0)

    def _take_tokens(self, logits: torch.Tensor, first: int) -> None:
        """Sample the next token of rows ``first..`` from their ``logits`` and record it."""
        rows = self.rows[first:]
        tokens = self._sample(logits.float(), rows, self.seen[first:])
        now = time.perf_counter()
        self.next_input[first:] = tokens
        self.seen[torch.arange(first, len(self.rows), device=self.device), tokens] = True
        for row in rows:  # the rows that computed in this step: all of them, or the ones joining
            row.steps += 1
            row.rows_summed += len(rows) + self.rows_beside
            row.most_rows = max(row.most_rows, len(rows) + self.rows_beside)
        for row, token in zip(rows, tokens.tolist()):
            if row.first_token_at is None:
                row.first_token_at = now
                self.first_words = True
            row.tokens_out += 1
            if token in self.stop_ids:  # never sampled before min_new_tokens (masked in _sample)
                row.done, row.stop_reason = True, "end"
                continue
            row.tokens.append(token)
            limit = row.request.char_limit
            if limit and row.tokens_out >= row.request.min_new_tokens and self._reached(row, limit):
                row.done, row.stop_reason = True, "char_limit"
            elif row.tokens_out >= row.request.max_new_tokens:
                row.done, row.stop_reason = True, "max_tokens"

    def _reached(self, row: Row, limit: int) -> bool:
        """Whether a row's text has reached ``limit`` characters. The whole text is decoded only when the
        tokens since the last decoding could have made up what was missing (a long speech would otherwise be
        decoded whole at every step)."""
        row.chars_bound += len(self.decode(row.tokens[-1:])) + 1
        if row.chars_missing is not None and row.chars_bound < row.chars_missing:
            return False
        text = self.decode(row.tokens)
        if len(text.strip()) >= limit:
            return True
        row.chars_bound, row.chars_missing = 0, limit - len(text)
        return False

    def _sample(self, logits: torch.Tensor, rows: list[Row], seen: torch.Tensor) -> torch.Tensor:
        if any(r.request.repetition_penalty != 1.0 for r in rows):
            penalty = torch.tensor([r.request.repetition_penalty for r in rows], device=self.device)[:, None]
            # The repetition penalty as transformers applies it: shrink the scores of tokens already present.
            penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
            logits = torch.where(seen, penalised, logits)
        for i, row in enumerate(rows):
            if row.tokens_out < row.request.min_new_tokens:  # forced length (benchmarks): no stopping yet
                logits[i, self.stop_index] = float("-inf")
        chosen = logits.argmax(-1)
        sampled = [i for i, row in enumerate(rows) if row.request.temperature > 0]  # the others are greedy
        if sampled:
            # As generate() samples: temperature, the model's top-k (if its generation config sets one), top-p.
            temperature = torch.tensor([rows[i].request.temperature for i in sampled], device=self.device)[:, None]
            top_p = torch.tensor([rows[i].request.top_p for i in sampled], device=self.device)[:, None]
            scores = logits[sampled] / temperature
            if 0 < self.top_k < scores.shape[-1]:
                scores = scores.masked_fill(scores < scores.topk(self.top_k, dim=-1).values[:, -1:], float("-inf"))
            probs = torch.softmax(scores, dim=-1)
            index = None
            if bool((top_p < 1.0).any()):
                # The nucleus (smallest set of tokens reaching top_p) is nearly always among the few hundred
                # most likely tokens: sort only those, unless they fall short of top_p.
                probs, index = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
                if not bool((probs.sum(-1, keepdim=True) >= top_p).all()):
                    probs, index = torch.softmax(scores, dim=-1).sort(dim=-1, descending=True)
                probs = probs.masked_fill(probs.cumsum(-1) - probs > top_p, 0.0)
            for j, i in enumerate(sampled):  # each row draws from its own generator
                pick = torch.multinomial(probs[j], 1, generator=rows[i].generator)[0]
                chosen[i] = pick if index is None else index[j, pick]
        return chosen

    # ------------------------------------------------------- joining, leaving --
    def _join(self, cache: DynamicCache, mask: torch.Tensor, seen: torch.Tensor, joining: list[Row]) -> None:
        new_input = torch.zeros(len(joining), dtype=torch.long, device=self.device)
        if not self.rows:
            self.cache, self.mask, self.seen, self.next_input = cache, mask, seen, new_input
        else:
            old_len, new_len = self.mask.shape[1], mask.shape[1]
            length = max(old_len, new_len)
            room = spare(length)
            for old_layer, new_layer in zip(self.cache.layers, cache.layers):
                old_layer.hold(
                    left_padded([old_layer.keys, new_layer.keys], length, room),
                    left_padded([old_layer.values, new_layer.values], length, room),
                    length,
                )
            self.mask = torch.cat([F.pad(self.mask, (length - old_len, 0)), F.pad(mask, (length - new_len, 0))])
            self.seen = torch.cat([self.seen, seen])
            self.next_input = torch.cat([self.next_input, new_input])
        now = self.clock()
        for row in joining:
            if row.paused_at is not None:
                row.paused_seconds += now - row.paused_at
                row.paused_at = None
        self.rows.extend(joining)

    def _remove_finished(self) -> list[tuple[Hashable, GenerationResult]]:
        finished = [(i, row) for i, row in enumerate(self.rows) if row.done]
        if not finished:
            return []
        now = time.perf_counter()
        results = [(row.key, self._result(row, now)) for _, row in finished]
        for i, row in finished:  # its prompt's cache, for a later prompt that extends it (the next round)
            self._keep_cache(i, len(row.prompt_ids))
        self._drop_rows({i for i, _ in finished})
        return results

    def _keep_cache(self, i: int, length: int) -> None:
        """Put the first ``length`` tokens of row ``i``'s cache in the prefix cache."""
        if self.prefix_cache is None or not self.prefix_cache.enabled:
            return
        start = self.mask.shape[1] - int(self.mask[i].sum())  # rows are left-padded: real tokens at the end
        row = self.rows[i]
        self.prefix_cache.store(
            (row.prompt_ids + row.tokens)[:length],
            [
                (layer.keys[i : i + 1, :, start : start + length], layer.values[i : i + 1, :, start : start + length])
                for layer in self.cache.layers
            ],
            priority=row.priority,
        )

    def _make_room(self) -> None:
        """Pause running rows of lower priority than waiting ones that find no free row: those that
        joined last first (they have written least)."""
        if not self.waiting or not self.rows:
            return
        top = self.top_waiting()
        need = rows_to_pause(len(top), self.max_rows - len(self.rows), ahead=top[0].request.ahead)
        if need > 0:
            self.pause_below(top[0].priority, need)

    def pause_below(self, priority: int, count: int) -> int:
        """Pause up to ``count`` running rows of lower priority than ``priority``: the lowest priority first, and
        among those the ones that joined last (they have written least). Returns how many were paused."""
        lower = sorted(
            (i for i, row in enumerate(self.rows) if row.priority < priority),
            key=lambda i: (self.rows[i].priority, -i),
        )[:count]
        if lower:
            self._pause(lower)
        return len(lower)

    def _pause(self, indices: list[int]) -> None:
        """Take rows out of the batch, keeping their text: each goes back to the queue (before the rows of
        its priority that have not started) to go on from its prompt and the tokens it has written. Its
        cache so far is kept in the prefix cache, so resuming usually prefills one token."""
        now = self.clock()
        paused = []
        for i in sorted(indices):
            row = self.rows[i]
            # The cache holds the prompt and every token but the last sampled one (fed at the next step).
            self._keep_cache(i, len(row.prompt_ids) + len(row.tokens) - 1)
            row.context_ids = row.prompt_ids + row.tokens
            row.cache, row.prefilled, row.attached, row.looked_up = None, 0, 0, False
            row.pauses += 1
            row.paused_at = now
            paused.append(row)
        self._drop_rows(set(indices))
        self.waiting = paused + self.waiting

    def _drop_rows(self, dropped: set[int]) -> None:
        """Remove rows from the batch, and columns that became padding in every remaining row."""
        keep = [i for i in range(len(self.rows)) if i not in dropped]
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache = self.mask = self.seen = self.next_input = None
            return
        index = torch.tensor(keep, device=self.device)
        self.mask, self.seen, self.next_input = self.mask[index], self.seen[index], self.next_input[index]
        # Columns that are padding in every remaining row carry nothing: drop them.
        start = int(self.mask.any(0).nonzero()[0])
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keep(index, start)

    def _result(self, row: Row, now: float) -> GenerationResult:
        return GenerationResult(
            text=self.decode(row.tokens).strip(),
            prompt_text=row.prompt_text,
            tokens_in=len(row.prompt_ids),
            tokens_out=row.tokens_out,
            seconds=now - row.submitted_at,
            ttft_seconds=row.first_token_at - row.submitted_at if row.first_token_at else None,
            batch_size=row.most_rows,
            mean_batch_size=row.rows_summed / max(1, row.steps),
            seed_used=row.request.seed,
            stop_reason=row.stop_reason,
            tokens_past_limit=tokens_past_limit(row.tokens, self.decode, row.request.char_limit),
            tokens_prefilled=row.computed,
            pauses=row.pauses,
            paused_seconds=row.paused_seconds,
        )
