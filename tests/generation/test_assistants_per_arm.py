"""Assistant per arm in sandwiching: one experiment whose misleading arm is split into a prompted and a
fine-tuned assistant (two configurations, each on its own queue). Each gets an equal share of the trials,
balanced per judge and per question; each speaks in its own trials; each answers every sandwiching
question alone (a real tiny model per configuration), on its own queue; the analysis reports each."""

import collections

import pytest

from debate_platform.celery import app
from generation import tasks
from generation.backends import backend_for
from generation.worker import generate_batch
from judging import exports, selectors
from judging.assignment import QuestionInfo, plan_trials
from judging.models import LineupMember, ModelAnswer, Trial, Turn, Verdict
from judging.protocols.prompts import build_model_alone_messages
from judging.services import design_cells, experiment_launch, failed_trials_replace, trial_open, trial_skip
from results import accuracy

SANDWICH = ["naive", "assisted-honest", "assisted-misleading"]
QUESTIONS, JUDGMENTS, JUDGES = 6, 4, 4


@pytest.fixture(scope="session")
def other_tiny_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model's architecture and tokenizer with other random weights: a stand-in for a fine-tuned
    model, so the two configurations' answers differ."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(tiny_model_dir))
    path = tmp_path_factory.mktemp("tiny-llama-other")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return path


@pytest.fixture
def split(make_model_config, make_experiment, tiny_model_dir, other_tiny_model_dir, django_user_model):
    """A draft sandwiching experiment: the honest assistant is the debater model ("prompted"); the
    misleading arm's line-up is "prompted" and "fine-tuned"."""
    prompted = make_model_config(tiny_model_dir, name="prompted", queue="prompted", max_new_tokens=6)
    fine_tuned = make_model_config(other_tiny_model_dir, name="fine-tuned", queue="fine-tuned", max_new_tokens=6)
    judges = [django_user_model.objects.create_user(username=f"judge-{i}") for i in range(JUDGES)]
    experiment = make_experiment(
        prompted,
        judges=judges,
        conditions=SANDWICH,
        mode="live",
        rounds=2,
        num_questions=QUESTIONS,
        judgments_per_question=JUDGMENTS,
    )
    for config in (prompted, fine_tuned):
        LineupMember.objects.create(experiment=experiment, arm="assisted-misleading", model_config=config)
    return experiment, prompted, fine_tuned


def cell(trial) -> tuple:
    """A trial's design cell: its condition and the configuration that assists in it."""
    return (trial.condition, trial.honest_config_id or trial.adversary_config_id)


def assert_balanced(trials, cells: set):
    """Every cell an equal share; each judge's cells even (within one); every cell once on every question."""
    total = collections.Counter(cell(t) for t in trials)
    assert set(total) == cells and len(set(total.values())) == 1, total
    for judge in {t.judge_id for t in trials}:
        own = collections.Counter(cell(t) for t in trials if t.judge_id == judge)
        assert max(own.values()) - min(own.get(c, 0) for c in cells) <= 1, own
    for question in {t.question_id for t in trials}:
        assert sorted(cell(t) for t in trials if t.question_id == question) == sorted(cells)


def test_each_misleading_configuration_gets_an_equal_share_balanced_per_judge_and_question(split):
    experiment, prompted, fine_tuned = split
    cells = {
        ("naive", None),
        ("assisted-honest", prompted.pk),
        ("assisted-misleading", prompted.pk),
        ("assisted-misleading", fine_tuned.pk),
    }
    assert experiment_launch(experiment=experiment) == QUESTIONS * JUDGMENTS
    trials = list(experiment.trials.all())
    assert_balanced(trials, cells)
    # The speaking configuration sits on the assistant's side: the honest one's, or the wrong answer's.
    for t in trials:
        if t.condition == "assisted-honest":
            assert (t.honest_config_id, t.adversary_config_id) == (prompted.pk, None)
            assert t.assistant_side == t.honest_side
        elif t.condition == "assisted-misleading":
            assert t.honest_config_id is None and t.assistant_side != t.honest_side
            assert t.config_for(t.assistant_side).pk == t.adversary_config_id
        else:
            assert t.honest_config_id is t.adversary_config_id is None
    rows = list(exports.trial_rows([experiment.pk]))
    assert collections.Counter(r["adversarial_config"] for r in rows if r["condition"] == "assisted-misleading") == {
        "prompted": QUESTIONS,
        "fine-tuned": QUESTIONS,
    }
    # The planner is pure: the same balance for other seeds of the same design.
    questions = [
        QuestionInfo(id=q.id, n_choices=len(q.choices), correct_index=q.correct_index)
        for q in experiment.question_set.questions.all()
    ]
    judge_ids = sorted(experiment.judges.values_list("id", flat=True))
    for seed in range(12):
        plans = plan_trials(
            questions,
            judge_ids,
            num_questions=QUESTIONS,
            judgments_per_question=JUDGMENTS,
            seed=seed,
            arms=SANDWICH,
            cells=design_cells(experiment),
        )
        as_trials = [
            Trial(
                question_id=p.question_id,
                judge_id=p.judge_id,
                condition=p.condition,
                honest_config_id=p.honest_config,
                adversary_config_id=p.adversary_config,
            )
            for p in plans
        ]
        assert_balanced(as_trials, cells)
        for config in (prompted.pk, fine_tuned.pk):  # each misleading assistant steers toward A as often as B
            sides = collections.Counter(
                p.speaker_side for p in plans if p.condition == "assisted-misleading" and p.adversary_config == config
            )
            assert abs(sides["A"] - sides["B"]) <= JUDGES, (seed, sides)


