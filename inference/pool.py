"""The models one process keeps loaded: at most ``max_per_device`` on each device, least recently used
dropped first.

A worker serving several model configurations (a debater, its best-of-N scorer, a model judge) would
otherwise keep every model it ever loaded until it runs out of memory. Dropping a backend only
drops the pool's reference: a session still generating with it keeps it alive until it finishes, so
eviction never pulls a model from under a running batch.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from typing import Callable, Hashable

from .base import GenerationBackend


class ModelPool:
    def __init__(self, max_per_device: int):
        if max_per_device < 1:
            raise ValueError("a pool holds at least one model per device")
        self.max_per_device = max_per_device
        self._resident: dict[str, OrderedDict[Hashable, GenerationBackend]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], GenerationBackend], device: str | None) -> GenerationBackend:
        """The backend for ``key``, made by ``make()`` if it is not resident. ``device`` None: the model
        holds no local memory (a remote server) and does not count against any limit."""
        with self._lock:
            slot = self._resident.setdefault(device or "", OrderedDict())
            if key in slot:
                slot.move_to_end(key)
                return slot[key]
            evicted = False
            while device is not None and len(slot) >= self.max_per_device:
                slot.popitem(last=False)
                evicted = True
            if evicted:
                gc.collect()  # release the dropped model's tensors before the next one loads
            slot[key] = backend = make()
            return backend

    def resident(self, device: str | None) -> list[Hashable]:
        """Keys of the backends resident on ``device``, least recently used first."""
        with self._lock:
            return list(self._resident.get(device or "", {}))

    def backends(self) -> list[GenerationBackend]:
        """Every resident backend, on every device."""
        with self._lock:
            return [backend for slot in self._resident.values() for backend in slot.values()]
