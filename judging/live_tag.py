"""The tag of what a live trial's page shows, and a poll that reads it, and what is new since, with one query.

A live page polls every 0.4 s while the debaters speak (templates/judging/partials/live_status.html) and sends back
the tag of what it shows. The tag has two parts:

- the page's *structure*: a hash of everything in the database that the live partials are rendered from and that
  can change once a trial is open (the trial's status, leanings and the like, its experiment's status: a launched
  experiment's design is fixed; each turn's status as shown, attempts and texts), and of the code that renders them
  (settings.PLATFORM_COMMIT), except the text of the speeches being written;
- for each speech being written, its position in the transcript, how many characters of it the page has, and
  (where the page shows its text, not only its length) a short hash of those characters.

The hashes are keyed with the project's secret, so the tag (which the judge holds) tells nothing about text not
yet shown. Where a person debates, the tag is the hash of the judge's view itself and every poll reads the trial
(``tag_of``): see there why.

So a poll can tell, from the tag alone, whether the page is up to date (answered 304), whether only speeches being
written have grown from what the page has (answered with the new characters, which trial.js appends: no render; a
speech whose new characters finish a quote is sent whole, split into text and marked quotes as a render marks it),
or anything else (the partials are rendered). The round's elapsed seconds are left out (trial.js counts them).

The tag is computed two ways that must agree: ``tag_of(trial, view)`` from the trial and turns a render has read (so the
tag sent with a render describes exactly what was rendered), and ``current(...)`` by one raw query that a poll makes
before anything else (so an unchanged or growing page costs no ORM read, no view and no render). A poll reads the
current tag first and the trial after: a write in between makes the page newer than its tag, which costs one more
render at the next poll and loses nothing. If the two ever disagreed, every poll would render (slower, never
stale); a test checks they agree on both databases, in sequential and simultaneous debates.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from . import quotes, trial_read
from .models import Experiment, Trial, Turn
from .protocols import debate, registry

# Trials no live page follows: those a judge never reads (trial_read) and skipped ones (views._opened_trial refuses
# them); and none where a person debates (``currents`` leaves those out: tag_of's tag is the view's).
HIDDEN = (*trial_read.HIDDEN_STATUSES, Trial.Status.SKIPPED)


def _hash(text: str, size: int) -> str:
    """Keyed with the project's secret: the tag holds hashes of text the judge may not see yet (a simultaneous
    speech, a hidden one done), which an unkeyed hash would let them check guesses against."""
    return hashlib.blake2b(text.encode(), digest_size=size, key=_key(settings.SECRET_KEY)).hexdigest()


@functools.cache
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"judging.live_tag:" + secret.encode()).digest()


def text_shown(protocol: str, turn_style: str) -> bool:
    """Whether the page shows a speech's text while it is written (sequential turns), not only its length in the
    status line (simultaneous ones); selectors.judge_visible_speeches, _round_progress. Where a person debates it
    shows neither: those trials are tagged apart (``tag_of``)."""
    return not registry.simultaneous(protocol, turn_style)


@dataclass(frozen=True)
class News:
    """What a page lacks of the speeches being written, by transcript position."""

    append: dict[int, str]  # characters to append as text
    rewrite: tuple[int, ...] = ()  # speeches whose new characters finish a quote: sent whole (Current.segments)

    def __bool__(self) -> bool:
        return bool(self.append or self.rewrite)


@dataclass(frozen=True)
class Current:
    tag: str
    dead_claim: bool  # a running turn whose worker's heartbeat stopped: the poll must read on and release it
    writing: dict[int, str]  # the speeches being written, by transcript position
    text_shown: bool  # their text, not only their lengths (text_shown())
    # For marking the quotes of a speech being written as a render does (``segments``): the trial's question, each
    # speech's quote budget, and the debaters' speeches the page shows (done, or being written), in transcript order.
    question_id: int = 0
    quote_budget: int | None = None
    debater_speeches: tuple[tuple[int, str], ...] = ()

    def segments(self, index: int, passage: str) -> list[dict]:
        """The speech being written at ``index`` in text and marked quotes, as a render shows it: each quote checked
        against the passage in transcript order (earlier speeches' quotes count against the budget:
        selectors.judge_visible_speeches)."""
        texts = [text for i, text in self.debater_speeches if i <= index]
        return quotes.shown(quotes.check_transcript(texts, passage, budget=self.quote_budget)[-1])

    def news_since(self, sent: str) -> News | None:
        """What the page whose tag is ``sent`` lacks: nothing (an empty News), the characters each speech being
        written has grown by when only that, or None when the page must be rendered."""
        structure, _, writing = sent.partition(".")
        if structure != self.tag.partition(".")[0]:
            return None
        has = {}
        for part in writing.split(".") if writing else []:
            fields = part.split("-")  # index, length and, where the text is shown, its digest
            if len(fields) not in (2, 3) or not (fields[0].isdigit() and fields[1].isdigit()):
                return None
            has[int(fields[0])] = (int(fields[1]), fields[2] if len(fields) == 3 else "")
        if has.keys() != self.writing.keys():
            return None
        append, rewrite = {}, []
        for index, text in self.writing.items():
            length, digest = has[index]
            if length > len(text) or (self.text_shown and _writing_digest(text[:length]) != digest):
                return None  # not a beginning of the text now: a render
            # A line break split across two replies ("\r" then "\n") must not become two: a render.
            if text[:length].endswith("\r"):
                return None
            # A render turns each <quote>...</quote> into a quote marked verified or not (judging.quotes), and
            # shows all other text as text. So the new characters can be appended as text unless they finish a
            # quote: then the speech is sent whole, marked (a quote not yet finished shows as typed, in a render
            # too). Where only its length is shown, its quotes change nothing on the page.
            if self.text_shown and any(quote.end() > length for quote in quotes.QUOTE_PATTERN.finditer(text)):
                rewrite.append(index)
            elif length < len(text):
                append[index] = text[length:]
        return News(append, tuple(rewrite))


def _compose(trial_fields: tuple, experiment_status: str, turns, text: bool) -> tuple[str, dict[int, str]]:
    """The tag and the speeches being written, from (id, index, status, attempts, text, partial_text) rows in
    transcript order; ``text``: the page shows their text, not only their lengths."""
    structure, writing = [], {}
    for turn_id, index, status, attempts, done_text, partial in turns:
        if status == Turn.Status.RUNNING and partial:
            writing[index] = partial
            partial = True  # in the structure: that it is being written, not how far
        elif status == Turn.Status.RUNNING:
            # Claimed, no words yet: shown as waiting, like a pending turn (selectors._round_progress), so a
            # worker's claim renders nothing the page does not already show.
            status = Turn.Status.PENDING
        structure.append([turn_id, status, attempts, done_text, partial])
    shown_fields = [settings.PLATFORM_COMMIT, trial_fields, experiment_status, structure]
    tag = _hash(json.dumps(shown_fields, separators=(",", ":"), default=str), 16)
    for index, so_far in writing.items():  # where only the length is shown, the length alone
        tag += f".{index}-{len(so_far)}" + (f"-{_writing_digest(so_far)}" if text else "")
    return tag, writing


def _writing_digest(text: str) -> str:
    return _hash(text, 6)


def _trial_fields(status: str, opened: bool, ended_by_judge: bool, leanings, skipped: bool) -> tuple:
    # SQLite returns booleans as integers and JSON as text: each field in one form, whichever read it came from.
    if isinstance(leanings, str):
        leanings = json.loads(leanings)
    return (status, bool(opened), bool(ended_by_judge), leanings or [], bool(skipped))


def tag_of(trial: Trial, view: dict) -> str:
    """The tag of ``trial`` as read for a render (its turns prefetched in transcript order: views._own_trial), whose
    judge's view is ``view``.

    Where a person debates, the tag of the view itself, as the page shows it (without the round's seconds), and no
    poll takes the one-query path (``current`` finds no such trial): a model's turn is claimed, starts writing and
    may restart while a person's waits, and a tag that changed with those would tell the judge which side is the
    person, though the page shows neither."""
    if trial.has_person:
        progress = (view.get("state") or {}).get("progress")
        if progress:
            view = view | {"state": view["state"] | {"progress": progress | {"seconds": None}}}
        shown = json.dumps([settings.PLATFORM_COMMIT, view], sort_keys=True, default=str, separators=(",", ":"))
        return _hash(shown, 16)
    fields = _trial_fields(
        trial.status, trial.opened_at is not None, trial.ended_by_judge, trial.leanings, trial.skipped_at is not None
    )
    turns = [(t.pk, t.index, t.status, t.attempts, t.text, t.partial_text) for t in trial.turns.all()]
    text = text_shown(trial.protocol, trial.experiment.turn_style)
    return _compose(fields, trial.experiment.status, turns, text)[0]


def current(trial_id: int, judge_id: int, *, dead_before) -> Current | None:
    """The tag of the judge's opened live trial as the database has it now, by one query; None when the judge has no
    such trial (the caller reads on, and refuses as it always does): a page gets a tag only once opened."""
    judge, now = currents([trial_id], dead_before=dead_before).get(trial_id, (None, None))
    return now if judge == judge_id else None


def currents(trial_ids, *, dead_before) -> dict[int, tuple[int, Current]]:
    """``current`` for many trials at once, by one query (judging.live_stream's change feed reads every followed
    trial so): each trial's judge and tag, for the trials a judge's page may follow (opened, live, no person
    debating, not hidden); the others are left out."""
    trial_ids = list(trial_ids)
    if not trial_ids:
        return {}
    q = connection.ops.quote_name
    trial, experiment, turn = (q(model._meta.db_table) for model in (Trial, Experiment, Turn))
    sql = (
        f"SELECT tr.{q('status')}, tr.{q('opened_at')} IS NOT NULL, tr.{q('ended_by_judge')}, tr.{q('leanings')}, "
        f"tr.{q('skipped_at')} IS NOT NULL, ex.{q('status')}, tr.{q('protocol')}, ex.{q('turn_style')}, "
        f"tu.{q('id')}, tu.{q('index')}, tu.{q('status')}, tu.{q('attempts')}, tu.{q('text')}, "
        f"tu.{q('partial_text')}, CASE WHEN tu.{q('status')} = %s AND tu.{q('claimed_at')} < %s THEN 1 ELSE 0 END, "
        f"tu.{q('speaker')}, tr.{q('question_id')}, ex.{q('quote_limit')}, tr.{q('id')}, tr.{q('judge_id')} "
        f"FROM {trial} tr JOIN {experiment} ex ON ex.{q('id')} = tr.{q('experiment_id')} "
        f"LEFT JOIN {turn} tu ON tu.{q('trial_id')} = tr.{q('id')} "
        f"WHERE tr.{q('id')} IN ({', '.join(['%s'] * len(trial_ids))}) AND tr.{q('live')} "
        f"AND tr.{q('opened_at')} IS NOT NULL "
        f"AND tr.{q('honest_person_id')} IS NULL AND tr.{q('adversary_person_id')} IS NULL "
        f"AND tr.{q('status')} NOT IN ({', '.join(['%s'] * len(HIDDEN))}) "
        f"ORDER BY tr.{q('id')}, tu.{q('index')}"
    )
    dead = connection.ops.adapt_datetimefield_value(dead_before)
    with connection.cursor() as cursor:
        cursor.execute(sql, [Turn.Status.RUNNING, dead, *trial_ids, *HIDDEN])
        rows = cursor.fetchall()
    return {
        trial_id: (trial_rows[0][19], _current_of(trial_rows))
        for trial_id, trial_rows in itertools.groupby(rows, key=lambda row: row[18])
        for trial_rows in [list(trial_rows)]
    }


def _current_of(rows: list) -> Current:
    """One trial's tag from its rows of ``currents``' query (one per turn, in transcript order)."""
    first = rows[0]
    text = text_shown(first[6], first[7])
    turns = [row[8:14] for row in rows if row[8] is not None]
    tag, writing = _compose(_trial_fields(*first[:5]), first[5], turns, text)
    # The debaters' speeches a page showing text shows (selectors.judge_visible_speeches, sequential turns): the
    # done ones and those being written.
    speeches = tuple(
        (index, writing.get(index, done_text))
        for _, index, status, _, done_text, _, _, speaker in (row[8:16] for row in rows if row[8] is not None)
        if speaker != debate.JUDGE and (status == Turn.Status.DONE or index in writing)
    )
    return Current(
        tag=tag,
        dead_claim=any(row[14] for row in rows),
        writing=writing,
        text_shown=text,
        question_id=first[16],
        quote_budget=registry.PROTOCOLS[first[6]].quote_budget(first[17]),
        debater_speeches=speeches,
    )
