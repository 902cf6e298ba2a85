"""Baselines in both orders: the model alone and model judges score the answers as laid out and swapped,
through a real (tiny) model, and decide by the average; a tie is recorded as a tie and counts as half
right; rows scored in one order before this keep working."""

import csv
import io

import pytest

from generation import baselines
from generation.backends import backend_for
from generation.worker import generate_batch
from judging import exports, selectors
from judging.baseline_verdicts import TIE_TOLERANCE, credit, verdict
from judging.models import ModelAnswer, ModelVerdict
from judging.services import experiment_launch, live_move, trial_open
from results import accuracy
from results import analysis as stats


class Recording:
    """The real backend, keeping every prompt it is asked to score."""

    def __init__(self, backend):
        self.backend, self.prompts = backend, []

    @property
    def device_name(self):
        return self.backend.device_name

    def choice_probabilities(self, messages, labels):
        self.prompts.append(messages[0]["content"])
        return self.backend.choice_probabilities(messages, labels)

    def __getattr__(self, name):  # the rest (context window, token counts) as the real backend's
        return getattr(self.backend, name)


@pytest.fixture
def recording(monkeypatch):
    """The backends the baselines get, each recording its prompts."""
    backends = []

    def record(config):
        backends.append(Recording(backend_for(config)))
        return backends[-1]

    monkeypatch.setattr(baselines, "backend_for", record)
    return backends


def probabilities(backend, prompt: str) -> list[float]:
    """The real model's label probabilities for a prompt, computed again."""
    return backend.choice_probabilities([{"role": "user", "content": prompt}], ["A", "B"])


def test_the_model_alone_scores_each_question_in_both_orders(sandwich_experiment, recording):
    assert baselines.score_model_alone(sandwich_experiment.pk) == 6
    (backend,) = recording
    answers = list(ModelAnswer.objects.filter(experiment=sandwich_experiment).order_by("question_id"))
    assert len(backend.prompts) == 2 * len(answers)  # two prompts per question, in question order
    for answer, laid_out, swapped in zip(answers, backend.prompts[::2], backend.prompts[1::2]):
        trial = sandwich_experiment.trials.filter(question=answer.question).order_by("id").first()
        a, b = trial.answer_text("A"), trial.answer_text("B")
        assert f"A: {a}\nB: {b}\n" in laid_out and f"A: {b}\nB: {a}\n" in swapped
        # Nothing else differs between the two prompts.
        assert laid_out.replace(f"A: {a}\nB: {b}\n", "") == swapped.replace(f"A: {b}\nB: {a}\n", "")
        # Stored: answer A's probability in each order, the label A's as laid out, the label B's swapped.
        assert answer.probability_a == pytest.approx(probabilities(backend.backend, laid_out)[0], rel=1e-6)
        assert answer.probability_a_swapped == pytest.approx(probabilities(backend.backend, swapped)[1], rel=1e-6)
        assert answer.chosen == verdict(answer.probability_a, answer.probability_a_swapped)
    assert baselines.score_model_alone(sandwich_experiment.pk) == 0 and len(backend.prompts) == 12  # idempotent


def test_a_question_whose_answers_read_the_same_is_a_tie(sandwich_experiment, recording):
    # The model cannot tell the answers apart: both orders are one prompt, so answer A gets the label A's
    # probability in one and the label B's in the other, which average to 0.5 up to float32 rounding.
    for question in sandwich_experiment.question_set.questions.all():
        question.choices = ["The same answer."] * len(question.choices)
        question.save()
    baselines.score_model_alone(sandwich_experiment.pk)
    laid_out, swapped = recording[0].prompts[:2]
    assert laid_out == swapped
    answers = ModelAnswer.objects.filter(experiment=sandwich_experiment)
    assert all(a.probability_a != 0.5 and a.chosen == "" and a.correct is None for a in answers)
    rows = list(exports.model_answer_rows([sandwich_experiment.pk]))
    assert all(r["verdict"] is None and r["correct"] is None and r["orders_scored"] == 2 for r in rows)
    assert all(abs(r["probability_a_averaged"] - 0.5) <= TIE_TOLERANCE for r in rows)
    # Ties count as half right in the sandwiching number "model alone".
    data = accuracy.Judged([], rows)
    assert data.share(data.model_alone()).value == pytest.approx(0.5)


def test_a_model_judge_scores_the_transcript_in_both_orders(ready_trial, make_model_config, tiny_model_dir, recording):
    judge_model = make_model_config(tiny_model_dir, name="judge model")
    assert baselines.judge_with_model(ready_trial.experiment_id, judge_model) == 1
    (backend,) = recording
    laid_out, swapped = backend.prompts
    v = ModelVerdict.objects.get(trial=ready_trial)
    assert (v.prompt, v.prompt_swapped) == (laid_out, swapped)
    a, b = ready_trial.answer_text("A"), ready_trial.answer_text("B")
    assert f"A: {a}\nB: {b}\n" in laid_out and f"A: {b}\nB: {a}\n" in swapped
    # Each debater is named by the letter its answer is shown under; its words are as written.
    for speech in ready_trial.turns.all():
        other = "B" if speech.speaker == "A" else "A"
        assert f"Debater {speech.speaker}: {speech.text}" in laid_out
        assert f"Debater {other}: {speech.text}" in swapped
    assert v.probability_a == pytest.approx(probabilities(backend.backend, laid_out)[0], rel=1e-6)
    assert v.probability_a_swapped == pytest.approx(probabilities(backend.backend, swapped)[1], rel=1e-6)
    assert v.chosen == verdict(v.probability_a, v.probability_a_swapped)


