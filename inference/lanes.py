"""Long pre-generated prompts run in a batch of their own (the long lane), beside the batch the others run in.

Why: the rows of one ``ContinuousBatcher`` share one cache, left-padded to its longest row. A pre-generated turn on a
long passage (a 7,500-token prompt) made every other row attend over 7,500 columns at every decoding step, and
made every joining row copy the whole padded cache. On SmolLM2-135M on two CPU cores a live row's decoding step
took about 215 ms beside one such row against 70 ms alone, and a judge's question took 100 ms more to join
(docs/benchmarks.md). So pre-generated prompts longer than one prefill (those prefilled in chunks) go to a second
batcher; the other one holds live turns and ordinary pre-generated ones.

How the two share the worker: each ``step`` runs one step of one lane. While both have work, the long lane takes at
most ``share`` of the time (measured per step, like a batcher's chunks: the main lane's prefills count with the
long lane's steps, against the main lane's decoding), never two steps in a row, and none while
the main lane is about to prefill a live request (up to MOST_LIVE_FIRST steps in a row) or to decode its live rows
after a prefill; so a judge's question waits for at most the one long-lane step under way, and a live speech for
at most one long-lane step between two of its tokens. Both lanes count
against the worker's ``capacity``; a live request that finds no row pauses the main lane's pre-generated rows first
and then the long lane's (pausing a long row puts its whole cache in the prefix cache: the dearer one). The price:
while both lanes run, every token costs two forward passes instead of one, which on a GPU, where a step costs
about the same for one row as for many, slows pre-generated work that mixes long and short prompts.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable

from .base import GenerationRequest, GenerationResult
from .continuous import ContinuousBatcher, rows_to_pause

# The share of the worker's time the long lane takes at most while the main lane has work.
LONG_LANE_SHARE = 0.5
# The most main-lane steps in a row that a live request may keep the long lane waiting (several judges asking one
# after another, or a long live prompt prefilled in chunks, would otherwise stop the long lane for as long).
MOST_LIVE_FIRST = 4


class Lanes:
    """Two ``ContinuousBatcher`` s, ``main`` and ``long``, run as one, with the interface the backend's loop uses
    (``submit``, ``step``, ``free_rows``, ``pausable_rows``, ``idle``, ``partial_texts``, ``first_words``,
    ``live_seen_at``)."""

    def __init__(
        self,
        main: ContinuousBatcher,
        long: ContinuousBatcher,
        *,
        long_tokens: int,
        share: float = LONG_LANE_SHARE,
        clock: Callable[[], float] = time.perf_counter,
    ):
        if not 0 < share < 1:
            raise ValueError("share is a share of the time: between 0 and 1")
        self.main, self.long = main, long
        self.capacity = main.max_rows
        self.long_tokens = long_tokens
        self.share, self.clock = share, clock
        # While both lanes have work: the main lane's decoding steps, and the rest (long-lane steps, main-lane
        # prefills). A main-lane prefill counts with the long lane's time, as a batcher counts its prefills against
        # its decoding: a live speech's first tokens come at the decoding pace, not one per long-lane step.
        self.decode_seconds = self.other_seconds = 0.0
        self.long_last = False  # the last step was the long lane's
        self.live_first = 0  # main-lane steps in a row that went first because a live request waited

    def submit(self, key: Hashable, request: GenerationRequest, prompt_ids: list[int], prompt_text: str = "") -> None:
        """A pre-generated prompt longer than ``long_tokens`` goes to the long lane; everything else (every live
        request, however long) to the main lane."""
        long = request.priority <= 0 and len(prompt_ids) > self.long_tokens
        (self.long if long else self.main).submit(key, request, prompt_ids, prompt_text)

    @property
    def live_seen_at(self) -> float | None:
        return self.main.live_seen_at

    @property
    def free_rows(self) -> int:
        return max(0, self.capacity - self.main.held_rows - self.long.held_rows)

    @property
    def pausable_rows(self) -> int:
        """Rows a live request could take at once by pausing running pre-generated rows, in either lane."""
        running = sum(1 for lane in (self.main, self.long) for row in lane.rows if row.priority <= 0)
        return max(0, running - self.main.live_waiting)

    @property
    def idle(self) -> bool:
        return self.main.idle and self.long.idle

    @property
    def first_words(self) -> bool:
        return self.main.first_words or self.long.first_words

    @property
    def prefill_steps(self) -> int:
        return self.main.prefill_steps + self.long.prefill_steps

    def partial_texts(self) -> list[tuple[Hashable, str]]:
        return self.main.partial_texts() + self.long.partial_texts()

    def step(self) -> list[tuple[Hashable, GenerationResult]]:
        """One step of one lane (``ContinuousBatcher.step``); returns the requests that finished."""
        self.long.live_seen_at = self.main.live_seen_at  # pre-generated chunks are finer beside live debates
        self._share_rows()
        main, long = self._can_step(self.main), self._can_step(self.long)
        lane = self.long if long and (not main or self._long_turn()) else self.main
        self.long_last = lane is self.long
        if self.long_last:
            self.live_first = 0
        started, prefills = self.clock(), self.main.prefill_steps
        try:
            return lane.step()
        finally:
            if main and long:
                if lane is self.main and self.main.prefill_steps == prefills:
                    self.decode_seconds += self.clock() - started
                else:
                    self.other_seconds += self.clock() - started
            else:  # the share starts afresh when both lanes next have work
                self.decode_seconds = self.other_seconds = 0.0

    def _long_turn(self) -> bool:
        """While both lanes have work: whether the long lane steps now. Never twice in a row, nor between a main-lane
        prefill and the decoding step after it while live rows run there (a live speech waits for at most one
        long-lane step between two of its tokens), nor, up to MOST_LIVE_FIRST steps in a row, while the main lane
        would prefill a waiting live request now (a judge's question waits for at most the step under way)."""
        main = self.main
        if self.long_last or (main.prefilled_last and any(row.priority > 0 for row in main.rows)):
            return False
        live_prefill_next = main.live_waiting > 0 and not (main.rows and main.prefilled_last)
        if live_prefill_next and self.live_first < MOST_LIVE_FIRST:
            self.live_first += 1
            return False
        return self.other_seconds <= self.share / (1 - self.share) * self.decode_seconds

    @staticmethod
    def _can_step(lane: ContinuousBatcher) -> bool:
        """Whether a step of ``lane`` would compute something: it has running rows, or waiting ones and room."""
        return bool(lane.rows) or (bool(lane.waiting) and lane.max_rows > len(lane.rows))

    def _share_rows(self) -> None:
        """Split ``capacity`` between the lanes: the main lane has what the long lane's running rows leave, the long
        lane what the main lane's rows and waiting requests leave. Live requests waiting in the main lane beyond its
        room and its own lower-priority rows pause long-lane rows."""
        main, long = self.main, self.long
        if main.waiting and long.rows:
            top = main.top_waiting()  # as the main lane's _make_room counts
            room = self.capacity - len(long.rows) - len(main.rows)
            pausable_in_main = sum(1 for row in main.rows if row.priority < top[0].priority)
            need = rows_to_pause(len(top), room + pausable_in_main, ahead=top[0].request.ahead)
            if need > 0:
                long.pause_below(top[0].priority, need)
        main.max_rows = self.capacity - len(long.rows)
        # Every waiting request counts here, prefills ahead of time too: a long row admitted beside them would be paused
        # for them at the next step.
        long.max_rows = max(0, self.capacity - len(main.rows) - len(main.waiting))
        main.rows_beside, long.rows_beside = len(long.rows), len(main.rows)
