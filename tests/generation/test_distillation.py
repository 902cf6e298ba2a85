"""Context distillation of a LoRA adversary, end to end on a tiny real model."""

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.backends import backend_for
from generation.management.commands.train_adversary import adversary_prompt
from generation.worker import generate_batch
from inference import distillation
from judging.models import ModelConfig
from judging.services import experiment_launch


def test_examples_pair_a_neutral_prompt_with_the_prompted_wrong_answer_argument(
    make_model_config, question_set, tiny_model_dir
):
    base = make_model_config(tiny_model_dir, max_new_tokens=12)
    questions = list(question_set.questions.order_by("id")[:3])
    examples = distillation.build_examples(backend_for(base), questions, adversary_prompt, max_new_tokens=12)
    assert len(examples) == 3
    for (messages, target), q in zip(examples, questions):
        prompt = messages[0]["content"]
        assert q.text in prompt and q.passage in prompt and target
        assert "argues that" not in prompt and "Your answer" not in prompt  # the instruction is gone
        shown = re.findall(r"Answer [AB]: (.*)", prompt)
        assert q.choices[q.correct_index] in shown and len(shown) == 2  # the correct answer and one wrong one


def test_the_command_trains_an_adapter_that_debaters_then_use(
    make_model_config, make_experiment, question_set, tiny_model_dir, tmp_path
):
    from io import StringIO

    base = make_model_config(
        tiny_model_dir,
        name="tiny base",
        max_new_tokens=12,
        temperature=0.7,
        repetition_penalty=1.3,
        consultant_system_prompt="You are a consultant; be brief.",
    )
    out = StringIO()
    call_command(
        "train_adversary",
        "tiny base",
        question_set.name,
        "--output",
        str(tmp_path / "adapter"),
        "--questions",
        "4",
        "--epochs",
        "4",
        "--lr",
        "0.01",
        "--rank",
        "4",
        "--max-new-tokens",
        "16",
        stdout=out,
    )
    before, after = map(
        float, re.search(r"loss on the targets: ([\d.]+) before, ([\d.]+) after", out.getvalue()).groups()
    )
    assert after < before  # it learned the adversarial arguments
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    adversary = ModelConfig.objects.get(name="tiny base adversary")
    assert adversary.adapter_path == str(tmp_path / "adapter") and adversary.model_name == base.model_name
    # Cloned whole: only the adapter differs from the base.
    differing = {
        f.name
        for f in ModelConfig._meta.concrete_fields
        if getattr(adversary, f.name) != getattr(base, f.name) and f.name not in ("id", "name", "created_at")
    }
    assert differing == {"adapter_path"}
    experiment = make_experiment(adversary, num_questions=1, rounds=1)
    experiment_launch(experiment=experiment)
    assert generate_batch(experiment.pk) == 2
    assert experiment.trials.get().turns.filter(status="done").count() == 2
    assert type(backend_for(adversary)._model).__name__.startswith("Peft")


def test_bad_arguments_are_clear_errors(make_model_config, question_set):
    make_model_config("m", name="server", backend="openai", api_base="http://x/v1")
    with pytest.raises(CommandError, match="no model configuration"):
        call_command("train_adversary", "nope", question_set.name, "--output", "/tmp/x")
    with pytest.raises(CommandError, match="must be a transformers model"):
        call_command("train_adversary", "server", question_set.name, "--output", "/tmp/x")


def test_the_adversary_clones_every_field_of_its_base(make_model_config, question_set, tmp_path, monkeypatch):
    """Every field of the base set away from its default (sampling, penalty, both prompt pairs, best-of-N
    and its scoring model, queue): the adversary differs from the base by its name and adapter only.
    Training is stubbed here; the test above trains for real."""
    judge = make_model_config("judge-model", name="scorer")
    base = make_model_config(
        "base-model",
        name="tuned base",
        temperature=0.9,
        top_p=0.8,
        repetition_penalty=1.25,
        max_new_tokens=77,
        context_window=1234,
        system_prompt="System {name}.",
        prompt_template="Argue {my_answer} for {question}.",
        consultant_system_prompt="Consultant {name}.",
        consultant_prompt_template="Consult on {question}: {my_answer}.",
        best_of_n=4,
        best_of_n_judge=judge,
        queue="gpu-7",
        api_base="http://unused/v1",
    )
    defaults = {f.name for f in ModelConfig._meta.concrete_fields if getattr(base, f.name) == f.get_default()}
    assert defaults <= {"id", "adapter_path", "created_at", "backend"}, defaults  # the test sets every field
    monkeypatch.setattr("generation.management.commands.train_adversary.backend_for", lambda config: None)
    monkeypatch.setattr(distillation, "build_examples", lambda *args, **kwargs: [("messages", "target")])
    monkeypatch.setattr(
        distillation,
        "train_lora",
        lambda backend, examples, output, **kwargs: distillation.DistillationReport(
            examples=1, loss_before=2.0, loss_after=1.0, adapter_path=output
        ),
    )
    call_command(
        "train_adversary", "tuned base", question_set.name, "--output", str(tmp_path / "a"), stdout=io.StringIO()
    )
    adversary = ModelConfig.objects.get(name="tuned base adversary")
    differing = {
        f.name for f in ModelConfig._meta.concrete_fields if getattr(adversary, f.name) != getattr(base, f.name)
    }
    assert differing == {"id", "name", "adapter_path", "created_at"}
    assert adversary.adapter_path == str(tmp_path / "a") and adversary.best_of_n_judge == judge
