"""A live page's tag, computed from a render's reads and by the poll's one query: the two agree in every state a
live trial goes through (on both databases), and each state that changes the page changes the tag."""

import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone

from judging import live_tag, quotes, selectors, views
from judging.models import Trial, Turn
from judging.services import experiment_close, live_dead_claim_cutoff, live_move, trial_open, verdict_submit
from tests.judging.test_trial_partials import finish_round, first_trial
from tests.pages import without_csrf_tokens

pytestmark = pytest.mark.django_db


def both_tags(trial, judge):
    """The tag as a render reads it (views._own_trial, as the trial page does) and as a poll reads it."""
    read = views._own_trial(SimpleNamespace(user=judge), trial.pk)
    now = live_tag.current(trial.pk, judge.pk, dead_before=live_dead_claim_cutoff(timezone.now()))
    return views._trial_context(read)["live_tag"], now


def page_shown(client, trial) -> str:
    """The live partials as the judge's page gets them, without the round's seconds (trial.js counts those) and
    the tag itself."""
    html = client.get(
        reverse("judging:trial_live", args=[trial.pk]), HTTP_HX_REQUEST="true", HTTP_X_LIVE_FULL="1"
    ).content.decode()
    html = re.sub(r'data-seconds="\d+">\d+<', "", html)
    html = without_csrf_tokens(html)
    return re.sub(r'hx-ptag="[^"]*"', "", html)


@pytest.mark.parametrize("turn_style", ["sequential", "simultaneous"])
def test_the_polls_tag_is_the_renders_in_every_state_and_changes_with_what_the_page_shows(
    client, make_model_config, make_experiment, judge, turn_style
):
    experiment = make_experiment(make_model_config("m"), mode="live", rounds=3, min_rounds=1, turn_style=turn_style)
    from judging.services import experiment_launch

    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    assert live_tag.current(trial.pk, judge.pk, dead_before=timezone.now()) is None  # not opened: no tag
    trial_open(trial=trial)
    client.force_login(judge)
    seen, pages = [], []

    def state(name, page_changes=True):
        rendered, polled = both_tags(trial, judge)
        assert polled is not None and polled.tag == rendered, name
        assert not polled.dead_claim, name
        page = page_shown(client, trial)
        if page_changes:
            assert page != pages[-1] if pages else True, f"{name}: expected a change of the page"
            assert rendered not in seen, f"{name}: the page changed but its tag did not"
            seen.append(rendered)
        else:  # a poll would render what the page shows already
            assert page == pages[-1], name
            assert rendered == seen[-1], f"{name}: the tag changed but the page did not"
        pages.append(page)

    state("round 1 waiting for a worker")
    first = trial.turns.order_by("index").first()
    # Claimed an hour ahead, so no render of this test, however slow, finds the claim dead (the dead claim is below).
    soon = timezone.now() + timedelta(hours=1)
    Turn.objects.filter(pk=first.pk).update(status=Turn.Status.RUNNING, claim_token="t", claimed_at=soon)
    # The page says "waiting" until the first words (selectors._round_progress): a claim renders nothing new.
    state("claimed, no words yet", page_changes=False)
    Turn.objects.filter(pk=first.pk).update(partial_text="The first words")
    state("first words")
    Turn.objects.filter(pk=first.pk).update(partial_text="The first words, and more")
    state("more words")
    # A restart: the same words again, but the attempt counted and shown as restarting.
    Turn.objects.filter(pk=first.pk).update(partial_text="", attempts=1, status=Turn.Status.PENDING)
    state("restarting")
    finish_round(trial)
    state("round 1 written")
    live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="A", probability="0.7")
    state("a leaning recorded")
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="Which line?", addressed_to=("A", "B"))
    state("a question asked, round 2 started")
    # A dead worker: the poll's query says so (the view then releases the turn), without changing the tag.
    second = trial.turns.filter(round=2).order_by("index").first()
    old = timezone.now() - timedelta(hours=1)
    Turn.objects.filter(pk=second.pk).update(status=Turn.Status.RUNNING, claim_token="dead", claimed_at=old)
    rendered, polled = both_tags(trial, judge)
    assert polled.tag == rendered == seen[-1] and polled.dead_claim  # claimed, no words: the page is as it was
    finish_round(trial)
    state("round 2 written")
    live_move(trial_id=trial.pk, judge=judge, action="end")
    state("the judge ended the debate")
    experiment_close(experiment=experiment)
    state("the experiment closed")


def test_another_judges_poll_finds_no_tag(make_model_config, make_experiment, judge, other_judge):
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), mode="live", rounds=2)
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    assert live_tag.current(trial.pk, judge.pk, dead_before=timezone.now()) is not None
    assert live_tag.current(trial.pk, other_judge.pk, dead_before=timezone.now()) is None
    assert live_tag.current(trial.pk + 1000, judge.pk, dead_before=timezone.now()) is None


