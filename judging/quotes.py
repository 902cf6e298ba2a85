"""Quote verification: pure Python, no Django.

Debaters quote the hidden passage by wrapping the exact words in
``<quote>...</quote>``. Each quote is checked against the passage:

The matching rule (documented for judges and researchers)
- Both the quote and the passage are normalised: soft hyphens and zero-width
  characters removed, Unicode compatibility form (NFKC), case folded, curly
  quotes and dashes made plain, every character that is not a letter, digit or
  combining mark treated as a space, runs of spaces collapsed.
- A quote is *verified* when its normalised form is non-empty and occurs in the
  normalised passage as a whole-word run (it may not start or end mid-word).
  So differences of whitespace, case and punctuation are tolerated; any
  difference in the words themselves is not.

The quote budget: each speech may quote at most ``budget`` characters of *new*
verified material, counted on the normalised passage. Each character of the
passage counts once per trial: repeating a quote, or quoting again part of what
was quoted before, costs only the characters not yet counted. A verified quote
whose new characters do not fit in what is left of the budget is shown as over
budget (not verified).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

QUOTE_PATTERN = re.compile(r"<quote>(.*?)</quote>", re.IGNORECASE | re.DOTALL)
_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
# Invisible characters common in text copied from PDFs and web pages. Removed, not read as spaces: a soft hyphen
# or zero-width joiner inside a word must not split it in two.
_INVISIBLE = str.maketrans(dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff")))

TEXT = "text"
VERIFIED = "verified"
UNVERIFIED = "unverified"
OVER_BUDGET = "over_budget"


# What the judge's page says of each kind of quote (a quote's title: templates/judging/partials/transcript.html).
# An over-budget quote is shown as an unverified one: telling them apart would tell the judge that the quote is in
# the source text after all, and the budget would no longer limit what is verified for them.
QUOTE_TITLES = {
    VERIFIED: "Verified: this quote matches the source text",
    UNVERIFIED: "Not verified: these words are not in the source text, or they go over the quote budget",
}
AS_THE_JUDGE_SEES = {OVER_BUDGET: UNVERIFIED}


@dataclass(frozen=True)
class Segment:
    kind: str  # TEXT, VERIFIED, UNVERIFIED or OVER_BUDGET
    text: str


def shown(segments: list[Segment]) -> list[dict]:
    """Segments as the judge's page shows them (a render, or a live poll's JSON): kind, text, a quote's title;
    an over-budget quote as an unverified one."""
    kinds = [AS_THE_JUDGE_SEES.get(s.kind, s.kind) for s in segments]
    return [{"kind": kind, "text": s.text, "title": QUOTE_TITLES.get(kind, "")} for kind, s in zip(kinds, segments)]


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).translate(_TRANSLATE)
    # casefold() can leave a letter decomposed ("ǰ" becomes "j" and a combining caron): composing again keeps
    # texts that differed only in how their letters were composed equal.
    text = unicodedata.normalize("NFKC", text.casefold())
    # Combining marks belong to their word: the vowel signs of Devanagari, the dot of a casefolded "İ".
    text = "".join(ch if ch.isalnum() or unicodedata.category(ch).startswith("M") else " " for ch in text)
    return " ".join(text.split())


def is_verified(quote: str, passage: str) -> bool:
    return bool(_occurrences(normalise(quote), _padded(passage)))


# Normalising a passage (a character at a time) was most of the cost of checking a speech's quotes, and every
# speech of every trial on a question is checked against the same passage, again on each poll of a live page
# (issue 12's load test). The passages used last are kept normalised, up to this many characters in all (with
# the passages themselves, some 20 MB per process).
PADDED_CACHE_CHARACTERS = 10_000_000
_padded_cache: OrderedDict[str, str] = OrderedDict()
_padded_cache_lock = threading.Lock()


def _padded(passage: str) -> str:
    """The normalised passage with a space at both ends, so a match must start and end on word boundaries."""
    with _padded_cache_lock:
        padded = _padded_cache.get(passage)
        if padded is not None:
            _padded_cache.move_to_end(passage)
            return padded
    padded = f" {normalise(passage)} "
    with _padded_cache_lock:
        _padded_cache[passage] = padded
        cached = sum(len(p) for p in _padded_cache.values())
        while cached > PADDED_CACHE_CHARACTERS and len(_padded_cache) > 1:
            _, dropped = _padded_cache.popitem(last=False)
            cached -= len(dropped)
    return padded


def _occurrences(needle: str, padded_passage: str) -> list[int]:
    """Where the normalised quote starts in the padded passage, at each whole-word occurrence (none when empty)."""
    if not needle:
        return []
    target, starts = f" {needle} ", []
    found = padded_passage.find(target)
    while found != -1:
        starts.append(found + 1)
        found = padded_passage.find(target, found + 1)  # + 1, not + len: occurrences may overlap
    return starts


def check_speech(
    text: str, passage: str, *, budget: int | None, already_quoted: set[int] | None = None
) -> list[Segment]:
    """Split a speech into plain text and quotes, each quote marked by the rule above.

    ``already_quoted`` holds the positions, in the normalised passage, of the verified
    material counted earlier in the trial; it is updated with this speech's.
    """
    covered = already_quoted if already_quoted is not None else set()
    padded = _padded(passage)
    segments, position, used = [], 0, 0
    for match in QUOTE_PATTERN.finditer(text):
        if match.start() > position:
            segments.append(Segment(TEXT, text[position : match.start()]))
        quote = match.group(1)
        needle = normalise(quote)
        starts = _occurrences(needle, padded)
        if not starts:
            kind = UNVERIFIED
        else:
            # A quote found at several places is counted where it adds the least new material, so a repeated
            # quote costs nothing wherever it was first found.
            new = min((set(range(start, start + len(needle))) - covered for start in starts), key=len)
            if budget is not None and used + len(new) > budget:
                kind = OVER_BUDGET
            else:
                used += len(new)
                covered |= new
                kind = VERIFIED
        segments.append(Segment(kind, quote))
        position = match.end()
    if position < len(text):
        segments.append(Segment(TEXT, text[position:]))
    return segments


def check_transcript(speeches: list[str], passage: str, *, budget: int | None) -> list[list[Segment]]:
    """Check each speech in order, so that budgets count only new quoted material."""
    already: set[int] = set()
    return [check_speech(text, passage, budget=budget, already_quoted=already) for text in speeches]
