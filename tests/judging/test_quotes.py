"""Quote verification: the matching rule on tricky cases, budgets, and what the judge sees."""

import pytest
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from judging.quotes import (
    OVER_BUDGET,
    TEXT,
    UNVERIFIED,
    VERIFIED,
    Segment,
    check_speech,
    check_transcript,
    is_verified,
    normalise,
)
from tests.judging.pages import open_trial

PASSAGE = (
    'The committee met on Tuesday, 4 March.  "We will not\u2014under any circumstances\u2014raise taxes," '
    "said Mrs. O'Neill. Café owners were unconvinced; 12% expected a rise."
)


@pytest.mark.parametrize(
    "quote",
    [
        "The committee met on Tuesday",  # exact
        "the COMMITTEE met   on\ntuesday",  # case and whitespace
        "met on Tuesday 4 March",  # punctuation dropped
        "We will not - under any circumstances - raise taxes",  # dash variants
        "said Mrs O\u2019Neill",  # curly apostrophe, missing full stop
        "Cafe owners" if False else "Café owners were unconvinced",  # accents kept and matched
        "12% expected a rise",
    ],
)
def test_it_verifies_quotes_that_differ_only_in_whitespace_case_and_punctuation(quote):
    assert is_verified(quote, PASSAGE)


@pytest.mark.parametrize(
    "quote",
    [
        "The committee met on Wednesday",  # a changed word
        "committee met on Tuesday, 4 April",
        "mmittee met",  # starts mid-word
        "We will raise taxes",  # words skipped
        "Cafe owners were unconvinced",  # a different letter (no accent folding)
        "",  # empty
        " ... ",  # punctuation only
    ],
)
def test_it_refuses_quotes_with_different_words_or_partial_words(quote):
    assert not is_verified(quote, PASSAGE)


SOFT_HYPHEN, INVISIBLE = "\u00ad", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


@pytest.mark.parametrize("invisible", [SOFT_HYPHEN, *INVISIBLE])
def test_soft_hyphens_and_zero_width_characters_are_ignored_in_quote_and_passage(invisible):
    # Text copied from PDFs hides them inside words; read as spaces they would split the word in two.
    assert is_verified(f"The com{invisible}mittee met", PASSAGE)
    assert is_verified("unconvinced; 12%", PASSAGE.replace("unconvinced", f"{invisible}uncon{invisible}vinced"))
    assert not is_verified(f"com{invisible}mittee{invisible}", "the com mittee met")  # removed, not a space


def test_case_is_folded_not_just_lowered():
    assert is_verified("STRASSE", "Die Straße ist lang.")  # lower() keeps ß, casefold() makes it ss
    assert is_verified("die straße", "DIE STRASSE IST LANG")


def test_combining_marks_stay_in_their_word():
    hindi = "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e"  # two words with vowel signs
    assert is_verified(hindi.split()[0], hindi)
    assert not is_verified("\u0939", hindi)  # one letter of the first word: a partial word
    assert normalise("\u0130stanbul") == normalise("i\u0307stanbul")  # casefolded İ keeps its dot in the word


def test_a_speech_is_split_into_text_and_marked_quotes():
    segments = check_speech(
        "As it says, <quote>the committee met on Tuesday</quote>, and <QUOTE>taxes will rise</QUOTE>.",
        PASSAGE,
        budget=None,
    )
    assert segments == [
        Segment(TEXT, "As it says, "),
        Segment(VERIFIED, "the committee met on Tuesday"),
        Segment(TEXT, ", and "),
        Segment(UNVERIFIED, "taxes will rise"),
        Segment(TEXT, "."),
    ]


def test_an_unclosed_quote_is_plain_text():
    assert check_speech("I quote <quote>the committee met", PASSAGE, budget=None) == [
        Segment(TEXT, "I quote <quote>the committee met")
    ]


def test_the_budget_counts_only_new_quoted_material():
    speeches = [
        "<quote>The committee met on Tuesday</quote> <quote>said Mrs. O'Neill</quote>",
        "<quote>the committee met on tuesday</quote> again, and <quote>12% expected a rise</quote>",
    ]
    first, second = check_transcript(speeches, PASSAGE, budget=40)
    # 'the committee met on tuesday' = 28 chars fits; 'said mrs o neill' (16) would make 44 > 40.
    assert [s.kind for s in first if s.kind != TEXT] == [VERIFIED, OVER_BUDGET]
    # Repeating the first quote is free; the new one (17 chars) fits this speech's own budget.
    assert [s.kind for s in second if s.kind != TEXT] == [VERIFIED, VERIFIED]


def test_each_verified_span_of_the_passage_counts_once():
    # 'the committee met on tuesday' (28 characters) uses the whole budget.
    (first,) = check_transcript(
        [
            "<quote>The committee met on Tuesday</quote>, <quote>the committee</quote> again, "
            "<quote>THE COMMITTEE MET ON TUESDAY!</quote> and <quote>met on</quote>"
        ],
        PASSAGE,
        budget=28,
    )
    # A repeat and a part of what was counted are free; new material is over budget.
    assert [s.kind for s in first if s.kind != TEXT] == [VERIFIED, VERIFIED, VERIFIED, VERIFIED]
    overlapping = check_speech(
        "<quote>the committee met</quote> <quote>met on Tuesday</quote>", PASSAGE, budget=len("the committee met on")
    )
    # The second quote adds only ' on tuesday' (11): 17 + 11 = 28 > 20, so over budget; ' on' alone would fit.
    assert [s.kind for s in overlapping if s.kind != TEXT] == [VERIFIED, OVER_BUDGET]
    assert [s.kind for s in check_speech("<quote>met</quote> <quote>met on</quote>", PASSAGE, budget=6)] == [
        VERIFIED,
        TEXT,
        VERIFIED,
    ]


