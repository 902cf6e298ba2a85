"""The one small interface every model backend implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict]  # chat messages: [{"role": ..., "content": ...}]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None = None


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_text: str  # the exact text the model was given (chat template applied)
    tokens_in: int
    tokens_out: int
    seconds: float  # wall time of the batch this request ran in


class GenerationBackend(ABC):
    """Generates completions for a batch of chat prompts."""

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Return one result per request, in order."""

    @property
    @abstractmethod
    def device_name(self) -> str:
        """Where the model runs, e.g. 'cpu' or 'cuda:0 (NVIDIA H100)'."""