def test_each_trial_is_spoken_by_its_configuration_on_its_queue(split):
    experiment, prompted, fine_tuned = split
    experiment_launch(experiment=experiment)
    queues = {prompted.pk: "prompted", fine_tuned.pk: "fine-tuned"}
    spoken = collections.Counter()
    for judge in experiment.judges.all():
        while (trial := selectors.judge_queue(judge).first()) is not None:
            if trial.condition != "naive":
                trial_open(trial=trial)
                config = trial.config_for(trial.assistant_side)
                other = next(q for pk, q in queues.items() if pk != config.pk)
                assert generate_batch(experiment.pk, queue=other) == 0  # a worker of the other model takes nothing
                assert generate_batch(experiment.pk, queue=queues[config.pk]) == 1
                (turn,) = trial.turns.all()
                assert turn.status == Turn.Status.DONE and turn.text
                assert turn.model_config_id == config.pk and turn.model_settings["config_name"] == config.name
                spoken[(trial.condition, config.name)] += 1
            trial_skip(trial_id=trial.pk, judge=judge, reason="each assistant's first turn checked")
    assert spoken == {
        ("assisted-honest", "prompted"): QUESTIONS,
        ("assisted-misleading", "prompted"): QUESTIONS,
        ("assisted-misleading", "fine-tuned"): QUESTIONS,
    }


@pytest.fixture
def sent(monkeypatch):
    """Model-alone messages, kept here: [(args, queue)]."""
    messages = []
    monkeypatch.setattr(
        tasks.model_alone_baseline, "apply_async", lambda args, queue: messages.append((args, queue)), raising=False
    )
    return messages


def deliver(messages) -> int:
    """Run each kept message as its queue's worker would; returns the answers created."""
    created = sum(tasks.model_alone_baseline.apply(args=args).get() for args, _ in messages)
    messages.clear()
    return created


