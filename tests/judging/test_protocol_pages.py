"""Every protocol's pages say exactly what that protocol is (issue 14, part 5): each arm of the registry, live and
pre-generated where both exist, rendered as the judge meets it (queue, start, in progress, between rounds, after a
leaning, judged) and checked against its kind's words. A new protocol or arm fails here until it is given its rules.

Only the page's main content is read (the site's name is "Debate judging"), scripts left out (the scoring table's
JSON), hidden elements included: a hidden part is still read by a screen reader's "show all" and by the next update.
"""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from judging import services
from judging.models import Trial, Turn, Verdict
from judging.orientation import kind
from judging.protocols.registry import ARMS, PROTOCOLS

# Words each kind of page must never use, and words it must use (case-insensitive, at a word's start).
RULES = {
    "debate": {"forbidden": ["consultant", "assistant"], "required": ["debaters"]},
    "consultancy": {"forbidden": ["debater", "assistant", "both"], "required": ["consultant"]},
    # Talking with an assistant: no rounds, no speeches, nobody but the assistant.
    "sandwich": {
        "forbidden": ["round", "debat", "consultant", "speech", "No speeches yet"],
        "required": ["assistant"],
    },
    # A judge alone: nobody speaks, no source, nothing quoted.
    "sandwich-alone": {
        "forbidden": ["round", "debat", "consultant", "speech", "assistant", "source", "quote", "transcript"],
        "required": ["on your own"],
    },
}

CASES = [
    pytest.param(arm, live, id=f"{arm}-{'live' if live else 'pre-generated'}")
    for arm, spec in ARMS.items()
    for live in ((True,) if PROTOCOLS[spec.protocol].always_live else (False, True))
]


def kind_of(arm: str) -> str:
    return kind(ARMS[arm].protocol, ARMS[arm].has_speaker)


def test_every_arm_of_the_registry_has_its_page_rules():
    assert {kind_of(arm) for arm in ARMS} <= set(RULES), "give the new protocol its words in RULES"


