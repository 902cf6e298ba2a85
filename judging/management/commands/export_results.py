from django.core.management.base import BaseCommand, CommandError

from judging import exports
from judging.models import Experiment


class Command(BaseCommand):
    help = "Export an experiment's results: one row per trial or per turn, as CSV or JSONL."

    def add_arguments(self, parser):
        parser.add_argument("experiment", nargs="+", help="Experiment ids or names.")
        parser.add_argument("--table", choices=list(exports.TABLES), default="trials")
        parser.add_argument("--format", choices=list(exports.FORMATS), default="csv", dest="fmt")
        parser.add_argument("--output", "-o", help="File to write (default: standard output).")

    def handle(self, *args, experiment, table, fmt, output, **options):
        ids = []
        for ref in experiment:
            found = Experiment.objects.filter(pk=int(ref)) if ref.isdigit() else Experiment.objects.filter(name=ref)
            if not found.exists():
                raise CommandError(f"no experiment {ref!r}")
            ids.append(found.get().pk)
        chunks = exports.iter_export(table, fmt, ids)
        if output is None:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            return
        with open(output, "w", newline="", encoding="utf-8") as out:
            for chunk in chunks:
                out.write(chunk)
        self.stderr.write(f"wrote {output}")
