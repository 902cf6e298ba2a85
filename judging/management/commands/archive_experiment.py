from django.core.management.base import BaseCommand, CommandError

from judging.archive import write_archive
from judging.management.lookup import by_id_or_name
from judging.models import Experiment


class Command(BaseCommand):
    help = (
        "Write one experiment's archive (gzipped JSON): everything needed to re-run its analysis, which "
        "restore_experiment imports into another installation (docs/backup.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("experiment", help="The experiment's name or id.")
        parser.add_argument("-o", "--output", required=True, help="The archive file to write (e.g. study.json.gz).")

    def handle(self, *args, experiment, output, **options):
        found = by_id_or_name(Experiment, experiment, "experiment")
        try:
            with open(output, "wb") as target:
                header = write_archive(found, target)
        except OSError as exc:
            raise CommandError(f"could not write {output}: {exc}") from exc
        rows = ", ".join(f"{n} {label.split('.')[-1]}" for label, n in header["rows"].items())
        self.stdout.write(f"{found.name}: archived to {output} ({rows})")