def test_a_short_quote_found_at_several_places_is_counted_where_it_was_counted_before():
    passage = "the cat sat. the dog ran. the cat ran."
    speeches = ["<quote>the dog ran the cat</quote>", "<quote>the cat</quote> <quote>the</quote>"]
    first, second = check_transcript(speeches, passage, budget=19)
    assert [s.kind for s in second if s.kind != TEXT] == [VERIFIED, VERIFIED]
    # With no budget left ('the dog ran the cat' is 19 characters), the repeats still cost nothing.
    assert check_transcript([*speeches, "<quote>dog</quote>"], passage, budget=19)[2][0].kind == VERIFIED


# ---- Properties (hypothesis) ---------------------------------------------------------------------------------------

WORD = st.text(alphabet="abcdefghijßÄäéZ0123", min_size=1, max_size=6)
PASSAGES = st.lists(WORD, min_size=1, max_size=30)
NOISE = st.sampled_from([SOFT_HYPHEN, *INVISIBLE])


@st.composite
def passage_and_quote(draw):
    """A passage (words with punctuation between them) and a run of its whole words."""
    words = draw(PASSAGES)
    separators = draw(
        st.lists(st.sampled_from([" ", ", ", ". ", " - ", "\n", ' "']), min_size=len(words), max_size=len(words))
    )
    passage = "".join(w + sep for w, sep in zip(words, separators, strict=True))
    start = draw(st.integers(0, len(words) - 1))
    end = draw(st.integers(start + 1, len(words)))
    return passage, words[start:end]


def sprinkle(draw, text: str) -> str:
    """The text with invisible characters inserted at drawn places."""
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(NOISE) + text[at:]
    return text


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_property_a_run_of_passage_words_verifies_whatever_its_case_spacing_and_invisible_characters(data):
    passage, words = data.draw(passage_and_quote())
    quote = " ".join(words)
    quote = data.draw(st.sampled_from([quote, quote.upper(), quote.casefold(), quote.title()]))
    assert is_verified(sprinkle(data.draw, quote), sprinkle(data.draw, passage))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_property_invisible_characters_never_change_a_verdict(data):
    passage = " ".join(data.draw(PASSAGES))
    quote = " ".join(data.draw(st.lists(WORD, min_size=1, max_size=3)))
    assert is_verified(sprinkle(data.draw, quote), sprinkle(data.draw, passage)) == is_verified(quote, passage)


@st.composite
def sub_run(draw, passage):
    words = normalise(passage).split()
    start = draw(st.integers(0, len(words) - 1))
    return words[start : draw(st.integers(start + 1, len(words)))]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_property_a_speech_never_counts_more_than_its_budget_of_new_passage_characters(data):
    passage, _ = data.draw(passage_and_quote())
    quotes = [" ".join(data.draw(sub_run(passage))) for _ in range(data.draw(st.integers(1, 6)))]
    budget = data.draw(st.integers(0, 60))
    covered = set()
    segments = check_speech(
        "".join(f"<quote>{q}</quote>" for q in quotes), passage, budget=budget, already_quoted=covered
    )
    assert len(covered) <= budget
    # Whatever was verified is covered: quoting it again with no budget left is still verified.
    verified = [s.text for s in segments if s.kind == VERIFIED]
    again = check_speech("".join(f"<quote>{q}</quote>" for q in verified), passage, budget=0, already_quoted=covered)
    assert all(s.kind == VERIFIED for s in again)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_property_quoting_again_what_was_counted_costs_nothing(data):
    """Quotes verified in one speech, then repeated or quoted in part, in upper case, in the next with no budget."""
    passage, words = data.draw(passage_and_quote())
    quoted = [words] + [data.draw(sub_run(passage)) for _ in range(data.draw(st.integers(0, 3)))]
    covered = set()
    first = check_speech(
        "".join(f"<quote>{' '.join(w)}</quote> " for w in quoted), passage, budget=None, already_quoted=covered
    )
    assert all(s.kind == VERIFIED for s in first if s.kind != TEXT)
    again = []
    for w in data.draw(st.lists(st.sampled_from(quoted), min_size=1, max_size=5)):
        start = data.draw(st.integers(0, len(w) - 1))
        again.append(w[start : data.draw(st.integers(start + 1, len(w)))])  # the quote or any run of its words
    second = "".join(f"<quote>{sprinkle(data.draw, ' '.join(w).upper())}</quote> " for w in again)
    assert all(
        s.kind == VERIFIED for s in check_speech(second, passage, budget=0, already_quoted=covered) if s.kind != TEXT
    )


def test_the_judge_sees_verified_and_unverified_quotes_differently_but_never_the_passage(ready_trial, judge, client):
    turn = ready_trial.turns.order_by("index").first()
    passage = ready_trial.question.passage  # "PASSAGE-SECRET-n The sky is blue on clear days."
    turn.text = "Look: <quote>the sky is BLUE on clear days</quote> and <quote>the sky is green</quote>."
    turn.save()
    client.force_login(judge)
    page = open_trial(client, ready_trial).content.decode()
    assert '<q class="quote verified"' in page and ">the sky is BLUE on clear days</q>" in page
    assert '<q class="quote unverified"' in page and ">the sky is green</q>" in page
    assert passage not in page and "PASSAGE-SECRET" not in page
    view = client.get(reverse("judging:trial_state", args=[ready_trial.pk])).json()
    kinds = [seg["kind"] for seg in view["transcript"][0]["segments"]]
    assert kinds == ["text", "verified", "text", "unverified", "text"]
