"""Key/value caches of recent prompts, kept so that a prompt which extends an earlier one prefills only its new tokens.

Why: a debater's prompt for round k+1 is its prompt for round k plus the new speeches and the round's closing
words (the default prompts keep everything round-specific at the end: docs/limits.md, *Prefix reuse*). Without
reuse every round prefills the whole transcript again, which by round 5 is most of the time before a judge sees
the first words of an answer.

How: each entry is the cache of one finished (or paused) row: its token ids and, per layer, keys and values of
shape [1, heads, length, dim]. ``longest`` finds the entry sharing the longest token prefix with a new prompt
and returns a fresh ``DynamicCache`` holding that prefix, so the row goes on from there. Its layers hold views of the
entry's tensors, not copies: a ``RoomyLayer`` with no room copies what it holds into room at its first update, so
the entry is left intact for other rows and the prefix is copied once, where the row's prefill writes it.

Entries are dropped once they take more than ``max_bytes``: those of the lowest priority first (a pre-generated
row's before a live one's, whose next round a judge waits for); within a priority, those already taken (by a row
whose own prompt will supersede them: the next round, a paused row resuming) before those still waiting, and least
recently used first among those. Why taken first: a debater's prompt is taken once, by its next round, which holds
its own copy from its first step on and whose prompt supersedes it when that round ends; meanwhile it is worth
little. Dropping the least recently used instead drops the prompt whose next round comes soonest: at 16 live debates
of 3 rounds, 32 prompts of 800-900 tokens passed the shipped 1 GB, and every prompt dropped was one still waiting,
its next round prefilled whole (docs/benchmarks.md).

An entry whose tokens are a prefix of a newer one's is superseded by it, and so is one of no higher priority that
the newer shares all but its last few tokens with (SUPERSEDED_WITHIN_TOKENS): a round's closing words, which the
next round's prompt replaces with its speeches. Without that, each round of a live debate left its speakers'
earlier prompts behind, and at 16 live debates the prompts a judge's next question would extend no longer fitted in
the shipped 1 GB (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .kv_cache import cache_holding

log = logging.getLogger(__name__)

# Shorter shared prefixes are not worth a lookup and a copy: prefilling them is as cheap.
MIN_REUSED_TOKENS = 16
# A newer entry (of the same or a higher priority) sharing all of an older one's tokens but at most this many at its
# end, and at least half of them, supersedes it: a prompt that would have reused the older one from a match of half
# the prompt or more prefills at most these few tokens more.
SUPERSEDED_WITHIN_TOKENS = 64
# Live prompts dropped for room before a row took them, remembered (their tokens only) so that a lookup they would
# have served is known: the operator's cue that the cache is too small (a final round's prompt, never taken, is
# dropped without harm, so dropping alone proves nothing).
DROPPED_REMEMBERED = 64


@dataclass
class Entry:
    tokens: tuple[int, ...]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, heads, len(tokens), dim]
    nbytes: int
    priority: int = 0
    taken: bool = False  # by a row that will supersede it, since stored: dropped before entries still waiting


def supersedes(shared: int, older: int) -> bool:
    """Whether a newer prompt sharing its first ``shared`` tokens with an older one of ``older`` tokens supersedes it:
    it holds all of the older one's tokens but at most SUPERSEDED_WITHIN_TOKENS at its end, and at least half."""
    return shared >= max(MIN_REUSED_TOKENS, older // 2) and older - shared <= SUPERSEDED_WITHIN_TOKENS


def common_prefix_length(a, b) -> int:
    """How many leading tokens two id sequences share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = torch.tensor(a[:n]) != torch.tensor(b[:n])
    return int(differ.to(torch.int8).argmax()) if bool(differ.any()) else n


class PrefixCache:
    """Recent prompts' key/value caches for one model, bounded by ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[int, Entry] = OrderedDict()
        self.nbytes = 0
        self._next_id = 0
        self.hits = self.lookups = self.reused_tokens = 0
        self.dropped_live: deque[tuple[int, ...]] = deque(maxlen=DROPPED_REMEMBERED)
        self.missed_dropped = 0  # lookups that missed where a live prompt dropped for room would have served

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def store(self, tokens: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]], priority: int = 0) -> None:
        """Keep a copy of ``layers`` (keys and values of ``tokens``, batch of one) for later prompts; ``priority``
        is the request's (entries of lower priority are dropped first)."""
        if not self.enabled or len(tokens) < MIN_REUSED_TOKENS:
            return
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if nbytes > self.max_bytes:
            return
        key = tuple(tokens)
        for entry_id, entry in list(self.entries.items()):
            shared = common_prefix_length(entry.tokens, key)
            if shared == len(key):  # an entry already holds all of these tokens
                entry.priority, entry.taken = max(entry.priority, priority), False
                self.entries.move_to_end(entry_id)
                return
            # Superseded: the new entry holds all its tokens, or all but a few (a pre-generated prompt never drops a
            # live one's).
            if shared == len(entry.tokens) or (entry.priority <= priority and supersedes(shared, len(entry.tokens))):
                self._drop(entry_id)
        copied = [(k.detach().clone(), v.detach().clone()) for k, v in layers]
        self.entries[self._next_id] = Entry(key, copied, nbytes, priority)
        self._next_id += 1
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            # min() keeps the first of equals: the least recently used of the lowest priority's taken entries, or
            # of its waiting ones if none is taken.
            victim = min(self.entries, key=lambda entry_id: self._drop_order(self.entries[entry_id]))
            if self.entries[victim].priority > 0 and not self.entries[victim].taken:
                self.dropped_live.append(self.entries[victim].tokens)
            self._drop(victim)

    def longest(self, tokens: list[int], most: int, least: int = 0) -> tuple[int, DynamicCache | None]:
        """The longest cached prefix of ``tokens``, at most ``most`` tokens: (its length, a cache holding it, to be
        extended but never written in place); (0, None) if none reaches ``least`` or MIN_REUSED_TOKENS."""
        if not self.enabled or not self.entries:
            return 0, None
        self.lookups += 1
        best_id, best = None, 0
        for entry_id, entry in self.entries.items():
            shared = min(common_prefix_length(entry.tokens, tokens), most)
            if shared > best:
                best_id, best = entry_id, shared
        if best < max(least, MIN_REUSED_TOKENS):
            self._note_miss(tokens, most, least)
            return 0, None
        entry = self.entries[best_id]
        self.entries.move_to_end(best_id)
        cache = cache_holding([(keys[:, :, :best], values[:, :, :best]) for keys, values in entry.layers])
        # Taken only by a row whose own prompt will supersede it (the next round, a paused row resuming): an entry
        # a shorter match shares (another candidate or trial on the same passage) is still worth keeping.
        entry.taken = entry.taken or len(entry.tokens) - best <= SUPERSEDED_WITHIN_TOKENS
        self.hits += 1
        self.reused_tokens += best
        return best, cache

    def clear(self) -> None:
        self.entries.clear()
        self.nbytes = 0

    def _note_miss(self, tokens: list[int], most: int, least: int) -> None:
        """Count a miss that a live prompt dropped for room would have served; the first is logged."""
        needed = max(least, MIN_REUSED_TOKENS)
        if not any(min(common_prefix_length(dropped, tokens), most) >= needed for dropped in self.dropped_live):
            return
        if not self.missed_dropped:
            log.warning(
                "prefix cache full (%d MB): a live debater's earlier prompt had been dropped for room, so its next "
                "round is prefilled whole; for as many live debates as this worker serves, a larger cache is "
                "needed (DEBATE_GENERATION_PREFIX_CACHE_MB; docs/limits.md)",
                self.max_bytes // 2**20,
            )
        self.missed_dropped += 1

    @staticmethod
    def _drop_order(entry: Entry) -> tuple[int, bool]:
        return entry.priority, not entry.taken

    def _drop(self, entry_id: int) -> None:
        self.nbytes -= self.entries.pop(entry_id).nbytes