def test_a_judged_trials_tag_still_agrees(make_model_config, make_experiment, judge):
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), mode="live", rounds=2, min_rounds=1)
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    finish_round(trial)
    live_move(trial_id=trial.pk, judge=judge, action="end")
    before, _ = both_tags(trial, judge)
    verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability="0.8", rationale="Because of line 3.")
    rendered, polled = both_tags(trial, judge)
    assert polled.tag == rendered != before


# ---- Polls: 304, the new characters of the speeches being written, or the partials ---------------------------


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def live_poll(client, trial, tag, **headers):
    return client.get(
        reverse("judging:trial_live", args=[trial.pk]), HTTP_HX_REQUEST="true", HTTP_HX_PTAG=tag, **headers
    )


def writing(trial, text):
    """Play the worker: the trial's first turn is being written and has ``text`` so far."""
    first = trial.turns.order_by("index").first()
    Turn.objects.filter(pk=first.pk).update(status=Turn.Status.RUNNING, claim_token="t", partial_text=text)
    return first


def opened(make_model_config, make_experiment, **fields):
    from judging.services import experiment_launch

    experiment = make_experiment(make_model_config("m"), mode="live", rounds=3, **fields)
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    return trial


def test_a_page_that_lacks_only_the_latest_characters_gets_just_those(
    judge_client, make_model_config, make_experiment, django_assert_max_num_queries
):
    trial = opened(make_model_config, make_experiment, turn_style="sequential")
    first = writing(trial, "The first")
    rendered = live_poll(judge_client, trial, "")
    assert rendered.status_code == 200 and "The first" in rendered.content.decode()
    assert f'data-writing="{first.index}"' in rendered.content.decode()  # where the next characters go
    # The model writes on, markup and a quote begun included: only the new characters come, as JSON in which no
    # "<", ">" or "&" appears.
    speech = 'The first words, <img src=x onerror="alert(1)"> & <quote>Fancy'
    writing(trial, speech)
    with django_assert_max_num_queries(3):  # session, user, the tag: no trial read, no render
        news = live_poll(judge_client, trial, rendered["HX-PTag"])
    assert news.status_code == 200 and news["Content-Type"] == "application/json"
    assert news["HX-Reswap"] == "none" and news.templates == []
    assert all(markup not in news.content for markup in (b"<", b">", b"&"))
    assert json.loads(news.content) == {
        "append": [{"index": first.index, "text": ' words, <img src=x onerror="alert(1)"> & <quote>Fancy'}],
        "chars": [{"index": first.index, "chars": len(speech)}],
    }
    # Its tag is what the page now has: nothing new, 304; what a render would send, too.
    assert live_poll(judge_client, trial, news["HX-PTag"]).status_code == 304
    assert live_poll(judge_client, trial, "")["HX-PTag"] == news["HX-PTag"]
    # A tag tampered with while the text still matches (a length or digest changed, a part added): rendered.
    tag = news["HX-PTag"]
    structure, _, part = tag.partition(".")
    index, length, digest = part.split("-")
    for tampered in (
        f"{structure}.{index}-{int(length) - 1}-{digest}",
        f"{structure}.{index}-{length}-{'0' * len(digest)}",
        f"{structure}.{index}-{length}",
        f"{tag}.99-1-{digest}",
        f"{structure}.{index}-x-{digest}",
    ):
        assert live_poll(judge_client, trial, tampered)["Content-Type"].startswith("text/html"), tampered
    assert live_poll(judge_client, trial, tag).status_code == 304
    # New characters that finish the quote: the speech comes whole, in text and its quote marked (as a render marks
    # it: test_a_speech_that_finishes_a_quote_is_sent_as_a_render_marks_it), nothing rendered.
    writing(trial, speech + " passage text</quote> and on")
    with django_assert_max_num_queries(4):  # the passage too
        quoted = live_poll(judge_client, trial, news["HX-PTag"])
    assert quoted["Content-Type"] == "application/json" and quoted.templates == []
    assert all(markup not in quoted.content for markup in (b"<", b">", b"&"))
    body = json.loads(quoted.content)
    assert body["append"] == [] and body["rewrite"] == [
        {
            "index": first.index,
            "segments": [
                {"kind": "text", "text": 'The first words, <img src=x onerror="alert(1)"> & ', "title": ""},
                {"kind": "unverified", "text": "Fancy passage text", "title": quotes.QUOTE_TITLES["unverified"]},
                {"kind": "text", "text": " and on", "title": ""},
            ],
        }
    ]
    assert live_poll(judge_client, trial, quoted["HX-PTag"]).status_code == 304
    writing(trial, speech + " passage text</quote> and on, and on")  # after the quote: appended again
    assert json.loads(live_poll(judge_client, trial, quoted["HX-PTag"]).content)["append"][0]["text"] == ", and on"
    news = quoted
    # A page whose text is not a beginning of the speech now (a tag tampered with, or the text rewritten), a tag
    # that cannot be read, or a page that asks for the whole partials: rendered.
    writing(trial, "Rewritten from the start, and longer than before")
    assert live_poll(judge_client, trial, news["HX-PTag"])["Content-Type"].startswith("text/html")
    current = live_poll(judge_client, trial, "")["HX-PTag"]
    assert live_poll(judge_client, trial, current, HTTP_X_LIVE_FULL="1")["Content-Type"].startswith("text/html")
    # The speech is done: a render (the structure changed).
    finish_round(trial)
    assert live_poll(judge_client, trial, current)["Content-Type"].startswith("text/html")


