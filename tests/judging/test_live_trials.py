"""Live trials: rounds generated while the judge watches, questions, ending, leanings, visibility."""

import pytest
from django.urls import reverse
from django.utils import timezone

from generation.worker import generate_batch
from judging import selectors
from judging.models import Trial, Turn
from judging.services import MoveRefused, VerdictRefused, live_move, stale_claims_release, trial_open, verdict_submit
from tests.judging.pages import open_trial


def first_trial(experiment):
    return experiment.trials.order_by("queue_position").first()


def generate_all(experiment):
    while generate_batch(experiment.pk):
        pass


def snapshot(trial):
    trial.refresh_from_db()
    return (
        list(trial.turns.values_list("index", "speaker", "status", "text")),
        trial.ended_by_judge,
        trial.leanings,
        trial.status,
    )


def test_a_live_trial_is_judgeable_at_once_and_starts_when_opened(live_experiment):
    trial = first_trial(live_experiment)
    assert trial.status == Trial.Status.READY and not trial.turns.exists()
    trial_open(trial=trial)
    trial_open(trial=trial)  # a second open does not start a second round
    assert list(trial.turns.values_list("round", "speaker", "status")) == [(1, "A", "pending"), (1, "B", "pending")]


def test_the_judges_question_is_in_the_next_prompts_and_answered_in_the_next_round(live_experiment, judge):
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    generate_all(live_experiment)
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="Which sentence supports you?", addressed_to=("A",))
    question = trial.turns.get(speaker="judge")
    assert (question.round, question.addressed_to, question.status) == (1, ["A"], "done")
    generate_all(live_experiment)
    round_two = trial.turns.filter(round=2)
    assert round_two.count() == 2 and {t.status for t in round_two} == {"done"}
    for turn in round_two:
        assert 'The judge asked Debater A: "Which sentence supports you?"' in turn.prompt
    question.refresh_from_db()
    assert question.response_delay_seconds is not None and question.response_delay_seconds >= 0


def test_illegal_moves_are_refused_with_a_message_and_change_nothing(live_experiment, judge, other_judge):
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    before = snapshot(trial)
    with pytest.raises(MoveRefused, match="still speaking"):
        live_move(trial_id=trial.pk, judge=judge, action="ask", text="Too early?")
    assert snapshot(trial) == before
    generate_all(live_experiment)
    before = snapshot(trial)
    with pytest.raises(MoveRefused, match="after round 2"):
        live_move(trial_id=trial.pk, judge=judge, action="end")
    with pytest.raises(MoveRefused, match="empty"):
        live_move(trial_id=trial.pk, judge=judge, action="ask", text="   ")
    with pytest.raises(VerdictRefused, match="not finished"):
        verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability=0.7, rationale="early")
    with pytest.raises(MoveRefused, match="no such trial"):
        live_move(trial_id=trial.pk, judge=other_judge, action="continue")
    with pytest.raises(MoveRefused, match="unknown action"):
        live_move(trial_id=trial.pk, judge=judge, action="fly")
    assert snapshot(trial) == before


def test_the_judge_ends_after_the_minimum_rounds_then_gives_a_verdict_and_nothing_more(live_experiment, judge):
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    generate_all(live_experiment)
    live_move(trial_id=trial.pk, judge=judge, action="continue")
    generate_all(live_experiment)
    live_move(trial_id=trial.pk, judge=judge, action="end")
    trial.refresh_from_db()
    assert trial.ended_by_judge
    with pytest.raises(MoveRefused):
        live_move(trial_id=trial.pk, judge=judge, action="continue")
    verdict_submit(trial_id=trial.pk, judge=judge, chosen="B", probability=0.8, rationale="B was clearer")
    before = snapshot(trial)
    with pytest.raises(MoveRefused, match="already given a verdict"):
        live_move(trial_id=trial.pk, judge=judge, action="ask", text="After the verdict?")
    assert snapshot(trial) == before


def test_a_flipped_leaning_requires_another_round(live_experiment, judge):
    live_experiment.extra_round_after_flip = True
    live_experiment.min_rounds = 1
    live_experiment.save()
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    generate_all(live_experiment)
    live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="A", probability="0.8")
    live_move(trial_id=trial.pk, judge=judge, action="continue")
    generate_all(live_experiment)
    live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="B", probability="0.7")
    trial.refresh_from_db()
    assert trial.leanings == [[1, 0.8], [2, 0.3]]  # stored as the probability that A is correct
    state = selectors.judge_live_state(trial, list(trial.turns.all()))
    assert not state["can_end"] and "changed side" in state["end_blocked_reason"]
    with pytest.raises(MoveRefused, match="one more round"):
        live_move(trial_id=trial.pk, judge=judge, action="end")
    with pytest.raises(MoveRefused, match="between 0 and 1"):
        live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="A", probability="7")


