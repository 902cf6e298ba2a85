from django.core.management.base import BaseCommand

from generation.tasks import reconcile_generation


class Command(BaseCommand):
    help = "Release stale turn claims and re-send generation work for every unfinished experiment."

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-seconds",
            type=int,
            default=None,
            help="Release claims older than this (default: DEBATE_STALE_CLAIM_SECONDS; for live trials, "
            "DEBATE_LIVE_DEAD_CLAIM_SECONDS without a heartbeat). "
            "0 releases every claim: only safe when no worker is running.",
        )

    def handle(self, *args, stale_seconds, **options):
        n = reconcile_generation(stale_seconds)
        self.stdout.write(f"re-queued generation for {n} experiment(s)")