def test_a_speech_that_finishes_a_quote_is_sent_as_a_render_marks_it(judge_client, make_model_config, make_experiment):
    # A budget of 12 characters of new quoted material per speech, each character of the passage counted once per
    # trial: the second speech's "The sky is blue" costs only " blue" (the first quoted "The sky is"), which leaves
    # too little for "clear days"; words not in the passage are unverified.
    trial = opened(make_model_config, make_experiment, turn_style="sequential", quote_limit=12)
    first, second = trial.turns.order_by("index")[:2]
    Turn.objects.filter(pk=first.pk).update(status=Turn.Status.DONE, text="<quote>The sky is</quote> it says.")
    started = {"status": Turn.Status.RUNNING, "claim_token": "t", "partial_text": "I say <quote>The"}
    Turn.objects.filter(pk=second.pk).update(**started)
    tag = live_poll(judge_client, trial, "")["HX-PTag"]
    for speech in (
        "I say <quote>The sky is blue</quote> and",
        "I say <quote>The sky is blue</quote> and <quote>not in it</quote>,\nthen <quote>clear days</quote>.",
    ):
        Turn.objects.filter(pk=second.pk).update(partial_text=speech)
        reply = live_poll(judge_client, trial, tag)
        assert reply["Content-Type"] == "application/json"
        [sent] = json.loads(reply.content)["rewrite"]
        render = views._own_trial(SimpleNamespace(user=trial.judge), trial.pk)
        [shown] = [s for s in selectors.judge_view_of_trial(render)["transcript"] if s.get("index") == second.index]
        assert sent == {"index": second.index, "segments": shown["segments"]}
        tag = reply["HX-PTag"]
    kinds = [(s["kind"], s["text"]) for s in sent["segments"] if s["kind"] != "text"]
    # Over budget ("clear days" is in the passage) looks exactly as not in it: the judge must not tell them apart.
    assert kinds == [("verified", "The sky is blue"), ("unverified", "not in it"), ("unverified", "clear days")]
    titles = {s["title"] for s in sent["segments"] if s["kind"] == "unverified"}
    assert titles == {quotes.QUOTE_TITLES[quotes.UNVERIFIED]} and "over_budget" not in reply.content.decode()
    assert live_poll(judge_client, trial, tag).status_code == 304


def test_simultaneous_speeches_send_only_their_lengths_and_a_persons_trial_nothing(
    judge_client, make_model_config, make_experiment, other_judge
):
    trial = opened(make_model_config, make_experiment, turn_style="simultaneous")
    first = writing(trial, "Hidden words")
    rendered = live_poll(judge_client, trial, "")
    assert "Hidden words" not in rendered.content.decode()
    speech = "Hidden words, and <quote>more hidden</quote> words"  # a quote finished: still only the length
    writing(trial, speech)
    news = live_poll(judge_client, trial, rendered["HX-PTag"])
    assert json.loads(news.content) == {"append": [], "chars": [{"index": first.index, "chars": len(speech)}]}
    assert b"hidden" not in news.content
    assert news["HX-PTag"].endswith(f".{first.index}-{len(speech)}")  # its length, and no hash of its text
    # Where a person debates, the page shows neither (selectors._round_progress), and the tag tells nothing either:
    # whatever the model's turn does (claimed, writing, restarted), the page's tag stays and each poll is a 304.
    Trial.objects.filter(pk=trial.pk).update(honest_person=other_judge)
    model = trial.turns.exclude(pk=first.pk).filter(round=1).get()
    Turn.objects.filter(pk=first.pk).update(status=Turn.Status.PENDING, partial_text="")  # the person's, waiting
    tag = live_poll(judge_client, trial, "")["HX-PTag"]
    for fields in (
        {"status": Turn.Status.RUNNING, "claim_token": "m"},
        {"partial_text": "The model writes"},
        {"partial_text": "The model writes on"},
        {"status": Turn.Status.PENDING, "partial_text": "", "attempts": 1},
        {"status": Turn.Status.DONE, "text": "The model's speech, done."},
    ):
        Turn.objects.filter(pk=model.pk).update(**fields)
        assert live_poll(judge_client, trial, tag).status_code == 304, fields
