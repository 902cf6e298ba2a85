"""Model backends behind one interface (see base.py), one instance per process."""
from __future__ import annotations

import functools

from django.conf import settings

from .base import GenerationBackend, GenerationRequest, GenerationResult

__all__ = ["GenerationBackend", "GenerationRequest", "GenerationResult", "backend_for", "get_backend"]


@functools.lru_cache(maxsize=None)
def get_backend(backend: str, model_name: str, api_base: str = "", adapter_path: str = "") -> GenerationBackend:
    """The process-wide backend for a model: loaded once, lazily, and reused."""
    if backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(
            model_name, cache_dir=settings.MODEL_CACHE_DIR, device=settings.GENERATION_DEVICE,
            adapter_path=adapter_path, static_cache=settings.GENERATION_STATIC_CACHE,
            continuous=settings.GENERATION_CONTINUOUS, prefill_tokens=settings.GENERATION_PREFILL_TOKENS,
        )
    if backend == "openai":
        from .openai_backend import OpenAICompatibleBackend

        return OpenAICompatibleBackend(model_name, api_base=api_base, timeout=settings.OPENAI_TIMEOUT_SECONDS,
                                       max_retries=settings.OPENAI_MAX_RETRIES)
    raise ValueError(f"unknown model backend {backend!r}")


def backend_for(config) -> GenerationBackend:
    """The backend of a ModelConfig."""
    return get_backend(config.backend, config.model_name, config.api_base, config.adapter_path)
