"""The judge's probabilities: one convention (an answer and the probability that it is correct, 50-100%) for the
verdict and the leaning, no default probability, and what is stored (docs/scoring.md)."""

import re

import pytest
from django.urls import reverse

from judging.models import Trial, Verdict
from judging.services import MoveRefused, VerdictRefused, live_move, trial_open, verdict_submit
from tests.judging.pages import open_trial
from tests.judging.test_live_trials import first_trial, generate_all, snapshot

NO_PROBABILITY = "say how likely the answer you chose is to be correct"


@pytest.fixture
def judge_client(client, judge):
    client.force_login(judge)
    return client


def slider(page: str, slider_id: str) -> str:
    return re.search(rf'<input type="range" id="{slider_id}"[^>]*>', page).group(0)


def box(page: str, slider_id: str) -> str:
    """The number box beside the slider: the posted field."""
    return re.search(rf'<input type="number" id="{slider_id}-value"[^>]*>', page).group(0)


@pytest.mark.parametrize("probability", [None, "", "   "])
def test_a_verdict_without_a_probability_is_refused_and_changes_nothing(ready_trial, judge, probability):
    trial_open(trial=ready_trial)
    with pytest.raises(VerdictRefused, match=NO_PROBABILITY) as refused:
        verdict_submit(trial_id=ready_trial.pk, judge=judge, chosen="A", probability=probability, rationale="r")
    assert refused.value.status == 400
    assert not Verdict.objects.exists() and Trial.objects.get(pk=ready_trial.pk).status == Trial.Status.READY


@pytest.mark.parametrize("probability", ["\uff11", "\uff10.\uff17", "\u0660.\u0667", "0.7\u00a0"])
def test_a_probability_in_other_digits_than_ascii_is_refused(ready_trial, judge, probability):
    # Python's float() reads a full-width "１" as 1; no page sends one, so it is a crafted or garbled post.
    trial_open(trial=ready_trial)
    with pytest.raises(VerdictRefused, match="must be a number between 0 and 1"):
        verdict_submit(trial_id=ready_trial.pk, judge=judge, chosen="A", probability=probability, rationale="r")
    assert not Verdict.objects.exists()


def test_a_crafted_post_without_a_probability_gets_a_clear_error_and_keeps_what_the_judge_wrote(
    judge_client, ready_trial
):
    open_trial(judge_client, ready_trial)
    rationale = "B quoted the <text> & A did not."
    response = judge_client.post(
        reverse("judging:verdict", args=[ready_trial.pk]), {"chosen": "B", "rationale": rationale}
    )
    page = response.content.decode()
    assert response.status_code == 400 and NO_PROBABILITY in page
    assert "B quoted the &lt;text&gt; &amp; A did not.</textarea>" in page  # kept, escaped
    assert re.search(r'value="B"\s+checked', page)  # the chosen answer is kept
    assert 'value=""' in box(page, "probability")  # still not set
    assert not Verdict.objects.exists()


def test_the_verdict_slider_has_no_default_and_keeps_a_probability_the_judge_set(judge_client, ready_trial):
    page = open_trial(judge_client, ready_trial).content.decode()
    assert "name=" not in slider(page, "probability") and "value=" not in slider(page, "probability")
    assert 'name="probability" min="0.5" max="1" step="0.01" required' in box(page, "probability")
    assert 'value=""' in box(page, "probability")  # empty and required: the browser sends nothing
    assert ">not set</output>" in page
    # Refused for another reason: the probability the judge set comes back set.
    data = {"chosen": "A", "probability": "0.85", "rationale": " "}
    page = judge_client.post(reverse("judging:verdict", args=[ready_trial.pk]), data).content.decode()
    assert 'value="0.85"' in box(page, "probability") and 'value="0.85"' in slider(page, "probability")
    assert ">85%</output>" in page


@pytest.fixture
def between_rounds(live_experiment, judge):
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    generate_all(live_experiment)
    return trial


def test_a_leaning_is_given_like_a_verdict_and_stored_as_the_probability_of_a(between_rounds, judge):
    trial = between_rounds
    live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="B", probability="0.9")
    trial.refresh_from_db()
    assert trial.leanings == [[1, 0.1]]
    live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="A", probability="0.65")  # replaces round 1's
    live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="B", probability="0.5")
    trial.refresh_from_db()
    assert trial.leanings == [[1, 0.5]]  # undecided either way


@pytest.mark.parametrize(
    "chosen,probability,message",
    [
        (None, "0.8", "choose answer A or answer B"),
        ("C", "0.8", "choose answer A or answer B"),
        ("A", None, NO_PROBABILITY),
        ("A", "", NO_PROBABILITY),
        ("A", "0.3", "at least 0.5"),
        ("B", "1.2", "between 0 and 1"),
    ],
)
def test_a_leaning_without_an_answer_or_a_probability_is_refused_and_changes_nothing(
    between_rounds, judge, chosen, probability, message
):
    before = snapshot(between_rounds)
    with pytest.raises(MoveRefused, match=message) as refused:
        live_move(trial_id=between_rounds.pk, judge=judge, action="lean", chosen=chosen, probability=probability)
    assert refused.value.status == 400
    assert snapshot(between_rounds) == before


def test_the_leaning_form_asks_for_an_answer_and_an_unset_probability(between_rounds, judge_client):
    url = reverse("judging:live_move", args=[between_rounds.pk])
    page = judge_client.get(reverse("judging:trial", args=[between_rounds.pk])).content.decode()
    lean_form = page[page.index('<form id="lean-form"') :]
    lean_form = lean_form[: lean_form.index("</form>")]
    assert 'name="chosen" value="A" required' in lean_form and 'name="chosen" value="B"' in lean_form
    assert 'min="0.5" max="1"' in slider(lean_form, "leaning")
    assert 'name="probability"' in box(lean_form, "leaning") and 'value=""' in box(lean_form, "leaning")
    # A move posted without a probability: a clear error, in JSON for htmx and scripts.
    response = judge_client.post(url, {"action": "lean", "chosen": "A"}, headers={"Accept": "application/json"})
    assert response.status_code == 400 and NO_PROBABILITY in response.json()["error"]
    response = judge_client.post(url, {"action": "lean", "chosen": "B", "probability": "0.75"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    between_rounds.refresh_from_db()
    assert between_rounds.leanings == [[1, 0.25]]
