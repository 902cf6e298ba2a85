"""The generation request of a claimed turn: the prompt its speaker may see, budgets and the seed."""

from __future__ import annotations

from inference import GenerationRequest
from judging.models import Turn
from judging.protocols.registry import PromptInputs
from judging.services import debate_state

# Roughly 3-4 characters per token in English; leave room so the model can
# finish a sentence inside the character limit.
CHARS_PER_TOKEN = 3


def turn_seed(turn: Turn) -> int:
    """A turn's sampling seed: reproducible from the experiment's seed, distinct per trial and turn."""
    return (turn.trial.experiment.seed * 1000003 + turn.trial.pk * 101 + turn.index) % (2**31)


def request_for(turn: Turn) -> GenerationRequest:
    """The request for a turn, its prompt built by the trial's protocol from what this speaker may see."""
    trial, config = turn.trial, turn.model_config
    me = turn.speaker
    other = "B" if me == "A" else "A"
    messages = trial.protocol_spec.prompt(
        PromptInputs(
            config=config,
            me=me,
            question=trial.question.text,
            my_answer=trial.answer_text(me),
            opponent_answer=trial.answer_text(other),
            answer_a=trial.answer_text("A"),
            answer_b=trial.answer_text("B"),
            passage=trial.question.passage,
            visible_speeches=debate_state(trial).visible_to(me),
            round_number=turn.round,
            rounds=trial.experiment.rounds,
            char_limit=trial.speech_char_limit,
            condition=trial.condition,
        )
    )
    max_tokens = min(config.max_new_tokens, max(16, trial.speech_char_limit // CHARS_PER_TOKEN))
    return GenerationRequest(
        messages=messages,
        max_new_tokens=max_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        repetition_penalty=config.repetition_penalty,
        seed=turn_seed(turn),
    )