def test_questions_are_refused_in_pregenerated_trials(ready_trial, judge):
    with pytest.raises(MoveRefused, match="not live"):
        live_move(trial_id=ready_trial.pk, judge=judge, action="ask", text="Hello?")
    assert not ready_trial.turns.filter(speaker="judge").exists()


def test_simultaneous_speeches_are_withheld_until_both_are_complete(live_experiment, judge, client):
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    a, b = trial.turns.order_by("speaker")
    Turn.objects.filter(pk=a.pk).update(status="done", text="A-FINISHED-FIRST", finished_at=timezone.now())
    Turn.objects.filter(pk=b.pk).update(status="running", partial_text="B-STILL-WRITING", claim_token="t")
    client.force_login(judge)
    for url in (reverse("judging:trial_state", args=[trial.pk]), reverse("judging:trial", args=[trial.pk])):
        body = client.get(url).content.decode()
        assert "A-FINISHED-FIRST" not in body and "B-STILL-WRITING" not in body
    Turn.objects.filter(pk=b.pk).update(status="done", text="B-DONE", finished_at=timezone.now())
    view = client.get(reverse("judging:trial_state", args=[trial.pk])).json()
    assert [s["text"] for s in view["transcript"]] == ["A-FINISHED-FIRST", "B-DONE"]
    assert "honest" not in str(view).lower() and "PASSAGE-SECRET" not in str(view)


def test_sequential_rounds_show_text_while_it_is_written(live_experiment, judge, client):
    live_experiment.turn_style = "sequential"
    live_experiment.save()
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    first = trial.turns.order_by("index").first()
    Turn.objects.filter(pk=first.pk).update(status="running", partial_text="Half a sentence", claim_token="t")
    client.force_login(judge)
    view = client.get(reverse("judging:trial_state", args=[trial.pk])).json()
    assert view["transcript"] == [
        {
            "speaker": first.speaker,
            "round": 1,
            "in_progress": True,
            "label": f"Debater {first.speaker}",
            "text": "Half a sentence",
            "index": first.index,  # where the live page appends its next characters
            "segments": [{"kind": "text", "text": "Half a sentence", "title": ""}],
        }
    ]
    assert view["state"]["speaking"] is True and view["state"]["can_ask"] is False


def test_live_turns_stream_partial_text_while_they_are_generated(live_experiment, monkeypatch):
    from inference import transformers_backend

    monkeypatch.setattr(transformers_backend, "PROGRESS_INTERVAL", 0.0)
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    seen = []
    real_update = Turn.objects.filter(pk=0).update.__func__

    def spy(queryset, **fields):
        if "partial_text" in fields:
            seen.append(fields["partial_text"])
        return real_update(queryset, **fields)

    monkeypatch.setattr(type(Turn.objects.filter(pk=0)), "update", spy)
    generate_batch(live_experiment.pk)
    assert len(seen) >= 4  # several partial writes per turn, not one at the end
    assert any(len(a) < len(b) and b.startswith(a[:3]) for a, b in zip(seen, seen[2:]))
    done = trial.turns.filter(status="done")
    assert done.count() == 2 and all(t.first_text_at and t.first_text_at <= t.finished_at for t in done)


def test_the_move_endpoint_answers_json_errors_and_404s(live_experiment, judge, other_judge, client):
    trial = first_trial(live_experiment)
    client.force_login(judge)
    open_trial(client, trial)  # starting it starts round 1
    url = reverse("judging:live_move", args=[trial.pk])
    response = client.post(url, {"action": "continue"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and "still speaking" in response.json()["error"]
    client.force_login(other_judge)
    assert client.post(url, {"action": "continue"}, HTTP_ACCEPT="application/json").status_code == 404


def test_a_queue_worker_generates_the_round_after_a_judge_question(live_experiment, judge):
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    while generate_batch(live_experiment.pk, queue="generation"):
        pass
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="And now?")
    # The judge's turn has no model: the queue filter must skip it, not fail on it.
    assert generate_batch(live_experiment.pk, queue="generation") == 2


def test_live_turns_are_released_sooner_than_pregenerated_ones(
    live_experiment, make_model_config, make_experiment, settings
):
    from datetime import timedelta

    from judging.services import experiment_launch

    pregenerated = make_experiment(make_model_config("other"), name="pre-generated", num_questions=1)
    experiment_launch(experiment=pregenerated)

    settings.LIVE_DEAD_CLAIM_SECONDS, settings.STALE_CLAIM_SECONDS = 15, 1800
    trial = first_trial(live_experiment)
    trial_open(trial=trial)
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    trial.turns.update(status="running", claimed_at=ten_minutes_ago, claim_token="dead")
    stuck = Turn.objects.filter(trial__experiment=pregenerated, status="pending").first()
    Turn.objects.filter(pk=stuck.pk).update(status="running", claimed_at=ten_minutes_ago, claim_token="dead")
    assert stale_claims_release() == 2  # the live trial's two turns, not the pre-generated one
    assert set(trial.turns.values_list("status", flat=True)) == {"pending"}
    assert Turn.objects.get(pk=stuck.pk).status == "running"
