from django.core.management.base import BaseCommand, CommandError

from generation.baselines import judge_with_model
from generation.worker import generate_batch
from judging.baseline_verdicts import credit
from judging.management.lookup import by_id_or_name
from judging.models import Experiment, ModelConfig, ModelVerdict, Trial
from judging.services import LaunchError, experiment_launch


class Command(BaseCommand):
    help = (
        "Run an experiment fully automatically: launch it if it is a draft, generate its pre-generated "
        "trials in this process, and have one or more models judge every transcript from exactly what a "
        "human judge sees. Prints each model judge's accuracy beside the human judges' on the same trials."
    )

    def add_arguments(self, parser):
        parser.add_argument("experiment", help="Experiment id or name.")
        parser.add_argument(
            "--judge-model",
            action="append",
            required=True,
            metavar="CONFIG",
            help="Model configuration (id or name) to judge with; repeat for several.",
        )

    def handle(self, *args, experiment, judge_model, **options):
        exp = by_id_or_name(Experiment, experiment, "experiment")
        judges = [by_id_or_name(ModelConfig, ref, "model configuration") for ref in judge_model]
        if exp.status == Experiment.Status.DRAFT:
            try:
                self.stdout.write(f"launched {experiment_launch(experiment=exp)} trials")
            except LaunchError as exc:
                raise CommandError(str(exc)) from exc
        while generate_batch(exp.pk, batch_size=None):
            pass
        failed = exp.trials.filter(status=Trial.Status.FAILED).count()
        if failed:
            self.stderr.write(f"{failed} trial(s) failed to generate and are not judged")
        for config in judges:
            judge_with_model(exp.pk, config)
            verdicts = list(
                ModelVerdict.objects.filter(trial__experiment=exp, judge_model=config).select_related("trial")
            )
            if not verdicts:
                self.stdout.write(f"{config.name}: no finished pre-generated trials to judge")
                continue
            # Both answer orders averaged; a tie counts as half right (judging.baseline_verdicts).
            accuracy = sum(credit(v.correct) for v in verdicts) / len(verdicts)
            ties = sum(v.correct is None for v in verdicts)
            line = f"{config.name}: {len(verdicts)} trials judged, accuracy {accuracy:.1%} ({ties} ties, half right)"
            human = [v for v in verdicts if hasattr(v.trial, "verdict")]
            if human:
                human_accuracy = sum(v.trial.verdict.correct for v in human) / len(human)
                model_same = sum(credit(v.correct) for v in human) / len(human)
                line += (
                    f"; on the {len(human)} trials humans judged: humans {human_accuracy:.1%}, "
                    f"this model {model_same:.1%}"
                )
            self.stdout.write(line)
