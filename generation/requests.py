"""The generation request of a claimed turn: the prompt its speaker may see, fitted to the model's
context window (docs/limits.md), budgets and the seed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from inference import GenerationBackend, GenerationRequest
from judging.models import Turn
from judging.protocols.prompts import PromptDoesNotFit, fit_passage
from judging.protocols.registry import PromptInputs
from judging.services import debate_state

# Roughly 3-4 characters per token in English; leave room so the model can
# finish a sentence inside the character limit.
CHARS_PER_TOKEN = 3


@dataclass(frozen=True)
class Fit:
    """How a turn's prompt was fitted to its model's context window (recorded on the turn)."""

    context_window: int | None  # None: the backend does not know it, so nothing was fitted
    prompt_budget: int | None  # the window less the speech's new tokens
    prompt_tokens: int | None  # the fitted prompt's tokens as counted (None: not counted)
    passage_chars: int  # characters of the passage in the prompt
    passage_chars_dropped: int  # characters left out (0: the whole passage)

    def as_settings(self) -> dict:
        return {
            "context_window": self.context_window,
            "prompt_budget": self.prompt_budget,
            "prompt_tokens_counted": self.prompt_tokens,
            "passage_chars_shown": self.passage_chars,
            "passage_chars_dropped": self.passage_chars_dropped,
        }


class TurnDoesNotFit(PromptDoesNotFit):
    """A turn whose prompt cannot fit its model's context window: it fails at once, without retries."""


def fit_to_window(
    build: Callable[[str], list[dict]], passage: str, backend: GenerationBackend, new_tokens: int
) -> tuple[list[dict], int]:
    """``build(passage)``, its passage truncated where prompt and ``new_tokens`` would not fit the backend's
    context window; and the characters left out. PromptDoesNotFit where even the marker alone does not fit."""
    window = backend.context_window()
    if window is None:
        return build(passage), 0
    fitted = fit_passage(build, passage or "", backend.prompt_tokens, window - new_tokens)
    return fitted.messages, fitted.passage_chars_dropped


def turn_seed(turn: Turn) -> int:
    """A turn's sampling seed: reproducible from the experiment's seed, distinct per trial and turn."""
    return (turn.trial.experiment.seed * 1000003 + turn.trial.pk * 101 + turn.index) % (2**31)


def prompt_inputs(turn: Turn) -> PromptInputs:
    """Everything the turn's speaker may see, the whole passage included."""
    trial = turn.trial
    me = turn.speaker
    other = "B" if me == "A" else "A"
    return PromptInputs(
        config=turn.model_config,
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


def fitted_request(turn: Turn, backend: GenerationBackend | None = None) -> tuple[GenerationRequest, Fit]:
    """The request for a turn, its prompt built by the trial's protocol from what this speaker may see
    and, where ``backend`` knows its context window, fitted to it: the passage truncated
    (``judging.protocols.prompts.truncate_passage``) so that prompt and new tokens fit. TurnDoesNotFit
    where even without the passage they cannot."""
    trial, config = turn.trial, turn.model_config
    inputs = prompt_inputs(turn)
    max_tokens = min(config.max_new_tokens, max(16, trial.speech_char_limit // CHARS_PER_TOKEN))

    def build(passage: str) -> list[dict]:
        return trial.protocol_spec.prompt(replace(inputs, passage=passage))

    passage = inputs.passage or ""
    window = backend.context_window() if backend is not None else None
    if window is None:
        messages, fit = build(passage), Fit(None, None, None, len(passage), 0)
    else:
        budget = window - max_tokens
        try:
            fitted = fit_passage(build, passage, backend.prompt_tokens, budget)
        except PromptDoesNotFit as exc:
            raise TurnDoesNotFit(
                f"prompt too long for {config.name}: {exc} ({window} tokens, {max_tokens} of them for the speech). "
                "Shorten the prompt template or the debate (fewer rounds, a lower character limit), lower "
                "max_new_tokens, or use a model with a longer context window."
            ) from None
        messages = fitted.messages
        fit = Fit(window, budget, fitted.tokens, fitted.passage_chars, fitted.passage_chars_dropped)
    request = GenerationRequest(
        messages=messages,
        max_new_tokens=max_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        repetition_penalty=config.repetition_penalty,
        seed=turn_seed(turn),
        char_limit=trial.speech_char_limit,
    )
    return request, fit


def request_for(turn: Turn, backend: GenerationBackend | None = None) -> GenerationRequest:
    """The request for a turn (``fitted_request`` without the record of the fit)."""
    return fitted_request(turn, backend)[0]
