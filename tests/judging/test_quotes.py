"""Quote verification: the matching rule on tricky cases, budgets, and what the judge sees."""

import pytest
from django.urls import reverse

from judging.quotes import OVER_BUDGET, TEXT, UNVERIFIED, VERIFIED, Segment, check_speech, check_transcript, is_verified

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


def test_the_judge_sees_verified_and_unverified_quotes_differently_but_never_the_passage(ready_trial, judge, client):
    turn = ready_trial.turns.order_by("index").first()
    passage = ready_trial.question.passage  # "PASSAGE-SECRET-n The sky is blue on clear days."
    turn.text = "Look: <quote>the sky is BLUE on clear days</quote> and <quote>the sky is green</quote>."
    turn.save()
    client.force_login(judge)
    page = client.get(reverse("judging:trial", args=[ready_trial.pk])).content.decode()
    assert '<q class="quote verified"' in page and ">the sky is BLUE on clear days</q>" in page
    assert '<q class="quote unverified"' in page and ">the sky is green</q>" in page
    assert passage not in page and "PASSAGE-SECRET" not in page
    view = client.get(reverse("judging:trial_state", args=[ready_trial.pk])).json()
    kinds = [seg["kind"] for seg in view["transcript"][0]["segments"]]
    assert kinds == ["text", "verified", "text", "unverified", "text"]
