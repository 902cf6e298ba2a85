from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.backends import backend_for
from inference import distillation
from judging.management.lookup import by_id_or_name
from judging.models import ModelConfig, QuestionSet
from judging.protocols.prompts import DEFAULT_DEBATER_TEMPLATE, DEFAULT_SYSTEM_PROMPT, build_debater_messages


class Command(BaseCommand):
    help = (
        "Train a LoRA adversary by context distillation: the base model's prompted arguments for "
        "incorrect answers become targets for prompts without that instruction (inference/distillation.py). "
        "Saves the adapter and a model configuration that uses it."
    )

    def add_arguments(self, parser):
        parser.add_argument("base_config", help="Model configuration (id or name) to start from (transformers).")
        parser.add_argument("question_set", help="Question set (name) to distil on.")
        parser.add_argument("--output", required=True, help="Folder for the adapter.")
        parser.add_argument("--name", help="Name of the new model configuration (default: '<base> adversary').")
        parser.add_argument("--questions", type=int, default=32)
        parser.add_argument("--epochs", type=int, default=2)
        parser.add_argument("--lr", type=float, default=2e-4)
        parser.add_argument("--rank", type=int, default=8)
        parser.add_argument("--max-new-tokens", type=int, default=96)
        parser.add_argument("--seed", type=int, default=0)

    def handle(
        self,
        *args,
        base_config,
        question_set,
        output,
        name,
        questions,
        epochs,
        lr,
        rank,
        max_new_tokens,
        seed,
        **options,
    ):
        base = by_id_or_name(ModelConfig, base_config, "model configuration")
        if base.backend != ModelConfig.Backend.TRANSFORMERS or base.adapter_path:
            raise CommandError("the base must be a transformers model without an adapter")
        qs = QuestionSet.objects.filter(name=question_set).first()
        if qs is None:
            raise CommandError(f"no question set {question_set!r}")
        items = list(qs.questions.order_by("id")[:questions])
        if not items:
            raise CommandError(f"question set {question_set!r} is empty")
        backend = backend_for(base)
        self.stdout.write(f"writing {len(items)} prompted arguments for incorrect answers...")
        examples = distillation.build_examples(
            backend, items, adversary_prompt, seed=seed, max_new_tokens=max_new_tokens
        )
        if not examples:
            raise CommandError("the base model wrote no arguments to learn from")
        self.stdout.write(f"training a rank-{rank} LoRA adapter on {len(examples)} examples for {epochs} epoch(s)...")
        report = distillation.train_lora(backend, examples, Path(output), epochs=epochs, lr=lr, rank=rank, seed=seed)
        # The base cloned whole (sampling, penalties, best-of-N, prompts, consultant prompts, queue), so
        # the adversary differs from it by its adapter alone.
        cloned = {
            field.name: getattr(base, field.name)
            for field in ModelConfig._meta.concrete_fields
            if field.name not in ("id", "name", "adapter_path", "created_at")
        }
        config, _ = ModelConfig.objects.update_or_create(
            name=name or f"{base.name} adversary",
            defaults=cloned | {"adapter_path": str(report.adapter_path)},
        )
        self.stdout.write(f"loss on the targets: {report.loss_before:.3f} before, {report.loss_after:.3f} after")
        self.stdout.write(f"adapter saved to {report.adapter_path}; model configuration {config.name!r} uses it")


def adversary_prompt(question, me: str, my_answer: str, opponent_answer: str) -> list[dict]:
    """The default debater prompt (which names the answer to defend), for a one-round debate."""
    return build_debater_messages(
        system_prompt=DEFAULT_SYSTEM_PROMPT,
        template=DEFAULT_DEBATER_TEMPLATE,
        me=me,
        question=question.text,
        my_answer=my_answer,
        opponent_answer=opponent_answer,
        passage=question.passage,
        visible_speeches=[],
        round_number=1,
        rounds=1,
        char_limit=600,
    )
