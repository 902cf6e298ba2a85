"""The bundled SmolLM2-135M-Instruct model generating one real debate turn."""

import pytest

from generation.worker import generate_batch
from inference.bundled import SMOLLM2
from judging.models import Turn
from judging.services import experiment_launch

pytestmark = pytest.mark.real_model


def test_smollm2_writes_a_real_argument_for_its_assigned_answer(make_model_config, make_experiment):
    config = make_model_config(SMOLLM2, max_new_tokens=48, temperature=0.0)
    experiment = make_experiment(config, num_questions=1, rounds=1)
    experiment_launch(experiment=experiment)
    assert generate_batch(experiment.pk, batch_size=1) == 1
    turn = Turn.objects.get(status="done")
    words = turn.text.split()
    assert len(words) >= 5, turn.text
    # Real language, not token soup: mostly alphabetic words.
    assert sum(w.strip(".,;:!?\"'()").isalpha() for w in words) / len(words) > 0.6, turn.text
    assert "<|im_start|>" in turn.prompt  # SmolLM2's chat template was applied
    assert 0 < turn.tokens_out <= 48 and turn.tokens_in > 50
    assert turn.model_settings["model_name"] == SMOLLM2
