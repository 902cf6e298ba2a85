"""Model inference, with no knowledge of trials, judges or Django.

Backends behind one small interface (``base.GenerationBackend``): local weights through transformers
(with continuous batching, ``continuous``) and OpenAI-compatible servers. ``pool.ModelPool`` bounds
the models a process keeps loaded; ``bundled`` converts the packaged SmolLM2 once; ``distillation``
trains LoRA adversaries. The generation app decides what to generate; this package only generates.
"""

from .base import GenerationBackend, GenerationRequest, GenerationResult
from .openai_backend import OpenAICompatibleBackend
from .pool import ModelPool
from .transformers_backend import TransformersBackend

__all__ = [
    "GenerationBackend",
    "GenerationRequest",
    "GenerationResult",
    "ModelPool",
    "OpenAICompatibleBackend",
    "TransformersBackend",
]
