from django.core.management.base import BaseCommand, CommandError

from audit.recording import record_export
from judging import exports
from judging.management.lookup import by_id_or_name
from judging.models import Experiment


class Command(BaseCommand):
    help = "Export experiment results: trials, turns or verdicts, as CSV, JSONL or Parquet."

    def add_arguments(self, parser):
        parser.add_argument("experiment", nargs="+", help="Experiment ids or names.")
        parser.add_argument("--table", choices=list(exports.TABLES), default="trials")
        parser.add_argument("--format", choices=list(exports.FORMATS), default="csv", dest="fmt")
        parser.add_argument("--output", "-o", help="File to write (default: standard output; required for Parquet).")
        parser.add_argument(
            "--role",
            choices=list(exports.ROLES),
            default=exports.STUDY,
            help="Which trials: the study's (default, what the analysis reads), or the practice trials or attention "
            f"checks, exported separately (tables {', '.join(exports.ROLE_TABLES)}; docs/onboarding.md).",
        )

    def handle(self, *args, experiment, table, fmt, output, role, **options):
        ids = [by_id_or_name(Experiment, ref, "experiment").pk for ref in experiment]
        if role != exports.STUDY and table not in exports.ROLE_TABLES:
            raise CommandError(
                f"the {table} table holds the study only; --role {role} needs one of the tables "
                f"{', '.join(exports.ROLE_TABLES)}"
            )
        if output:
            exports.write_export(table, fmt, ids, output, role)
            self.stderr.write(f"wrote {output}")
        elif fmt == "parquet":
            raise CommandError("Parquet is binary: give --output FILE")
        else:
            for chunk in exports.iter_export(table, fmt, ids, role):
                self.stdout.write(chunk, ending="")
        # No user: the audit log shows it came from a command.
        record_export(table if role == exports.STUDY else f"{table} ({role})", fmt, ids)