def test_the_model_alone_baseline_is_computed_per_configuration_on_its_queue(
    split, sent, django_capture_on_commit_callbacks
):
    experiment, prompted, fine_tuned = split
    with django_capture_on_commit_callbacks(execute=True):
        experiment_launch(experiment=experiment)
    # One message per configuration that assists, to that configuration's queue.
    assert sorted(sent) == sorted([([experiment.pk, c.pk], c.queue) for c in (prompted, fine_tuned)])
    assert deliver(sent) == 2 * QUESTIONS
    answers = ModelAnswer.objects.filter(experiment=experiment)
    by_config = collections.Counter(answers.values_list("model_config__name", flat=True))
    assert by_config == {"prompted": QUESTIONS, "fine-tuned": QUESTIONS}
    for question in experiment.trials.values_list("question", flat=True).distinct():
        first = experiment.trials.filter(question=question).order_by("id").first()
        pair = answers.filter(question=question).select_related("model_config", "question")
        for answer in pair:  # the same layout for both (the question's first trial), scored by its own model
            assert (answer.answer_a_index, answer.honest_side) == (first.answer_a_index, first.honest_side)
            assert answer.model_settings["config_name"] == answer.model_config.name
            a, b = first.answer_text("A"), first.answer_text("B")
            messages = build_model_alone_messages(
                question=answer.question.text, answer_a=a, answer_b=b, passage=answer.question.passage
            )
            p_a, _ = backend_for(answer.model_config).choice_probabilities(messages, ["A", "B"])
            assert answer.probability_a == pytest.approx(p_a, rel=1e-5)
        assert pair[0].probability_a != pytest.approx(pair[1].probability_a, abs=1e-6)  # two different models
    rows = list(exports.model_answer_rows([experiment.pk]))
    assert collections.Counter(r["model_config"] for r in rows) == {"prompted": QUESTIONS, "fine-tuned": QUESTIONS}
    assert list(rows[0]) == list(exports.MODEL_ANSWER_COLUMNS)

    # Idempotent; and a message queued by the previous release (the experiment alone) is handed on to
    # each configuration's queue.
    app.loader.import_default_modules()
    assert app.tasks["models_runner.tasks.model_alone_baseline"].apply(args=[experiment.pk]).get() == 0
    assert sorted(sent) == sorted([([experiment.pk, c.pk], c.queue) for c in (prompted, fine_tuned)])
    assert deliver(sent) == 0

    # A failed trial replaced on a new question: every configuration answers that question too.
    trial = experiment.trials.filter(condition="assisted-misleading", adversary_config=fine_tuned).first()
    experiment.trials.filter(question=trial.question_id).update(status=Trial.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        done = failed_trials_replace(experiment_id=experiment.pk)
    assert done.new_question == JUDGMENTS
    new = set(experiment.trials.filter(replaces__isnull=False).values_list("question", flat=True))
    assert len(sent) == 2 and deliver(sent) == 2 * len(new)
    for config in (prompted, fine_tuned):
        assert new <= set(answers.filter(model_config=config).values_list("question", flat=True))


def test_the_analysis_reports_each_assistant_configuration(split, sent, admin_client):
    experiment, prompted, fine_tuned = split
    experiment_launch(experiment=experiment)
    tasks.enqueue_model_alone(experiment.pk)
    deliver(sent)
    # Judges: right half the time alone, always with honest help, misled by the fine-tuned assistant
    # on two questions in three, never by the prompted one.
    for i, trial in enumerate(experiment.trials.order_by("id")):
        config = trial.honest_config_id or trial.adversary_config_id
        right = {
            "naive": i % 2 == 0,
            "assisted-honest": True,
            "assisted-misleading": config == prompted.pk or i % 3 == 0,
        }[trial.condition]
        wrong = "B" if trial.honest_side == "A" else "A"
        Verdict.objects.create(
            trial=trial,
            judge=trial.judge,
            chosen=trial.honest_side if right else wrong,
            probability=0.8,
            rationale="r",
            seconds_on_page=30,
        )
    experiment.trials.update(status=Trial.Status.JUDGED)

    data = accuracy.Judged(exports.trial_rows([experiment.pk]), exports.model_answer_rows([experiment.pk]))
    result = accuracy.sandwich(data, alpha=0.05, margin=0.05)
    assert result.variants == ["fine-tuned", "prompted"]
    misleading = {c: result.numbers[f"human + misleading assistant ({c})"] for c in result.variants}
    assert misleading["prompted"].value == 1.0 and misleading["fine-tuned"].value < 0.5
    assert result.numbers["human + honest assistant (prompted)"].value == 1.0
    assert "human + honest assistant (fine-tuned)" not in result.numbers  # it assists in no honest trial
    answers = ModelAnswer.objects.filter(experiment=experiment)
    for config in (prompted, fine_tuned):
        own = [a.correct for a in answers.filter(model_config=config)]
        expected = sum(0.5 if c is None else float(c) for c in own) / len(own)
        assert result.numbers[f"model alone ({config.name})"].value == pytest.approx(expected)
    # The arm's "model alone" is the honest assistant's: what the helpful claim weighs honest help against.
    assert result.numbers["model alone"].value == result.numbers["model alone (prompted)"].value
    # The misleading arm has two configurations: each gets its own robustness test; the honest arm has one,
    # whose test is the arm's.
    assert [(d.key, d.config) for d in result.decisions] == [
        ("sandwich-helpful", ""),
        ("sandwich-robust", ""),
        ("sandwich-robust", "fine-tuned"),
        ("sandwich-robust", "prompted"),
    ]
    assert result.decisions[2].tests[0].name == "misleading (fine-tuned) − judge alone > −5 pts"
    assert result.decisions[2].tests[0].estimate.value == pytest.approx(
        misleading["fine-tuned"].value - result.numbers["human alone"].value
    )

    page = admin_client.get(f"/results/analysis/?experiment={experiment.pk}").content.decode()
    for label in (
        "human + misleading assistant (prompted)",
        "human + misleading assistant (fine-tuned)",
        "model alone (prompted)",
        "model alone (fine-tuned)",
        "(assistant: fine-tuned)",
        'id="sandwich-variants"',
    ):
        assert label in page, label
