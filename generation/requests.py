"""The generation request of a claimed turn: the prompt its speaker may see, budgets and the seed."""

from __future__ import annotations

from inference import GenerationRequest
from judging.models import Trial, Turn
from judging.prompts import build_assistant_messages, build_debater_messages
from judging.protocols import sandwich
from judging.services import debate_state

# Roughly 3-4 characters per token in English; leave room so the model can
# finish a sentence inside the character limit.
CHARS_PER_TOKEN = 3


def turn_seed(turn: Turn) -> int:
    """A turn's sampling seed: reproducible from the experiment's seed, distinct per trial and turn."""
    return (turn.trial.experiment.seed * 1000003 + turn.trial.pk * 101 + turn.index) % (2**31)


def request_for(turn: Turn) -> GenerationRequest:
    trial, experiment, config = turn.trial, turn.trial.experiment, turn.model_config
    state = debate_state(trial)
    me = turn.speaker
    other = "B" if me == "A" else "A"
    consultant = trial.protocol == Trial.Protocol.CONSULTANCY
    if trial.protocol == Trial.Protocol.SANDWICH:
        messages = build_assistant_messages(
            misleading=trial.condition == sandwich.MISLEADING,
            question=trial.question.text,
            answer_a=trial.answer_text("A"),
            answer_b=trial.answer_text("B"),
            target_answer=trial.answer_text(me),
            passage=trial.question.passage,
            visible_speeches=state.visible_to(me),
            char_limit=trial.speech_char_limit,
        )
    else:
        messages = build_debater_messages(
            system_prompt=config.consultant_system_prompt if consultant else config.system_prompt,
            template=config.consultant_prompt_template if consultant else config.prompt_template,
            me=me,
            consultant=consultant,
            question=trial.question.text,
            my_answer=trial.answer_text(me),
            opponent_answer=trial.answer_text(other),
            passage=trial.question.passage,
            visible_speeches=state.visible_to(me),
            round_number=turn.round,
            rounds=experiment.rounds,
            char_limit=trial.speech_char_limit,
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
