"""Generating turns with a real (tiny) transformers model: batches, claims, failures, recovery."""

from datetime import timedelta

import pytest
from django.utils import timezone

from generation.backends import get_backend
from generation.best_of_n import candidate_score
from generation.requests import request_for
from generation.selection import ready_turn_ids, trials_with_pending_turns
from generation.worker import generate_batch
from inference import GenerationRequest
from judging.models import MAX_ATTEMPTS, Trial, Turn
from judging.services import experiment_launch, failed_turns_retry, stale_claims_release


@pytest.fixture
def launched(make_model_config, make_experiment, tiny_model_dir):
    experiment = make_experiment(make_model_config(tiny_model_dir), num_questions=3)
    experiment_launch(experiment=experiment)
    return experiment


def run_until_done(experiment, max_batches=20):
    for _ in range(max_batches):
        if not generate_batch(experiment.pk):
            break


def test_it_generates_every_turn_in_protocol_order_and_makes_trials_judgeable(launched):
    run_until_done(launched)
    trials = Trial.objects.filter(experiment=launched)
    assert {t.status for t in trials} == {Trial.Status.READY}
    for turn in Turn.objects.filter(trial__experiment=launched):
        assert turn.status == Turn.Status.DONE and turn.text
        assert turn.tokens_in > 0 and 0 < turn.tokens_out <= turn.model_settings["max_new_tokens_used"]
        assert turn.wall_seconds > 0 and turn.attempts == 1
        assert 0 < turn.ttft_seconds <= turn.wall_seconds and turn.queue_wait_seconds >= 0
        assert 1 <= turn.model_settings["mean_batch_size"] <= turn.model_settings["batch_size"]
        assert turn.model_settings["seed_used"] == turn.model_settings["seed"]  # seeded per turn
        assert turn.model_settings["model_name"] == str(launched.debater_model.model_name)
        assert turn.model_settings["device"] == "cpu"
        assert len(turn.text) <= launched.char_limit
        assert "Debater " + turn.speaker in turn.prompt  # the prompt names the speaker
        question = turn.trial.question
        assert question.text in turn.prompt and question.passage in turn.prompt  # debaters see the passage
        assert turn.trial.answer_text(turn.speaker) in turn.prompt


def test_round_two_prompts_contain_round_one_but_never_the_same_rounds_opponent(launched):
    run_until_done(launched)
    trial = Trial.objects.filter(experiment=launched).first()
    turns = {(t.round, t.speaker): t for t in trial.turns.all()}
    assert turns[(1, "B")].text in turns[(2, "A")].prompt
    assert turns[(1, "A")].text in turns[(2, "B")].prompt
    assert turns[(2, "B")].text not in turns[(2, "A")].prompt  # simultaneous: hidden


def test_the_first_batch_runs_all_first_round_turns_together(launched):
    written = generate_batch(launched.pk, batch_size=16)
    assert written == 6  # 3 trials x 2 simultaneous debaters; round 2 waits for round 1
    batch_sizes = set(Turn.objects.filter(status="done").values_list("model_settings__batch_size", flat=True))
    assert batch_sizes == {6}


def test_a_redelivered_task_never_writes_a_turn_twice(launched):
    ids = ready_turn_ids(launched.pk, limit=2)
    token = Turn.objects.filter(id__in=ids).claim()
    assert Turn.objects.held(token).count() == 2
    # A second delivery of the same work finds the turns claimed and gets nothing.
    token2 = Turn.objects.filter(id__in=ids).claim()
    assert Turn.objects.held(token2).count() == 0
    # A late writer with a stale claim (its turn was requeued and re-claimed) writes nothing.
    Turn.objects.filter(pk=ids[0]).update(claim_token="someone-else")
    assert Turn.objects.filter(pk=ids[0]).held(token).update(text="dup") == 0


def test_turns_of_a_worker_killed_mid_batch_are_requeued_and_completed(launched):
    token = Turn.objects.filter(id__in=ready_turn_ids(launched.pk, limit=4)).claim()
    Turn.objects.filter(claim_token=token).update(claimed_at=timezone.now() - timedelta(hours=2))
    assert generate_batch(launched.pk) == 2  # the claimed ones are not ready to anyone else
    assert stale_claims_release(older_than_seconds=600) == 4
    run_until_done(launched)
    assert Turn.objects.filter(trial__experiment=launched).exclude(status="done").count() == 0


def test_a_failing_model_marks_turns_failed_after_retries_and_can_be_retried(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("/nonexistent/model/folder"), num_questions=1)
    experiment_launch(experiment=experiment)
    for _ in range(MAX_ATTEMPTS):
        assert generate_batch(experiment.pk) == 0
    failed = Turn.objects.filter(trial__experiment=experiment, status="failed")
    assert failed.count() == 2 and "nonexistent" in failed.first().error
    assert Trial.objects.get(experiment=experiment).status == Trial.Status.FAILED
    assert failed_turns_retry(experiment_id=experiment.pk) == 2
    assert Trial.objects.get(experiment=experiment).status == Trial.Status.GENERATING
    pending = Turn.objects.filter(status=Turn.Status.PENDING, trial__in=trials_with_pending_turns(experiment.pk))
    assert pending.count() == 4


