"""The one small interface every model backend implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict]  # chat messages: [{"role": ..., "content": ...}]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None = None
    min_new_tokens: int = 0  # > 0 forces at least this many tokens (benchmarks)
    repetition_penalty: float = 1.0  # > 1 discourages repeating tokens (small models loop otherwise)


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_text: str  # the exact text the model was given (chat template applied)
    tokens_in: int
    tokens_out: int
    seconds: float  # wall time of the batch this request ran in
    ttft_seconds: float | None = None  # from the batch's start to this request's first new token


# Called with (request index, text generated so far) while a batch is generated.
ProgressCallback = Callable[[int, str], None]


class GenerationBackend(ABC):
    """Generates completions for a batch of chat prompts."""

    @abstractmethod
    def generate(self, requests: list[GenerationRequest], on_text: ProgressCallback | None = None) -> list[GenerationResult]:
        """Return one result per request, in order; report partial text to ``on_text`` if given."""

    @abstractmethod
    def choice_probabilities(self, messages: list[dict], labels: list[str]) -> list[float]:
        """Probability of each label as the model's next token after the prompt (renormalised over labels)."""

    @property
    @abstractmethod
    def device_name(self) -> str:
        """Where the model runs, e.g. 'cpu' or 'cuda:0 (NVIDIA H100)'."""
