"""The trial page's live partials: what the live view returns, who may fetch it, how moves made with htmx are
answered, the protocol wording, and that no page carries inline script code."""

import html.parser
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from judging import selectors
from judging.models import Trial, Turn
from judging.services import experiment_launch, trial_open, trial_skip
from tests.judging.pages import open_trial
from tests.judging.test_judge_pages import assert_blind

HTMX = {"HTTP_HX_REQUEST": "true"}


def first_trial(experiment):
    return experiment.trials.order_by("queue_position").first()


def finish_round(trial, text="Argument of debater {speaker} in round {round}."):
    """Play the worker: every pending or running debater turn is done (no model runs in these tests)."""
    for turn in trial.turns.exclude(speaker="judge").exclude(status=Turn.Status.DONE):
        Turn.objects.filter(pk=turn.pk).update(
            status=Turn.Status.DONE,
            text=text.format(speaker=turn.speaker, round=turn.round),
            finished_at=timezone.now(),
        )


@pytest.fixture
def live_trial(make_model_config, make_experiment):
    """The first trial of a live debate (3 rounds, may end after 2), opened, with round 1 written."""
    experiment = make_experiment(
        make_model_config("SECRET-MODEL-NAME for live trials"),
        name="live",
        mode="live",
        rounds=3,
        min_rounds=2,
        num_questions=2,
    )
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    finish_round(trial)
    return trial


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def live_url(trial):
    return reverse("judging:trial_live", args=[trial.pk])


def move_url(trial):
    return reverse("judging:live_move", args=[trial.pk])


def element_ids(body):
    return set(re.findall(r'\bid="([^"]+)"', body))


class ScriptFinder(html.parser.HTMLParser):
    """Collects what a strict Content-Security-Policy would block: inline script code and event-handler attributes."""

    def __init__(self):
        super().__init__()
        self.problems = []
        self._in_data_block = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name, value in attrs.items():
            if name.startswith("on") or name.startswith("hx-on") or name.startswith("data-hx-on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}={value}>")
            if name.startswith("hx-") and (value or "").strip().startswith(("js:", "javascript:")):
                self.problems.append(f"<{tag} {name}={value}>")
        if tag == "script":
            self._in_data_block = attrs.get("type") == "application/json" and "id" in attrs
            if "src" not in attrs and not self._in_data_block:
                self.problems.append("<script> with code and no src")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_data_block = None

    def handle_data(self, data):
        if self._in_data_block is False and data.strip():
            self.problems.append(f"inline script code: {data.strip()[:60]!r}")


def inline_code(body: str) -> list[str]:
    """Everything in an HTML page that is script code written into the page rather than loaded from a file."""
    finder = ScriptFinder()
    finder.feed(body)
    return finder.problems


def test_the_inline_code_finder_finds_what_it_should():
    page = """<script>alert(1)</script><script src="/a.js"></script><button onclick="x()">b</button>
              <script id="c" type="application/json">{"a": 1}</script><a href="javascript:x()">l</a>
              <div hx-on:click="x()"></div><div hx-vals="js:{a: 1}"></div>"""
    assert len(inline_code(page)) == 6
    assert inline_code('<script src="/a.js" defer></script><script id="c" type="application/json">{}</script>') == []


