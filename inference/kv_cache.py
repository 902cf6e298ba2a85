"""The continuous batcher's key/value cache: full-attention layers that grow into spare room.

Why: transformers' ``DynamicLayer`` appends a step's keys and values with ``torch.cat``, which copies the whole
cache of every layer at every decoding step. With 16 rows of 1,000 tokens a decoding step took 463-468 ms on two CPU
cores with that copy and 316-359 ms without (``benchmarks/continuous_step_profile.py --device cpu --rows 16
--prompt-tokens 1000``; docs/benchmarks.md); on a GPU the copy also holds a layer's cache twice for its moment.

How: a ``RoomyLayer`` keeps its keys and values in buffers longer than what they hold, and writes a step's states
into the free positions; only when the room runs out does it copy into new buffers with ``SPARE_FRACTION`` more
room (and ``SPARE_TOKENS``), so a row's cache is copied about once per eighth of its length instead of at every
token. ``keys`` and ``values`` are views of the filled part, so code that reads or assigns them as a
``DynamicLayer``'s (transformers' own cache methods, the prefix cache) works unchanged; an assignment holds the
given states as they are, with no room. A first update copies its states into a buffer with room (a ``DynamicLayer``
copies them too), never keeping a view of the model's own tensors. Where the batcher builds a cache from parts (rows
joining the batch, rows extending cached prefixes), ``left_padded`` writes each part once into a buffer with room
for the next tokens, instead of padding each part (a copy) and concatenating them (another); removing rows
(``RoomyLayer.keep``) selects the rest straight into one. The prefix cache hands out its entries uncopied
(``cache_holding``): held without room, they are copied once, into room, by the first step that extends them.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

# Room made when a layer's buffers are full: this share of the needed length, plus SPARE_TOKENS. The memory held
# spare is at most an eighth of the cache plus 64 positions per row and layer.
SPARE_FRACTION = 0.125
SPARE_TOKENS = 64


class RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are the first ``length`` positions of longer buffers."""

    _layer_type = None  # never registered in transformers' layer mappings (a subclass with a layer type would be)

    def __init__(self):
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None
        # Filled positions of each buffer: equal but between the two assignments that replace them (keys, then values).
        self._key_length = self._value_length = 0
        super().__init__()

    # Assigning keys or values replaces that buffer with the given states, without spare room.
    @property
    def keys(self) -> torch.Tensor | None:
        return None if self._key_buffer is None else self._key_buffer[:, :, : self._key_length]

    @keys.setter
    def keys(self, states: torch.Tensor | None) -> None:
        self._key_buffer, self._key_length = states, 0 if states is None else states.shape[-2]

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._value_buffer is None else self._value_buffer[:, :, : self._value_length]

    @values.setter
    def values(self, states: torch.Tensor | None) -> None:
        self._value_buffer, self._value_length = states, 0 if states is None else states.shape[-2]

    def hold(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        """Take buffers whose first ``length`` positions are filled (``left_padded``'s, say), as they are."""
        self.device, self.is_initialized = key_buffer.device, True
        self._key_buffer, self._value_buffer = key_buffer, value_buffer
        self._key_length = self._value_length = length

    def keep(self, rows: torch.Tensor, start: int) -> None:
        """Keep only ``rows`` (indices) and the positions from ``start`` on, copied once into buffers with room."""
        length = self._key_length - start
        self.hold(_selected(self.keys, rows, start, length), _selected(self.values, rows, start, length), length)

    @property
    def room(self) -> int:
        """Positions the buffers hold beyond the filled ones."""
        return 0 if self._key_buffer is None else self._key_buffer.shape[-2] - self._key_length

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        # DynamicLayer's assigns empty 1-D tensors; here an empty layer simply has no buffers yet.
        self.device, self.is_initialized = key_states.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if self._key_buffer is None or self._key_length == 0:
            length = key_states.shape[-2]
            self.hold(
                left_padded([key_states], length, spare(length)),
                left_padded([value_states], length, spare(length)),
                length,
            )
            return self.keys, self.values
        length = self._key_length
        end = length + key_states.shape[-2]
        if end > self._key_buffer.shape[-2]:
            room = end - length + spare(end)
            # Both made before either is replaced: out of memory on the second leaves the layer as it was.
            keys, values = left_padded([self.keys], length, room), left_padded([self.values], length, room)
            self._key_buffer, self._value_buffer = keys, values
        self._key_buffer[:, :, length:end] = key_states
        self._value_buffer[:, :, length:end] = value_states
        self._key_length = self._value_length = end
        return self.keys, self.values


def spare(length: int) -> int:
    """Positions to allocate beyond the ``length`` a cache needs now, for the tokens to come."""
    return int(length * SPARE_FRACTION) + SPARE_TOKENS


def left_padded(parts: list[torch.Tensor], length: int, room: int = 0) -> torch.Tensor:
    """Cache states [rows, heads, positions, dim] stacked row-wise, each part ending at position ``length`` (zeros
    before it: left padding, which the batch's mask hides), in a buffer of ``length + room`` positions."""
    rows = sum(part.shape[0] for part in parts)
    _, heads, _, dim = parts[0].shape
    buffer = parts[0].new_empty((rows, heads, length + room, dim))
    first = 0
    for part in parts:
        last, start = first + part.shape[0], length - part.shape[-2]
        buffer[first:last, :, :start] = 0  # masked, but must be finite: NaN stays NaN under a mask (and times 0)
        buffer[first:last, :, start:length] = part
        first = last
    return buffer


def _selected(states: torch.Tensor, rows: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """A buffer with room holding ``states``' ``rows`` from position ``start`` on (``length`` positions)."""
    _, heads, _, dim = states.shape
    buffer = states.new_empty((len(rows), heads, length + spare(length), dim))
    torch.index_select(states[:, :, start:], 0, rows, out=buffer[:, :, :length])
    return buffer


def roomy_cache(config) -> DynamicCache:
    """An empty ``DynamicCache`` with a ``RoomyLayer`` for each of the model's layers (``config``: the model's)."""
    cache = DynamicCache(config=config)
    cache.layers = [RoomyLayer() for _ in cache.layers]
    return cache


def cache_holding(states: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A ``DynamicCache`` whose ``RoomyLayer``s hold ``states`` (per layer: keys, values) as they are, not copied:
    with no room beyond them, the first update or removal copies them into room and never writes into them, so
    they may be another's (the prefix cache's entries)."""
    cache = DynamicCache()
    cache.layers = []
    for keys, values in states:
        layer = RoomyLayer()
        layer.hold(keys, values, keys.shape[-2])
        cache.layers.append(layer)
    return cache