def test_the_swapped_view_renames_whom_the_judge_asked(make_model_config, make_experiment, tiny_model_dir, judge):
    experiment = make_experiment(make_model_config(tiny_model_dir), mode="live", num_questions=1, rounds=2)
    experiment_launch(experiment=experiment)
    trial = experiment.trials.get()
    trial_open(trial=trial)
    while generate_batch(experiment.pk):
        pass
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="Which line?", addressed_to=("A",))
    turns = list(trial.turns.all())

    def labels(swapped):
        return {s["label"] for s in selectors.judge_visible_speeches(trial, turns, answers_swapped=swapped)}

    assert labels(False) == {"Debater A", "Debater B", "You asked Debater A"}
    assert labels(True) == {"Debater A", "Debater B", "You asked Debater B"}
    view = selectors.judge_view_of_trial(trial, answers_swapped=True)
    assert view["answers"] == {"A": trial.answer_text("B"), "B": trial.answer_text("A")}


@pytest.mark.parametrize(
    ("p_a", "p_a_swapped", "chosen"),
    [
        (0.8, 0.4, "A"),  # averaged 0.6
        (0.8, 0.1, "B"),  # A as laid out only because it was shown first: B on average
        (0.7, 0.3, ""),  # a model that follows the position alone: a tie
        (0.5 + TIE_TOLERANCE / 2, 0.5, ""),  # float rounding around 0.5 is a tie too
        (0.5 + 4 * TIE_TOLERANCE, 0.5, "A"),  # beyond the tolerance it is not
        (0.5, None, ""),  # one order at exactly 0.5: a tie (it went to A before both orders)
        (0.3, None, "B"),  # one order: decided by it, as before
    ],
)
def test_the_verdict_comes_from_the_average_of_both_orders(p_a, p_a_swapped, chosen):
    assert verdict(p_a, p_a_swapped) == chosen


def test_ties_count_half_and_single_order_rows_still_count(ready_trial, make_model_config):
    experiment = ready_trial.experiment
    trials = list(experiment.trials.order_by("question_id"))  # the exports' order
    assert len({t.question_id for t in trials}) == len(trials) == 4

    def toward_honest(trial, p):  # answer A's probability when the correct answer gets p
        return p if trial.honest_side == "A" else 1 - p

    # The correct answer's probability in each order, per question: a tie, a single-order row from before
    # both orders (right), both orders right, both wrong.
    cases = [(0.7, 0.3), (0.9, None), (0.8, 0.6), (0.2, 0.45)]
    for trial, (p, p_swapped) in zip(trials, cases):
        ModelAnswer.objects.create(
            experiment=experiment,
            question=trial.question,
            model_config=experiment.debater_model,
            answer_a_index=trial.answer_a_index,
            answer_b_index=trial.answer_b_index,
            honest_side=trial.honest_side,
            probability_a=toward_honest(trial, p),
            probability_a_swapped=None if p_swapped is None else toward_honest(trial, p_swapped),
        )
    rows = list(exports.model_answer_rows([experiment.pk]))
    assert [r["correct"] for r in rows] == [None, True, True, False]
    assert [r["orders_scored"] for r in rows] == [2, 1, 2, 2]
    tie, single = rows[0], rows[1]
    assert tie["verdict"] is None and tie["probability_a_averaged"] == pytest.approx(0.5)
    assert single["probability_a_swapped"] is None and single["probability_a_averaged"] == single["probability_a"]
    assert single["verdict"] == single["honest_side"]
    expected = sum(credit(r["correct"]) for r in rows) / len(rows)
    assert expected == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    data = accuracy.Judged([], rows)
    assert data.share(data.model_alone()).value == pytest.approx(expected)

    # The CSV export: a tie's verdict and correct cells are empty, a single order's swapped cell too.
    csv_rows = list(csv.DictReader(io.StringIO("".join(exports.iter_export("model_answers", "csv", [experiment.pk])))))
    assert (csv_rows[0]["verdict"], csv_rows[0]["correct"], csv_rows[0]["orders_scored"]) == ("", "", "2")
    assert (csv_rows[1]["probability_a_swapped"], csv_rows[1]["orders_scored"]) == ("", "1")

    # Model judges: the same rules, and the analysis counts ties as half right and says how many.
    judge_model = make_model_config("judge", name="judge model")
    for trial, (p, p_swapped) in zip(trials[:2], cases[:2]):
        ModelVerdict.objects.create(
            trial=trial,
            judge_model=judge_model,
            probability_a=toward_honest(trial, p),
            probability_a_swapped=None if p_swapped is None else toward_honest(trial, p_swapped),
            prompt="p",
        )
    verdict_rows = list(exports.model_verdict_rows([experiment.pk]))
    by_trial = {r["trial_id"]: r for r in verdict_rows}
    assert [(by_trial[t.pk]["correct"], by_trial[t.pk]["orders_scored"]) for t in trials[:2]] == [(None, 2), (True, 1)]
    result = stats.model_judge_accuracy([], verdict_rows)["judge model"]
    assert result["all"].value == pytest.approx(0.75) and result["ties"] == 1
