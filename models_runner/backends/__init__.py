"""Model backends behind one interface (see base.py), one instance per process."""
from __future__ import annotations

import functools

from django.conf import settings

from .base import GenerationBackend, GenerationRequest, GenerationResult

__all__ = ["GenerationBackend", "GenerationRequest", "GenerationResult", "get_backend"]


@functools.lru_cache(maxsize=None)
def get_backend(backend: str, model_name: str) -> GenerationBackend:
    """The process-wide backend for a model: loaded once, lazily, and reused."""
    if backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(
            model_name, cache_dir=settings.MODEL_CACHE_DIR, device=settings.GENERATION_DEVICE
        )
    raise ValueError(f"unknown model backend {backend!r}")