def test_the_live_view_returns_only_the_judge_visible_partials(judge_client, live_trial):
    response = judge_client.get(live_url(live_trial), **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert_blind(response, live_trial)
    assert {"transcript", "live-status", "live-controls", "move-error", "verdict-section"} <= element_ids(body)
    assert "<html" not in body and "How this works" not in body and "trial-config" not in body  # fragments only
    assert "Argument of debater A in round 1." in body and "Argument of debater B in round 1." in body
    assert "Round 1 of at most 3 is complete." in body
    # The partials are the page's own: the first render has the same elements with the same text.
    page = open_trial(judge_client, live_trial).content.decode()
    assert element_ids(body) <= element_ids(page)
    assert "Round 1 of at most 3 is complete." in page


def test_the_live_view_is_for_the_trials_own_judge_only(client, judge, other_judge, live_trial, ready_trial):
    assert client.get(live_url(live_trial)).status_code == 302  # not logged in: to the login page
    client.force_login(other_judge)
    assert client.get(live_url(live_trial), **HTMX).status_code == 404
    assert client.post(move_url(live_trial), {"action": "continue"}, **HTMX).status_code == 404
    client.force_login(judge)
    generating = Trial.objects.filter(experiment=ready_trial.experiment, status=Trial.Status.GENERATING).first()
    assert client.get(live_url(generating), **HTMX).status_code == 404
    assert client.get(live_url(live_trial), **HTMX).status_code == 200
    assert client.post(live_url(live_trial), **HTMX).status_code == 405  # updates are read with GET only


def test_model_output_and_judge_text_in_the_partials_stay_escaped(judge_client, live_trial):
    turn = live_trial.turns.get(speaker="A")
    Turn.objects.filter(pk=turn.pk).update(text='<script>alert("x")</script><img src=x onerror=alert(1)>')
    response = judge_client.post(
        move_url(live_trial), {"action": "ask", "text": "<b>bold?</b> <hx-partial hx-target=body>"}, **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert" not in body and "<img src=x" not in body and "<b>bold" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "&lt;b&gt;bold?&lt;/b&gt; &lt;hx-partial hx-target=body&gt;" in body
    assert inline_code(body) == []


def test_a_move_made_with_htmx_is_answered_with_the_live_partials(judge_client, live_trial):
    response = judge_client.post(
        move_url(live_trial), {"action": "ask", "text": "Which line?", "addressed_to": "B"}, **HTMX
    )
    assert response.status_code == 200 and "<html" not in response.content.decode()
    body = response.content.decode()
    assert "You asked Debater B" in body and "Which line?" in body
    assert "The debaters are writing round 2 (shown when both have finished)…" in body
    assert live_trial.turns.filter(round=2, status=Turn.Status.PENDING).count() == 2
    assert_blind(response, live_trial)


def test_the_status_line_polls_only_while_speeches_are_written(judge_client, live_trial):
    def status_line():
        body = judge_client.get(live_url(live_trial), **HTMX).content.decode()
        return re.search(r'<p id="live-status".*?</p>', body, re.S).group(0)

    assert 'hx-trigger="live-refresh"' in status_line()  # the judge must act: no polling
    judge_client.post(move_url(live_trial), {"action": "continue"}, **HTMX)
    speaking = status_line()
    assert 'hx-trigger="every 400ms, live-refresh"' in speaking and "writing round 2" in speaking
    finish_round(live_trial)
    assert 'hx-trigger="live-refresh"' in status_line()


def test_a_poll_whose_page_shows_the_same_is_answered_304_without_rendering(
    judge_client, make_model_config, make_experiment, server_clock
):
    # Sequential rounds: the text written so far is shown (simultaneous ones show nothing until both are done).
    experiment = make_experiment(make_model_config("m"), name="seq", mode="live", rounds=3, turn_style="sequential")
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    finish_round(trial)  # between rounds: nothing on the page changes with the clock

    def poll(tag):
        return judge_client.get(live_url(trial), HTTP_HX_PTAG=tag, **HTMX)

    page = open_trial(judge_client, trial).content.decode()
    tag = re.search(r'<p id="live-status"[^>]*hx-ptag="([0-9a-f]+)"', page).group(1)
    # The page's tag is the live view's: a poll of the unchanged page renders nothing.
    unchanged = poll(tag)
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.templates == []
    # The next round starts and its first speech is being written: each change is sent, with its new tag.
    judge_client.post(move_url(trial), {"action": "continue"}, **HTMX)
    started = poll(tag)
    assert started.status_code == 200 and started["HX-PTag"] != tag
    assert f'hx-ptag="{started["HX-PTag"]}"' in started.content.decode()
    first = trial.turns.filter(round=2).order_by("index").first()
    Turn.objects.filter(pk=first.pk).update(status=Turn.Status.RUNNING, claim_token="t", partial_text="The first")
    grown = poll(started["HX-PTag"])
    assert grown.status_code == 200 and "The first" in grown.content.decode()
    # Only the round's seconds would change: 304, the page counts them on itself (trial.js, from data-seconds).
    server_clock.advance(7)
    assert poll(grown["HX-PTag"]).status_code == 304
    assert re.search(r'<span id="round-seconds" data-seconds="\d+">\d+</span> s', grown.content.decode())
    finish_round(trial)
    finished = poll(grown["HX-PTag"])
    assert finished.status_code == 200 and "Argument of debater" in finished.content.decode()
    assert poll(finished["HX-PTag"]).status_code == 304
    assert poll("").status_code == 200 and poll(tag).status_code == 200  # no tag, or a stale one


def test_a_refused_htmx_move_is_answered_with_its_message_as_json(judge_client, live_trial):
    judge_client.post(move_url(live_trial), {"action": "continue"}, **HTMX)  # round 2 is being written
    response = judge_client.post(move_url(live_trial), {"action": "end"}, **HTMX)
    assert response.status_code == 409 and response["Content-Type"] == "application/json"
    assert response.json() == {"error": "the debaters are still speaking; wait for this round to finish"}


def test_a_plain_form_post_still_redirects_with_a_message(judge_client, live_trial):
    response = judge_client.post(move_url(live_trial), {"action": "end"}, follow=True)
    assert response.redirect_chain == [(reverse("judging:trial", args=[live_trial.pk]), 302)]
    assert "the debate can be ended after round 2" in response.content.decode()
    response = judge_client.post(move_url(live_trial), {"action": "ask", "text": "Why?"})
    assert response.status_code == 302
    assert live_trial.turns.filter(speaker="judge", text="Why?").exists()


def test_asking_without_a_question_goes_on_to_the_next_round(judge_client, live_trial):
    response = judge_client.post(move_url(live_trial), {"action": "ask", "text": "   "}, **HTMX)
    assert response.status_code == 200
    assert not live_trial.turns.filter(speaker="judge").exists()
    assert live_trial.turns.filter(round=2).count() == 2


def test_no_trial_page_or_partial_has_inline_script_code(
    judge_client, judge, live_trial, ready_trial, make_model_config, make_experiment
):
    sandwich = make_experiment(
        make_model_config("m"), name="s", conditions=["naive", "assisted-honest"], mode="live", num_questions=2
    )
    consultancy = make_experiment(make_model_config("n"), name="c", conditions=["consultancy"], mode="live")
    for experiment in (sandwich, consultancy):
        experiment_launch(experiment=experiment)
    page = open_trial(judge_client, live_trial).content.decode()
    config = re.search(r'<script id="trial-config" type="application/json">(.*?)</script>', page).group(1)
    assert json.loads(config) == {
        "idle_seconds": 300,
        "beat_seconds": 15,
        "beat_url": f"/judge/trials/{live_trial.pk}/beat/",
    }
    assert re.findall(r'<script src="([^"]+)"', page) == [
        "/static/django_htmx/htmx-4.min.js",
        "/static/django_htmx/ext/hx-ptag-4.min.js",
        "/static/judging/trial.js",
    ]
    assert inline_code(judge_client.get(live_url(live_trial)).content.decode()) == []
    # Every trial page of every protocol, in the judge's order: each is opened, checked, and skipped.
    checked = set()
    while (trial := selectors.judge_queue(judge).first()) is not None:
        body = open_trial(judge_client, trial).content.decode()
        assert 'id="live-region"' in body and inline_code(body) == [], trial.protocol
        checked.add(trial.pk)
        trial_skip(trial_id=trial.pk, judge=judge, reason="checked")
    expected = {ready_trial.pk, live_trial.pk}
    for experiment in (sandwich, consultancy):
        expected |= set(experiment.trials.values_list("pk", flat=True))
    assert expected <= checked


def normalized_text(body, element_class):
    match = re.search(rf'<details class="{element_class}">(.*?)</details>', body, re.S)
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


QUOTES = (
    "Quotes from the source text are checked: verified quotes match the text; unverified quotes do not (or exceed "
    "the quote budget), so do not trust them. Decide which answer is correct and how sure you are."
)
DEBATE = (
    "Two debaters argue. Debater A defends answer A, debater B defends answer B. Exactly one answer is correct. "
    "The debaters can read a source text that you cannot. Each speech is limited to 300 characters."
)
CONSULTANCY = (
    "A consultant argues for answer {side}. The consultant may be arguing for the correct answer or for the wrong "
    "one. Exactly one answer is correct. The consultant can read a source text that you cannot. Each speech is "
    "limited to 600 characters."
)
LIVE = (
    "After each round you may ask the debaters a question (they answer it in the next round), go on to the next "
    "round, or end the debate and decide. There are at most 3 rounds; you can end after round 2."
)
# A consultancy speaks of its one consultant, never of debaters (issue 14, part 5).
LIVE_CONSULTANCY = (
    "After each round you may ask the consultant a question (it answers in the next round), go on to the next "
    "round, or end the consultation and decide. There are at most 3 rounds; you can end after round 2."
)


@pytest.mark.parametrize(
    "arm,rules",
    [
        ("debate", f"How this works {DEBATE} There are 2 rounds. {QUOTES}"),
        (
            "live debate",
            f"How this works {DEBATE} {LIVE} Both debaters write each round at the same time; you see a round once "
            f"both have finished. {QUOTES}",
        ),
        (
            "live sequential debate with the flip rule",
            f"How this works {DEBATE} {LIVE} If the leaning you record changes side, one more round is needed before "
            f"you can end. {QUOTES}",
        ),
        ("consultancy", f"How this works {CONSULTANCY} There are 2 rounds. {QUOTES}"),
        ("live consultancy", f"How this works {CONSULTANCY} {LIVE_CONSULTANCY} {QUOTES}"),
        # Sandwiching has no rounds: the assistant answers up to (rounds - 1) questions; the judge alone meets no
        # source, quotes or assistant (issue 14, part 5).
        (
            "assisted-honest",
            "How this works An AI assistant that can read a source text you cannot is here to help. It writes first; "
            "then you may ask it one question, and answer when you are ready. It can make mistakes. Exactly one "
            "answer is correct. When the assistant quotes the source text, the quote is checked: verified quotes "
            "match the text; unverified quotes do not (or exceed the quote budget), so do not trust them. Decide "
            "which answer is correct and how sure you are.",
        ),
        (
            "naive",
            "How this works Answer this question on your own. Exactly one answer is correct. Decide which answer is "
            "correct and how sure you are.",
        ),
    ],
)
def test_each_protocol_has_the_rules_text_it_always_had(judge_client, make_model_config, make_experiment, arm, rules):
    kwargs = {
        "debate": {},
        "live debate": {"mode": "live", "rounds": 3, "min_rounds": 2},
        "live sequential debate with the flip rule": {
            "mode": "live",
            "rounds": 3,
            "min_rounds": 2,
            "turn_style": "sequential",
            "extra_round_after_flip": True,
        },
        "consultancy": {"conditions": ["consultancy"]},
        "live consultancy": {"conditions": ["consultancy"], "mode": "live", "rounds": 3, "min_rounds": 2},
        "assisted-honest": {"conditions": ["assisted-honest"], "mode": "live"},
        "naive": {"conditions": ["naive"], "mode": "live"},
    }[arm]
    experiment = make_experiment(make_model_config("m"), num_questions=1, **kwargs)
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.READY)
    body = open_trial(judge_client, trial).content.decode()
    assert normalized_text(body, "rules") == rules.format(side=trial.consultant_side)


@pytest.mark.parametrize(
    "conditions,words",
    [
        (
            ["debate"],
            [
                "Transcript",
                "Between rounds",
                "Ask the debaters a question (optional)",
                "Ask and continue",
                "End the debate and decide",
                "The debaters are writing round 1 (shown when both have finished)…",
            ],
        ),
        (
            ["consultancy"],
            [
                "Transcript",
                "Between rounds",
                "Ask the consultant a question (optional)",
                "Ask and continue",
                "End the consultation and decide",
                "The consultant is writing round 1…",
            ],
        ),
        (
            ["assisted-honest"],
            [
                "Conversation with the assistant",
                "Your move",
                "Ask the assistant a question (optional)",
                ">Ask<",
                "I am ready to answer",
                "The assistant is writing…",
            ],
        ),
    ],
)
def test_each_protocol_words_the_live_page_as_it_always_did(
    judge_client, make_model_config, make_experiment, conditions, words
):
    experiment = make_experiment(make_model_config("m"), conditions=conditions, mode="live", num_questions=1)
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    body = " ".join(open_trial(judge_client, trial).content.decode().split())
    body = re.sub(r"> ", ">", re.sub(r" <", "<", body))
    for phrase in words:
        assert phrase in body, phrase


def test_the_status_line_says_what_happens_now(judge_client, live_trial):
    def status():
        body = judge_client.get(live_url(live_trial), **HTMX).content.decode()
        return " ".join(re.sub(r"<[^>]+>", "", re.search(r'<p id="live-status".*?</p>', body, re.S).group(0)).split())

    assert status() == "Round 1 of at most 3 is complete."
    judge_client.post(move_url(live_trial), {"action": "continue"}, **HTMX)
    assert status().startswith("The debaters are writing round 2 (shown when both have finished)… · ")
    live_trial.turns.filter(round=2, speaker="A").update(status=Turn.Status.FAILED)
    assert status() == "No answer could be generated. The researchers have been notified; please come back later."
    finish_round(live_trial)
    judge_client.post(move_url(live_trial), {"action": "end"}, **HTMX)
    assert status() == "Give your answer below."


def test_the_status_line_of_a_sandwiching_trial_invites_a_question_or_an_answer(
    judge_client, make_model_config, make_experiment
):
    sandwich = make_experiment(
        make_model_config("m"), name="s", conditions=["assisted-honest"], mode="live", num_questions=1
    )
    experiment_launch(experiment=sandwich)
    trial = sandwich.trials.get()
    trial_open(trial=trial)
    finish_round(trial)
    body = judge_client.get(live_url(trial), **HTMX).content.decode()
    assert "Your turn: ask the assistant, or answer." in body


def test_the_queue_refreshes_itself_without_inline_script_while_trials_are_prepared(
    judge_client, make_model_config, make_experiment
):
    experiment_launch(experiment=make_experiment(make_model_config("m"), num_questions=2))  # not generated yet
    body = judge_client.get(reverse("judging:queue")).content.decode()
    assert "being prepared" in body and inline_code(body) == []
    config = re.search(r'<script id="queue-config" type="application/json">(.*?)</script>', body).group(1)
    assert json.loads(config) == {"ready": [], "url": reverse("judging:queue_json")}
    assert '<script src="/static/judging/queue.js" defer></script>' in body


def test_while_a_round_is_written_the_judge_sees_how_long_and_who_without_the_text(
    judge_client, make_model_config, make_experiment, server_clock, judge
):
    from judging import selectors

    experiment = make_experiment(make_model_config("m"), name="progress", mode="live", rounds=2)
    experiment_launch(experiment=experiment)
    trial = experiment.trials.order_by("queue_position").first()
    open_trial(judge_client, trial)  # round 1's turns are created now, on the frozen clock
    first, second = trial.turns.order_by("index")
    Turn.objects.filter(pk=first.pk).update(status="running", claim_token="t", partial_text="x" * 120)
    server_clock.advance(42)
    status = judge_client.get(live_url(trial)).content.decode()
    line = status[status.index('id="round-progress"') :].split("</p>")[0]
    progress = " ".join(re.sub(r"<[^>]*>", "", line.split(">", 1)[1]).split())  # its text, without the markup
    assert "· 42 s" in progress
    assert f"Debater {first.speaker}: writing (120 characters)" in progress
    assert f"Debater {second.speaker}: waiting" in progress and "xxx" not in status  # lengths, never text
    # Where a person debates, the seconds only: a person's turn waits while a model's runs and grows.
    trial.refresh_from_db()
    trial.honest_person_id = judge.pk
    state = selectors.judge_live_state(trial, list(trial.turns.all()))
    assert state["progress"] == {"seconds": 42, "speakers": []}
