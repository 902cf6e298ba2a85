from django.core.management.base import BaseCommand

from models_runner.tasks import reconcile_generation


class Command(BaseCommand):
    help = "Release stale turn claims and re-send generation work for every unfinished experiment."

    def handle(self, *args, **options):
        n = reconcile_generation()
        self.stdout.write(f"re-queued generation for {n} experiment(s)")
