"""Print, every so often, when the demo judge's first pre-generated debate should be ready, measured on this machine
(judging.readiness, as the judge's queue says it); stop once it is. ``dev.py demo`` runs it beside the worker."""

from __future__ import annotations

import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import OperationalError
from django.utils import timezone

from judging.dashboard import readable
from judging.models import Experiment, Trial
from judging.readiness import Readiness, judge_readiness

from .setup_demo import DEMO_USERS

DEMO_JUDGE = next(name for name, (_, is_researcher) in DEMO_USERS.items() if not is_researcher)


def progress_line(readiness: Readiness) -> str:
    """ "first debate ready in about 4 min (12 of 40 speeches written, 9 s per speech so far)"."""
    written = f"{readiness.written} of {readiness.written + readiness.left} speeches written"
    if readiness.seconds_per_turn is not None:
        written += f", {round(readiness.seconds_per_turn)} s per speech so far"
    return f"{readiness.line('first debate')} ({written})"


def ready_line(url: str, elapsed: timedelta) -> str:
    """The last line; with the time it took, unless they were ready at once (an earlier run wrote them)."""
    after = f" after {readable(elapsed)}" if elapsed >= timedelta(minutes=1) else ""
    return f"first debates ready{after}: open {url}judge/"


class Command(BaseCommand):
    help = "Print when the demo judge's first pre-generated debate should be ready, until it is (dev.py demo)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="The demo's address, for the last line.")
        parser.add_argument("--every", type=float, default=30, help="Seconds between lines (default 30).")
        parser.add_argument("--once", action="store_true", help="Print one line and stop.")

    def handle(self, *args, url, every, once, **options):
        judge = get_user_model().objects.filter(username=DEMO_JUDGE).first()
        if judge is None:
            raise SystemExit(f"No demo judge {DEMO_JUDGE!r}: run manage.py setup_demo first.")
        started = time.monotonic()
        while True:
            try:
                line, done = self._step(judge, url, timedelta(seconds=time.monotonic() - started))
            except OperationalError:  # SQLite busy under the worker's writes: a line skipped, tried again later
                line, done = None, False
            if line:
                self.stdout.write(f"==> {line}")
                self.stdout.flush()
            if done or once:
                return
            time.sleep(every)

    def _step(self, judge, url: str, elapsed: timedelta) -> tuple[str | None, bool]:
        """The line to print now (None: nothing to say) and whether to stop."""
        pregenerated = Trial.objects.filter(judge=judge, live=False, experiment__status=Experiment.Status.LAUNCHED)
        if pregenerated.filter(status=Trial.Status.READY).exists():
            return ready_line(url, elapsed), True
        if not pregenerated.filter(status=Trial.Status.GENERATING).exists():
            return None, True  # nothing being prepared (a demo already judged): nothing to wait for
        return progress_line(judge_readiness(judge, timezone.now())), False