def test_the_backend_generates_a_batch_of_prompts(tiny_model_dir):
    backend = get_backend("transformers", str(tiny_model_dir))
    requests = [
        GenerationRequest(
            messages=[{"role": "user", "content": f"Say {w}"}], max_new_tokens=5, temperature=0.0, top_p=1.0
        )
        for w in ("one", "two words here")
    ]
    results = backend.generate(requests)
    assert len(results) == 2
    assert results[0].tokens_in < results[1].tokens_in
    assert all(0 < r.tokens_out <= 5 for r in results)
    assert "Say two words here" in results[1].prompt_text


def test_a_task_only_claims_turns_of_models_served_on_its_queue(launched):
    from judging.models import ModelConfig

    ModelConfig.objects.filter(pk=launched.debater_model_id).update(queue="big-model")
    assert generate_batch(launched.pk, queue="generation") == 0  # not this worker's model
    assert generate_batch(launched.pk, queue="big-model") == 6


def test_generation_is_sent_to_the_models_queue(launched):
    from unittest import mock

    from generation.tasks import enqueue_generation

    with mock.patch("generation.tasks.generate_turns.apply_async") as send:
        enqueue_generation(launched.pk)
    send.assert_called_once_with(args=[launched.pk, "generation"], countdown=None, queue="generation")


def test_best_of_n_keeps_the_candidate_the_scoring_model_prefers_and_records_all(
    make_model_config, make_experiment, tiny_model_dir
):
    scorer = make_model_config(tiny_model_dir, name="scorer")
    config = make_model_config(tiny_model_dir, name="bo3", temperature=1.0, best_of_n=3, best_of_n_judge=scorer)
    experiment = make_experiment(config, num_questions=2, rounds=1)
    experiment_launch(experiment=experiment)
    run_until_done(experiment)
    for turn in Turn.objects.filter(trial__experiment=experiment):
        assert len(turn.candidates) == 3
        kept = [c for c in turn.candidates if c["kept"]]
        assert len(kept) == 1 and kept[0]["text"] == turn.text
        assert kept[0]["score"] == max(c["score"] for c in turn.candidates)
        assert all(0 < c["score"] < 1 for c in turn.candidates)
        assert len({c["text"] for c in turn.candidates}) > 1  # sampled, not three copies
        assert turn.model_settings["best_of_n"] == 3 and turn.model_settings["batch_size"] == 12


def test_best_of_n_needs_sampling(db):
    from django.core.exceptions import ValidationError

    from judging.models import ModelConfig

    with pytest.raises(ValidationError, match="temperature above 0"):
        ModelConfig(name="x", model_name="m", temperature=0, best_of_n=4).full_clean()


def test_best_of_n_scoring_never_reads_the_opponents_simultaneous_speech(launched):
    from django.utils import timezone

    trial = Trial.objects.filter(experiment=launched).first()
    a, b = trial.turns.filter(round=1).order_by("speaker")
    Turn.objects.filter(pk=a.pk).update(status="done", text="A-ROUND-ONE-SECRET", finished_at=timezone.now())

    class RecordingScorer:  # records what the scoring model is shown
        def choice_probabilities(self, messages, labels):
            self.seen = messages[0]["content"]
            return [0.4, 0.6]

    scorer = RecordingScorer()
    b.refresh_from_db()
    assert candidate_score(scorer, b, "B's candidate") == 0.6
    assert "B's candidate" in scorer.seen and "A-ROUND-ONE-SECRET" not in scorer.seen


def test_the_static_cache_is_used_on_cuda_only_by_default_and_works_when_forced(tiny_model_dir, settings):
    from inference.transformers_backend import TransformersBackend, speed_options

    assert speed_options("cpu") == {} and speed_options("cuda:0") == {"cache_implementation": "static"}
    assert speed_options("cuda:0", "off") == {} and speed_options("cpu", "on") == {"cache_implementation": "static"}
    backend = TransformersBackend(
        str(tiny_model_dir), cache_dir=settings.MODEL_CACHE_DIR, device="cpu", static_cache="on"
    )
    [result] = backend.generate(
        [
            GenerationRequest(
                messages=[{"role": "user", "content": "hi"}],
                max_new_tokens=6,
                min_new_tokens=6,
                temperature=0.0,
                top_p=1.0,
            )
        ]
    )
    assert result.tokens_out == 6


def test_the_repetition_penalty_reaches_generation_and_is_recorded(make_model_config, make_experiment, tiny_model_dir):
    config = make_model_config(tiny_model_dir, repetition_penalty=1.3)
    experiment = make_experiment(config, num_questions=1, rounds=1)
    experiment_launch(experiment=experiment)
    requests = [request_for(t) for t in Turn.objects.filter(trial__experiment=experiment)]
    assert {r.repetition_penalty for r in requests} == {1.3}
    run_until_done(experiment)
    assert {t.model_settings["repetition_penalty"] for t in Turn.objects.filter(trial__experiment=experiment)} == {1.3}
