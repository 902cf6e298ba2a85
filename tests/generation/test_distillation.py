"""Context distillation of a LoRA adversary, end to end on a tiny real model."""

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
