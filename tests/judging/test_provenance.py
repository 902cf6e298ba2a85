"""What an experiment ran with is frozen at launch: configurations, prompts, adapter hash, design, version."""

from judging import exports
from judging.models import ModelConfig, adapter_digest
from judging.services import experiment_launch


def test_launch_records_what_the_experiment_runs_with(settings, tmp_path, make_model_config, make_experiment):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v1")
    judge_config = make_model_config("judge-model", name="best-of-n judge")
    config = make_model_config(
        "debater-model", adapter_path=str(adapter), best_of_n=2, temperature=0.7, best_of_n_judge=judge_config
    )
    experiment = make_experiment(config, primary_comparisons=["above-chance:debate"])
    settings.PLATFORM_COMMIT = "abc123"
    experiment_launch(experiment=experiment)
    experiment.refresh_from_db()
    record = experiment.provenance
    assert record["platform"] == {"version": settings.PLATFORM_VERSION, "commit": "abc123"}
    debater = record["configs"]["debater"]
    assert debater["config_name"] == config.name and debater["system_prompt"] == config.system_prompt
    assert debater["adapter_sha256"] == adapter_digest(str(adapter)) and len(debater["adapter_sha256"]) == 64
    assert debater["best_of_n_judge_config"]["config_name"] == "best-of-n judge"
    assert record["design"]["seed"] == experiment.seed and record["design"]["judges"] == ["judy"]
    assert record["plan"]["primary_comparisons"] == ["above-chance:debate"]
    assert record["question_set"]["questions"] == 12


def test_editing_a_configuration_after_launch_changes_no_experiment_record(make_model_config, make_experiment):
    config = make_model_config("debater-model", temperature=0.3)
    experiment = make_experiment(config)
    experiment_launch(experiment=experiment)
    before_trials = [row["model_settings"] for row in exports.trial_rows([experiment.pk])]
    (before_experiment,) = exports.experiment_rows([experiment.pk])

    ModelConfig.objects.filter(pk=config.pk).update(name="renamed", temperature=1.5, system_prompt="Lie.")
    after_trials = [row["model_settings"] for row in exports.trial_rows([experiment.pk])]
    (after_experiment,) = exports.experiment_rows([experiment.pk])
    assert after_trials == before_trials and before_trials[0]["config_name"] == config.name
    assert before_trials[0]["temperature"] == 0.3 and "system_prompt" not in before_trials[0]
    assert after_experiment["provenance"] == before_experiment["provenance"]
    assert after_experiment["provenance"]["configs"]["debater"]["system_prompt"] != "Lie."


def test_the_adapter_hash_follows_its_files(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"one")
    first = adapter_digest(str(folder))
    (folder / "a.bin").write_bytes(b"two")
    assert adapter_digest(str(folder)) != first
    assert adapter_digest(str(tmp_path / "missing")) is None
