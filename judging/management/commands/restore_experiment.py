from django.core.management.base import BaseCommand, CommandError

from judging.archive import ArchiveError, restore_archive


class Command(BaseCommand):
    help = (
        "Import an experiment archive written by archive_experiment, with its ids, into this installation "
        "(one that holds none of its rows, e.g. an empty one). All or nothing (docs/backup.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", help="The archive file (gzipped JSON).")

    def handle(self, *args, archive, **options):
        try:
            with open(archive, "rb") as source:
                experiment = restore_archive(source)
        except (OSError, ArchiveError) as exc:
            raise CommandError(f"nothing restored: {exc}") from exc
        self.stdout.write(f"restored {experiment.name} (id {experiment.pk}, {experiment.trials.count()} trials)")