def main_text(html: str) -> str:
    main = re.search(r"<main>(.*)</main>", html, re.S).group(1)
    main = re.sub(r"<script.*?</script>", " ", main, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", main)
    return " ".join(text.replace("&#x27;", "'").replace("&quot;", '"').split())


def check(response, arm: str, where: str) -> str:
    assert response.status_code == 200, (where, response.status_code)
    text = main_text(response.content.decode())
    rules = RULES[kind_of(arm)]
    for word in rules["forbidden"]:
        found = re.search(rf"\b{re.escape(word)}", text, re.I)
        assert not found, f"{arm} {where}: {word!r} in …{text[max(0, found.start() - 80) : found.end() + 80]}…"
    for word in rules["required"]:
        assert re.search(rf"\b{re.escape(word)}", text, re.I), f"{arm} {where}: no {word!r} in {text}"
    return text


def write_round(trial, text="It says <quote>The sky is blue</quote> here."):
    Turn.objects.filter(trial=trial, status=Turn.Status.PENDING).update(
        status=Turn.Status.DONE, text=text, finished_at=timezone.now()
    )
    services.trials_settle([trial.pk])


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


@pytest.fixture
def arm_trial(make_model_config, make_experiment):
    def make(arm, live):
        experiment = make_experiment(
            make_model_config("m"),
            conditions=[arm],
            mode="live" if live else "pregenerated",
            rounds=3,
            min_rounds=2,
            num_questions=1,
            feedback="immediate",  # the judged page shows the truth and score too
        )
        services.experiment_launch(experiment=experiment)
        trial = experiment.trials.get()
        if not trial.live:
            write_round(trial)
        trial.refresh_from_db()
        return trial

    return make


@pytest.mark.parametrize("arm,live", CASES)
def test_each_protocol_page_says_what_its_protocol_is(judge_client, judge, arm_trial, arm, live):
    trial = arm_trial(arm, live)
    url = reverse("judging:trial", args=[trial.pk])
    queue = judge_client.get(reverse("judging:queue")).content.decode()
    badge = re.search(r'<span class="badges">(.*?)</span></span>', queue, re.S).group(1)
    check(judge_client.get(reverse("judging:queue")), arm, "queue")
    assert ("live" in badge) == (trial.live and ARMS[arm].has_speaker), badge
    start = check(judge_client.get(url), arm, "start page")
    assert "Trial 1 of 1" in start and "Skip this trial" in start
    judge_client.post(reverse("judging:start", args=[trial.pk]))
    pages = {"opened": check(judge_client.get(url), arm, "opened")}
    if trial.live and ARMS[arm].has_speaker:
        pages["speaking"] = pages.pop("opened")
        write_round(trial)
        pages["between rounds"] = check(judge_client.get(url), arm, "between rounds")
        assert judge_client.post(
            reverse("judging:live_move", args=[trial.pk]), {"action": "lean", "chosen": "B", "probability": "0.7"}
        ).status_code in (200, 302)
        leaned = check(judge_client.get(url), arm, "after a leaning")
        assert "Leaning recorded after" in leaned and "answer B, 70% likely correct" in leaned
        judge_client.post(reverse("judging:live_move", args=[trial.pk]), {"action": "ask", "text": "Why?"})
        write_round(trial, "Because the text says so.")
        pages["asked"] = check(judge_client.get(url), arm, "after a question")
        judge_client.post(reverse("judging:live_move", args=[trial.pk]), {"action": "end"})
        pages["awaiting verdict"] = check(judge_client.get(url), arm, "awaiting the verdict")
    for where, text in pages.items():
        assert "Skip this trial" in text, where
    response = judge_client.post(
        reverse("judging:verdict", args=[trial.pk]), {"chosen": "A", "probability": "0.8", "rationale": "Fine."}
    )
    assert response.status_code == 302, main_text(response.content.decode())
    judged = check(judge_client.get(url), arm, "judged")
    assert "You have judged this trial." in judged and "The correct answer is" in judged
    assert "Skip this trial" not in judged


@pytest.mark.parametrize("arm,live", CASES)
def test_the_skip_button_works_on_every_protocols_page(judge_client, arm_trial, arm, live):
    trial = arm_trial(arm, live)
    judge_client.post(reverse("judging:start", args=[trial.pk]))
    page = judge_client.get(reverse("judging:trial", args=[trial.pk])).content.decode()
    action = re.search(r'<form method="post" action="([^"]+)" id="skip-form">', page).group(1)
    response = judge_client.post(action, {"reason": "The question is broken."})
    assert response.status_code == 302 and response.url == reverse("judging:queue")
    trial.refresh_from_db()
    assert (trial.status, trial.skip_reason) == (Trial.Status.SKIPPED, "The question is broken.")


def test_the_queue_cannot_tell_an_honest_from_a_misleading_assistant(
    judge_client, judge, make_model_config, make_experiment
):
    experiment = make_experiment(
        make_model_config("m"), conditions=["assisted-honest", "assisted-misleading"], mode="live", num_questions=4
    )
    services.experiment_launch(experiment=experiment)
    # One trial judged (of one condition), slower than the default: its estimate serves both conditions alike.
    first = Trial.objects.queue_of(judge).first()
    services.trial_open(trial=first)
    write_round(first)
    services.live_move(trial_id=first.pk, judge=judge, action="end")
    services.verdict_submit(trial_id=first.pk, judge=judge, chosen="A", probability=0.6, rationale="ok")
    Verdict.objects.update(active_seconds=20 * 60)
    queue = judge_client.get(reverse("judging:queue")).content.decode()
    badges = re.findall(r'<span class="badges">(.*?)</span></span>', queue, re.S)
    assert len(badges) == 3 and len(set(badges)) == 1, badges
    assert "about 20 min" in badges[0] and "With an AI assistant" in badges[0]
    conditions = set(Trial.objects.queue_of(judge).values_list("condition", flat=True))
    assert conditions == {"assisted-honest", "assisted-misleading"}
