"""Quote verification: pure Python, no Django.

Debaters quote the hidden passage by wrapping the exact words in
``<quote>...</quote>``. Each quote is checked against the passage:

The matching rule (documented for judges and researchers)
- Both the quote and the passage are normalised: Unicode compatibility form
  (NFKC), lower case, curly quotes and dashes made plain, every character that
  is not a letter or digit treated as a space, runs of spaces collapsed.
- A quote is *verified* when its normalised form is non-empty and occurs in the
  normalised passage as a whole-word run (it may not start or end mid-word).
  So differences of whitespace, case and punctuation are tolerated; any
  difference in the words themselves is not.

The quote budget: each speech may quote at most ``budget`` characters of *new*
verified material. Characters of a quote already verified earlier in the same
trial are free; a verified quote that does not fit in what is left of the
budget is shown as over budget (not verified).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

QUOTE_PATTERN = re.compile(r"<quote>(.*?)</quote>", re.IGNORECASE | re.DOTALL)
_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})

TEXT = "text"
VERIFIED = "verified"
UNVERIFIED = "unverified"
OVER_BUDGET = "over_budget"


@dataclass(frozen=True)
class Segment:
    kind: str  # TEXT, VERIFIED, UNVERIFIED or OVER_BUDGET
    text: str


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE).lower()
    text = "".join(ch if ch.isalnum() else " " for ch in text)
    return " ".join(text.split())


def is_verified(quote: str, passage: str) -> bool:
    needle = normalise(quote)
    if not needle:
        return False
    # Pad with spaces so a match must start and end on word boundaries.
    return f" {needle} " in f" {normalise(passage)} "


def check_speech(
    text: str, passage: str, *, budget: int | None, already_quoted: set[str] | None = None
) -> list[Segment]:
    """Split a speech into plain text and quotes, each quote marked by the rule above.

    ``already_quoted`` holds normalised quotes verified earlier in the trial; it is
    updated with this speech's newly counted quotes.
    """
    already = already_quoted if already_quoted is not None else set()
    segments, position, used = [], 0, 0
    for match in QUOTE_PATTERN.finditer(text):
        if match.start() > position:
            segments.append(Segment(TEXT, text[position : match.start()]))
        quote = match.group(1)
        key = normalise(quote)
        if not is_verified(quote, passage):
            kind = UNVERIFIED
        elif key in already:
            kind = VERIFIED  # repeating earlier quoted material costs nothing
        elif budget is not None and used + len(key) > budget:
            kind = OVER_BUDGET
        else:
            used += len(key)
            already.add(key)
            kind = VERIFIED
        segments.append(Segment(kind, quote))
        position = match.end()
    if position < len(text):
        segments.append(Segment(TEXT, text[position:]))
    return segments


def check_transcript(speeches: list[str], passage: str, *, budget: int | None) -> list[list[Segment]]:
    """Check each speech in order, so that budgets count only new quoted material."""
    already: set[str] = set()
    return [check_speech(text, passage, budget=budget, already_quoted=already) for text in speeches]
