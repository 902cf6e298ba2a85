"""Model judges: an experiment run fully automatically, judged from exactly the judge's view."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from judging import selectors
from judging.models import ModelVerdict
from judging.services import trial_open, verdict_submit


def test_an_experiment_runs_automatically_with_a_model_judge(
    make_model_config, make_experiment, tiny_model_dir, judge, admin_client
):
    debater = make_model_config(tiny_model_dir, name="debater")
    judge_model = make_model_config(tiny_model_dir, name="weak judge")
    experiment = make_experiment(debater, num_questions=3, rounds=1)
    out = io.StringIO()
    call_command("run_model_judges", experiment.name, "--judge-model", "weak judge", stdout=out)
    assert "launched 3 trials" in out.getvalue() and "weak judge: 3 trials judged, accuracy" in out.getvalue()
    verdicts = ModelVerdict.objects.filter(trial__experiment=experiment)
    assert verdicts.count() == 3
    for v in verdicts:
        assert 0 < v.probability_a < 1
        assert v.trial.question.text in v.prompt and v.trial.answer_text("A") in v.prompt
        for hidden in ("PASSAGE-SECRET", v.trial.question.passage, "honest", "adversarial"):
            assert hidden not in v.prompt  # a model judge sees what a human judge sees
    # A human judges one of the same transcripts: the command compares them; running again adds nothing.
    trial = selectors.judge_queue(judge).first()  # the judge's next trial
    trial_open(trial=trial)
    verdict_submit(trial_id=trial.pk, judge=judge, chosen=trial.honest_side, probability=0.9, rationale="r")
    out = io.StringIO()
    call_command("run_model_judges", str(experiment.pk), "--judge-model", str(judge_model.pk), stdout=out)
    assert "on the 1 trials humans judged: humans 100.0%" in out.getvalue()
    assert ModelVerdict.objects.filter(trial__experiment=experiment).count() == 3
    exported = io.StringIO()
    call_command(
        "export_results", str(experiment.pk), "--table", "model_verdicts", "--format", "jsonl", stdout=exported
    )
    rows = [json.loads(line) for line in exported.getvalue().splitlines()]
    assert len(rows) == 3 and {r["judge_model"] for r in rows} == {"weak judge"}
    page = admin_client.get(f"/results/analysis/?experiment={experiment.pk}").content.decode()
    assert "Model judges" in page and "weak judge" in page


def test_unknown_experiment_or_judge_model_is_a_clear_error(make_model_config, make_experiment):
    experiment = make_experiment(make_model_config("m"))
    with pytest.raises(CommandError, match="no experiment"):
        call_command("run_model_judges", "nope", "--judge-model", "x")
    with pytest.raises(CommandError, match="no model configuration 'x'"):
        call_command("run_model_judges", str(experiment.pk), "--judge-model", "x")
