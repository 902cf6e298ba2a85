"""The backend of a model configuration, from this process's bounded pool (settings decide the options)."""

from __future__ import annotations

from django.conf import settings

from inference import GenerationBackend, ModelPool, OpenAICompatibleBackend, TransformersBackend

# One pool per worker process; DEBATE_MODELS_PER_DEVICE bounds the models it keeps loaded.
pool = ModelPool(settings.MODELS_PER_DEVICE)


def get_backend(
    backend: str, model_name: str, api_base: str = "", adapter_path: str = "", context_window: int | None = None
) -> GenerationBackend:
    """The process-wide backend for a model: loaded lazily on first use, reused while resident.
    ``context_window``: a configured window instead of the model's own."""
    key = (backend, model_name, api_base, adapter_path, context_window)
    if backend == "transformers":
        return pool.get(
            key,
            lambda: TransformersBackend(
                model_name,
                cache_dir=settings.MODEL_CACHE_DIR,
                device=settings.GENERATION_DEVICE,
                adapter_path=adapter_path,
                static_cache=settings.GENERATION_STATIC_CACHE,
                continuous=settings.GENERATION_CONTINUOUS,
                prefill_tokens=settings.GENERATION_PREFILL_TOKENS,
                chunk_tokens=settings.GENERATION_PREFILL_CHUNK_TOKENS,
                live_chunk_tokens=settings.GENERATION_PREFILL_CHUNK_TOKENS_BESIDE_LIVE,
                long_lane=settings.GENERATION_LONG_LANE,
                prefix_cache_bytes=settings.GENERATION_PREFIX_CACHE_MB * 2**20,
                context_window=context_window,
            ),
            device=settings.GENERATION_DEVICE,
        )
    if backend == "openai":
        return pool.get(
            key,
            lambda: OpenAICompatibleBackend(
                model_name,
                api_base=api_base,
                timeout=settings.OPENAI_TIMEOUT_SECONDS,
                max_retries=settings.OPENAI_MAX_RETRIES,
                context_window=context_window,
            ),
            device=None,
        )
    raise ValueError(f"unknown model backend {backend!r}")


def backend_for(config) -> GenerationBackend:
    """The backend of a ModelConfig."""
    return get_backend(
        config.backend, config.model_name, config.api_base, config.adapter_path, config.context_window or None
    )
